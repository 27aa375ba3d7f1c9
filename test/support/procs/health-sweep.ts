// One OS process running one scheduled-health sweep, driven by test/integration/health-*.test.ts.
//   health-sweep <nowIso|-> [batchSize] [--no-drift] [--wait-go]
// Prints {"ready":true} (after connecting), waits for "go" on stdin when asked (so several
// processes can start their sweeps together), then prints the sweep's stats and the events it
// published as one JSON line.
import { parseConfig } from '../../../lib/config.js';
import { closeRuntime, createRuntime, Invocation } from '../../../lib/runtime.js';
import { runSweep } from '../../../lib/health/sweep.js';
import { closeProbers } from '../../../lib/health/probers.js';
import type { RouteHealthChanged } from '../../../lib/health/events.js';
import { waitForGo } from './wait-for-go.js';

const [nowArg, batchArg, ...flags] = process.argv.slice(2);
const rt = createRuntime(parseConfig(process.env));
const inv = new Invocation(rt);
const out = (o: unknown) => process.stdout.write(JSON.stringify(o) + '\n');

async function main(): Promise<void> {
  await rt.db.query('SELECT 1');
  await inv.session();
  out({ ready: true });
  if (flags.includes('--wait-go')) await waitForGo();
  const events: RouteHealthChanged[] = [];
  const fixed = nowArg !== undefined && nowArg !== '-' ? new Date(nowArg) : undefined;
  const stats = await runSweep(inv, {
    publish: async (e) => void events.push(...e),
    ...(fixed ? { now: () => fixed } : {}),
    batchSize: batchArg !== undefined ? Number(batchArg) : 5,
    drift: !flags.includes('--no-drift'),
  });
  out({ stats, events });
}

main()
  .catch((err) => {
    process.stderr.write(`${(err as Error).stack}\n`);
    process.exitCode = 1;
  })
  .finally(async () => {
    closeProbers();
    await inv.close().catch(() => {});
    await closeRuntime(rt);
  });
