#!/usr/bin/env node
// The `circuitry` command (package.json "bin"; `npx circuitry --help`): runs cli/main.ts through
// tsx, so the operator tool needs no build step in a checkout.
import { register } from 'tsx/esm/api';

register();
const { main } = await import('./main.ts');
process.exitCode = await main(process.argv.slice(2));
