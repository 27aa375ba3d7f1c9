// Every command an operator or developer is pointed at answers --help with its usage and exits 0
// without starting anything (no services, no configuration needed).
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

async function run(cmd: string, args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const env: Record<string, string | undefined> = { ...process.env, DATABASE_URL: undefined, ETCD_ENDPOINTS: undefined, API_TOKENS: undefined, LOCAL_STACK_STATE: '/nonexistent/state.json' };
  const child = spawn(cmd, args, { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const code = await new Promise<number | null>((r) => child.on('exit', (c) => r(c)));
  return { code, stdout, stderr };
}

// [npm script, what its usage must name]
const SCRIPTS: Array<[string, RegExp]> = [
  ['start', /npm start/],
  ['demo', /npm run demo/],
  ['migrate', /npm run migrate/],
  ['bench', /npm run bench/],
  ['bench:health', /npm run bench:health/],
  ['bench:state', /npm run bench:state/],
  ['chaos', /npm run chaos/],
  ['fuzz', /npm run fuzz/],
  ['charts', /npm run charts/],
  ['openapi', /npm run openapi/],
  ['bundle:report', /npm run bundle:report/],
];

describe('--help', () => {
  it.each(SCRIPTS)('npm run %s -- --help prints its usage and exits 0, starting nothing', async (script, usage) => {
    const r = await run('npm', ['run', '--silent', script, '--', '--help']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(usage);
    expect(r.stdout).not.toMatch(/starting (etcd|PostgreSQL)/i);
  }, 60_000);

  it('npx circuitry --help lists every command', async () => {
    const r = await run(process.execPath, ['cli/circuitry.mjs', '--help']);
    expect(r.code).toBe(0);
    for (const c of ['status', 'drift', 'locks', 'redrive', 'import', 'traefik-config']) expect(r.stdout).toMatch(new RegExp(`\\n  ${c}\\b`));
  });
});
