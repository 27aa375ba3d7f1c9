// Shared helpers for integration tests: a runtime on the real etcd + Postgres started by the
// global setup, isolated per test by its own Traefik root and meta prefix.
import { randomUUID } from 'node:crypto';
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { Etcd3 } from 'etcd3';
import { parseConfig, type Config } from '../../lib/config.js';
import { createRuntime, Invocation, type Runtime } from '../../lib/runtime.js';
import { createCircuit, createClient, registerWorker, type Queryable } from '../../lib/db/index.js';
import { createCircuitSchema, type RouteInput } from '../../lib/model.js';
import { enc, kvKey, kvValue, prefixEnd } from '../../lib/etcd/keys.js';

export function testConfig(overrides: Record<string, string> = {}): Config {
  const tag = randomUUID().slice(0, 8);
  return parseConfig({ ...process.env, TRAEFIK_ROOT: `traefik-${tag}`, META_PREFIX: `circuitry-${tag}`, ...overrides });
}

/** A runtime with its own Traefik root and meta prefix; close it with closeRuntime. */
export function testRuntime(overrides: Record<string, string> = {}): Runtime {
  return createRuntime(testConfig(overrides));
}

export const db = (rt: Runtime): Queryable => rt.db;

export async function keysUnder(etcd: Etcd3, prefix: string): Promise<Map<string, string>> {
  const r = await etcd.kv.range({ key: enc(prefix), range_end: prefixEnd(enc(prefix)) });
  return new Map(r.kvs.map((kv) => [kvKey(kv), kvValue(kv)]));
}

export function route(i: number, over: Partial<RouteInput> = {}): RouteInput {
  return {
    routeId: randomUUID(),
    sessionId: randomUUID(),
    host: `127.0.0.${(i % 250) + 1}`,
    port: 20000 + i,
    trafficRatio: 1,
    ...over,
  };
}

let portSeq = 10000 + Math.floor(Math.random() * 40000);

/** Registers a fresh worker and creates a circuit on it (not yet propagated). */
export async function seedCircuit(
  rt: Runtime,
  opts: { routes?: RouteInput[]; protocol?: 'http' | 'tcp'; healthCheck?: null; allowedClientIps?: string[] } = {},
) {
  const authority = `w-${randomUUID().slice(0, 8)}`;
  await registerWorker(rt.db, { authority, hostname: `${authority}.example.com`, wildcardDomain: 'apps.example.com', tls: false });
  const input = createCircuitSchema(rt.config.maxRoutesPerCircuit).parse({
    worker: authority,
    protocol: opts.protocol ?? 'http',
    appMode: 'interactive',
    frontend: { mode: 'port', port: portSeq++ },
    healthCheck: opts.healthCheck ?? null,
    allowedClientIps: opts.allowedClientIps ?? [],
    routes: opts.routes ?? [route(0), route(1), route(2)],
  });
  const id = randomUUID();
  const view = await createCircuit(db(rt), id, input);
  return { id, worker: authority, view };
}

export const invocation = (rt: Runtime) => new Invocation(rt);

// ---- child processes -------------------------------------------------------------------------

const PROC_DIR = fileURLToPath(new URL('./procs/', import.meta.url));
const live = new Set<ChildProcess>();
process.on('exit', () => {
  for (const c of live) if (c.exitCode === null) c.kill('SIGKILL');
});

export interface Proc {
  child: ChildProcess;
  lines: string[];
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<string>;
  exited: Promise<number | null>;
  send(line: string): void;
}

/** Starts test/support/procs/<script>.ts as its own OS process (tsx), tracking its output. */
export function startProc(script: string, args: string[], env: Record<string, string> = {}): Proc {
  const child = spawn(process.execPath, ['--import', 'tsx', `${PROC_DIR}${script}.ts`, ...args], {
    env: { ...process.env, POWERTOOLS_LOG_LEVEL: 'ERROR', ...env },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  live.add(child);
  const lines: string[] = [];
  const waiters: Array<() => void> = [];
  let buf = '';
  child.stdout!.on('data', (d: Buffer) => {
    buf += d.toString();
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      lines.push(buf.slice(0, i));
      buf = buf.slice(i + 1);
      for (const w of waiters.splice(0)) w();
    }
  });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<number | null>((resolve) =>
    child.on('exit', (code) => {
      live.delete(child);
      for (const w of waiters.splice(0)) w();
      resolve(code);
    }),
  );
  return {
    child,
    lines,
    exited,
    send: (line) => child.stdin!.write(line + '\n'),
    waitFor(pattern, timeoutMs = 30_000) {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`timed out waiting for ${pattern} from ${script}; stderr: ${stderr.slice(-2000)}`)), timeoutMs);
        const check = () => {
          const hit = lines.find((l) => pattern.test(l));
          if (hit !== undefined) {
            clearTimeout(timer);
            resolve(hit);
          } else if (child.exitCode !== null || child.signalCode !== null) {
            clearTimeout(timer);
            reject(new Error(`${script} exited (${child.exitCode ?? child.signalCode}) before ${pattern}; stderr: ${stderr.slice(-2000)}`));
          } else waiters.push(check);
        };
        check();
      });
    },
  };
}

export function killAll(): void {
  for (const c of live) if (c.exitCode === null) c.kill('SIGKILL');
}

/** A database connection of its own (transactions held open across statements); end it with release(). */
export async function rawConnection(rt: Runtime): Promise<Queryable & { release: () => void }> {
  const c = createClient({ databaseUrl: rt.config.databaseUrl, neonWsProxy: rt.config.neonWsProxy, onError: () => {} });
  await c.connect();
  return {
    query: <R,>(text: string, params?: unknown[]) => c.query(text, params) as unknown as Promise<{ rows: R[]; rowCount: number | null }>,
    release: () => void c.end().catch(() => {}),
  };
}

/** A fence for calling locked statements directly (lib/db/locked.ts). */
export const fence = (revision: string | number, epoch = 0) => ({ epoch, revision: String(revision) });
