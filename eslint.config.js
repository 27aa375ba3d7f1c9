// Lint: the recommended JavaScript and TypeScript rules (type-checking is `npm run typecheck`),
// plus the house of circuitry, enforced as import rules (README "Architecture"):
//   handlers (functions/, cli/) -> services (lib/circuits, lib/health) -> protocol (lib/etcd) and store (lib/db)
//   services -> pure code (lib/traefik, the model, the health state machine, ...) which does no I/O
//   edges (config, errors, events, http, observability, runtime) are shared
// Never: handlers -> protocol/store; pure -> any I/O; protocol <-> store; production -> harness or
// tests; services -> the inside of lib/etcd or lib/db (their index.ts is the public surface);
// harness -> anything of lib/ but its top-level modules and the index.ts of each area. And no
// import cycles among production files.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import importX from 'eslint-plugin-import-x';
import { createTypeScriptImportResolver } from 'eslint-import-resolver-typescript';

const PRODUCTION = ['lib/**/*.ts', 'functions/**/*.ts', 'cli/**/*.ts'];
const PURE = [
  'lib/traefik/**/*.ts',
  'lib/model.ts',
  'lib/errors.ts',
  'lib/health/state.ts',
  'lib/health/decide.ts',
  'lib/health/digest.ts',
  'lib/circuits/status.ts',
  'lib/circuits/same.ts',
  'lib/etcd/layout.ts',
  'lib/etcd/meta.ts',
  'lib/etcd/epoch-codec.ts',
];
const IO_PACKAGES = ['etcd3', '@neondatabase/serverless', 'ws', '@aws-sdk/*', '@aws-lambda-powertools/*', 'node:net', 'node:http', 'node:https', 'node:dns', 'node:fs', 'node:fs/*', 'node:child_process', 'node:dgram', 'node:tls', 'p-limit'];

const group = (patterns, message) => ({ group: patterns, message });
const noHarness = group(['**/harness/**', '**/test/**'], 'production code never imports harness or test code');
const storeFromOutside = group(['**/db/*', '!**/db/index.js'], 'use the store through lib/db/index.js');
const protocolFromOutside = group(['**/etcd/*', '!**/etcd/index.js'], 'use the protocol through lib/etcd/index.js');

/** One no-restricted-imports rule per area (flat config does not merge two of them). */
const restrict = (files, patterns, paths = []) => ({
  files,
  rules: { '@typescript-eslint/no-restricted-imports': ['error', { patterns, paths }] },
});

export default tseslint.config(
  { ignores: ['node_modules/', '.serverless/', '.esbuild/', 'dist/', 'coverage/', 'bench/*.json', 'docs/'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/no-empty-function': 'off',
      'no-empty': ['error', { allowEmptyCatch: true }],
    },
  },
  {
    files: ['**/*.mjs', 'harness/**/*.js'],
    languageOptions: { globals: { process: 'readonly', console: 'readonly', URL: 'readonly' } },
  },
  // ---- the house --------------------------------------------------------------------------------
  restrict(['functions/**/*.ts', 'cli/**/*.ts'], [
    noHarness,
    group(['**/lib/db/**', '**/lib/etcd/**'], 'handlers go through the services (lib/circuits, lib/health), never to the store or the protocol'),
    group(['etcd3', '@neondatabase/serverless'], 'handlers never talk to etcd or the database themselves'),
  ]),
  restrict(['lib/circuits/**/*.ts', 'lib/health/**/*.ts', 'lib/http/**/*.ts', 'lib/*.ts'], [noHarness, storeFromOutside, protocolFromOutside]),
  restrict(['lib/etcd/**/*.ts'], [noHarness, group(['**/db/**', '@neondatabase/serverless'], 'the protocol never knows the store')]),
  restrict(['lib/db/**/*.ts'], [noHarness, group(['**/etcd/**', 'etcd3'], 'the store never knows the protocol')]),
  restrict(PURE, [
    noHarness,
    group(['**/db/**', '**/etcd/index.js', '**/etcd/mutex.js', '**/etcd/session.js', '**/etcd/client.js', '**/runtime.js', '**/observability.js', '**/events.js', '**/failpoints.js', '**/config.js'], 'pure code does no I/O'),
    group(IO_PACKAGES, 'pure code does no I/O'),
  ]),
  restrict(['harness/**/*.ts'], [
    group(['**/lib/*/*', '!**/lib/*/index.js'], "the harness uses lib/ through its public surface: the top-level modules and each area's index.ts"),
  ]),
  {
    files: PRODUCTION,
    plugins: { 'import-x': importX },
    settings: {
      'import-x/resolver-next': [createTypeScriptImportResolver({ project: './tsconfig.json' })],
      'import-x/parsers': { '@typescript-eslint/parser': ['.ts'] },
      'import-x/extensions': ['.ts', '.js'],
    },
    rules: { 'import-x/no-cycle': ['error', { ignoreExternal: true }] },
  },
);
