// The local stack (`npm start`, harness/devstack/stack.ts) as its own process tree on free ports
// of 127.0.0.1, with its own etcd and PostgreSQL; stopped by PID (SIGINT, as Ctrl-C; SIGKILL if it
// does not exit), also when a test fails. Started the way test/integration/offline.test.ts does.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

export interface LocalStack {
  apiUrl: string;
  token: string;
  etcdEndpoint: string;
  metaPrefix: string;
  /** The local EventBridge: POST /_local/fire-schedule runs one scheduled-health pass. */
  eventBridgeUrl: string;
  /** PostgreSQL (from the start log) and the WebSocket proxy the Neon driver goes through. */
  databaseUrl: string;
  neonWsProxy: string;
  /** What the stack printed (for failure reports). */
  output(): string;
  /** One sweep pass, as the start banner's on-demand command does. */
  fireSchedule(): Promise<unknown>;
  stop(): Promise<void>;
}

export async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const p = (s.address() as { port: number }).port;
  await new Promise((r) => s.close(r));
  return p;
}

export async function startLocalStack(token: string): Promise<LocalStack> {
  const dir = mkdtempSync(join(tmpdir(), 'circuitry-e2e-'));
  const stateFile = join(dir, 'state.json');
  const [httpPort, lambdaPort] = [await freePort(), await freePort()];
  let output = '';
  const child: ChildProcess = spawn(
    process.execPath,
    ['--import', 'tsx', `${ROOT}harness/devstack/stack.ts`, '--http-port', String(httpPort), '--lambda-port', String(lambdaPort)],
    {
      cwd: ROOT,
      env: { ...process.env, LOCAL_STACK_STATE: stateFile, API_TOKENS: token, POWERTOOLS_LOG_LEVEL: 'WARN', TRAEFIK_ROOT: 'traefik', META_PREFIX: 'circuitry' },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  const keep = (d: Buffer) => {
    output += d.toString();
    if (output.length > 200_000) output = output.slice(-100_000);
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);

  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGINT');
      await new Promise((r) => setTimeout(r, 10_000).unref() && child.once('exit', r));
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    }
    rmSync(dir, { recursive: true, force: true });
  };

  try {
    for (let i = 0; !existsSync(stateFile); i++) {
      if (child.exitCode !== null || i > 1200) throw new Error(`local stack did not start:\n${output.slice(-3000)}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    const state = JSON.parse(readFileSync(stateFile, 'utf8')) as { apiUrl: string; token: string; etcdEndpoint: string; metaPrefix: string; eventBridgeUrl: string };
    // "[hh:mm:ss] etcd http://…, postgres postgres://… (via ws proxy 127.0.0.1:port/v2)"
    const m = /postgres (postgres:\/\/\S+) \(via ws proxy (\S+)\)/.exec(output);
    if (m === null) throw new Error(`no database URL in the start log:\n${output.slice(-3000)}`);
    return {
      ...state,
      databaseUrl: m[1]!,
      neonWsProxy: m[2]!,
      output: () => output,
      async fireSchedule() {
        const r = await fetch(`${state.eventBridgeUrl}/_local/fire-schedule`, { method: 'POST' });
        const text = await r.text();
        if (!r.ok) throw new Error(`fire-schedule: ${r.status} ${text.slice(0, 500)}`);
        return JSON.parse(text) as unknown;
      },
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}
