// npm start: the local stack on a fresh clone. Plain JavaScript on purpose: it must run before
// dependencies (and tsx) are installed, install them, then hand over to scripts/local-stack.ts.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
if (!existsSync(`${root}node_modules/.package-lock.json`)) {
  console.log('start: installing npm dependencies (npm ci)…');
  const r = spawnSync('npm', ['ci', '--no-audit', '--no-fund'], { cwd: root, stdio: 'inherit' });
  if (r.status !== 0) {
    console.error('start: npm ci failed; fix the error above and run npm start again');
    process.exit(r.status ?? 1);
  }
}
const child = spawn(process.execPath, ['--import', 'tsx', `${root}scripts/local-stack.ts`, ...process.argv.slice(2)], {
  cwd: root,
  stdio: 'inherit',
});
// Ctrl-C reaches the whole foreground process group; the stack handles it and exits itself.
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => child.kill(sig));
child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
