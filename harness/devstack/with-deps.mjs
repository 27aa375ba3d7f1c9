// Runs a command from node_modules/.bin after making sure the npm dependencies are installed, so
// that `npm start` and `npm test` work as the very first command on a fresh clone. Plain
// JavaScript on purpose: it runs before anything (tsx, vitest) is installed.
//   node harness/devstack/with-deps.mjs <bin> [args...]
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../..', import.meta.url));
const [bin, ...args] = process.argv.slice(2);
if (bin === undefined || bin === '--help' || bin === '-h') {
  console.log('usage: node harness/devstack/with-deps.mjs <bin> [args...]\n  installs the npm dependencies (npm ci) when missing, then runs node_modules/.bin/<bin>');
  process.exit(bin === undefined ? 2 : 0);
}
if (!existsSync(`${root}node_modules/.package-lock.json`)) {
  console.log('installing npm dependencies (npm ci)…');
  const r = spawnSync('npm', ['ci', '--no-audit', '--no-fund'], { cwd: root, stdio: 'inherit' });
  if (r.status !== 0) {
    console.error('npm ci failed; fix the error above and run the command again');
    process.exit(r.status ?? 1);
  }
}
const child = spawn(`${root}node_modules/.bin/${bin}`, args, { cwd: process.cwd(), stdio: 'inherit' });
// Ctrl-C reaches the whole foreground process group; the child handles it and exits itself.
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => child.kill(sig));
child.on('error', (err) => {
  console.error(`cannot run ${bin}: ${err.message}`);
  process.exit(1);
});
child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
