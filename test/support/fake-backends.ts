// Fixtures for the health tests:
//   - fake backends: real HTTP servers on 127.0.0.1 (port 0) whose health path answers as told
//     (200, 500, hang, redirect, huge body), recording requests and connections;
//   - an isolated database per test (CREATE DATABASE + migrations), because a sweep claims and
//     drift-checks EVERY circuit of its database: sharing one with other tests would make them
//     probe and publish each other's circuits;
//   - seeding circuits with health checking.
import http from 'node:http';
import net from 'node:net';
import { randomUUID } from 'node:crypto';
import { createCircuitSchema, type HealthCheckSettings } from '../../lib/model.js';
import { createCircuit, registerWorker, createPool, migrate } from '../../lib/db/index.js';
import { closeRuntime, createRuntime, type Runtime } from '../../lib/runtime.js';
import { db, testConfig } from './rt.js';

// ---- backends --------------------------------------------------------------------------------

export type BackendMode =
  | { kind: 'status'; status: number }
  | { kind: 'hang' }
  | { kind: 'redirect'; location: string; status?: number }
  | { kind: 'body'; bytes: number }
  | { kind: 'alternate' };

export interface RecordedRequest {
  path: string;
  host: string | undefined;
  at: number;
}

export interface Backend {
  host: string;
  port: number;
  /** Requests received (any path). */
  requests: RecordedRequest[];
  /** TCP connections accepted. */
  connections: number;
  /** Body bytes written in 'body' mode (stops growing once the client hangs up). */
  bodyBytesSent: number;
  mode: BackendMode;
  set(mode: BackendMode | number | 'hang'): void;
  /** Resolves when the n-th request (1-based, counting all so far) has arrived. */
  waitForRequest(n?: number, timeoutMs?: number): Promise<RecordedRequest>;
  /** Answers every hanging request with this status. */
  release(status?: number): void;
  close(): Promise<void>;
}

export async function startBackend(host = '127.0.0.1', initial: BackendMode | number = 200): Promise<Backend> {
  const hanging = new Set<http.ServerResponse>();
  const waiters: Array<() => void> = [];
  let flip = 0;
  const server = http.createServer((req, res) => {
    b.requests.push({ path: req.url ?? '', host: req.headers.host, at: Date.now() });
    for (const w of waiters.splice(0)) w();
    const m = b.mode;
    switch (m.kind) {
      case 'status':
        res.writeHead(m.status, { 'Content-Type': 'text/plain' }).end(m.status === 200 ? 'ok' : 'not ok');
        return;
      case 'alternate':
        res.writeHead(flip++ % 2 === 0 ? 500 : 200).end();
        return;
      case 'hang':
        hanging.add(res);
        res.on('close', () => hanging.delete(res));
        return;
      case 'redirect':
        res.writeHead(m.status ?? 302, { Location: m.location }).end();
        return;
      case 'body': {
        res.writeHead(200, { 'Content-Type': 'application/octet-stream' });
        const chunk = Buffer.alloc(64 * 1024, 120);
        let sent = 0;
        const pump = () => {
          while (sent < m.bytes) {
            sent += chunk.length;
            b.bodyBytesSent += chunk.length;
            if (!res.write(chunk)) return void res.once('drain', pump);
          }
          res.end();
        };
        res.on('close', () => (sent = Infinity));
        pump();
        return;
      }
    }
  });
  server.on('connection', () => b.connections++);
  await new Promise<void>((r) => server.listen(0, host, r));
  const toMode = (m: BackendMode | number | 'hang'): BackendMode =>
    typeof m === 'number' ? { kind: 'status', status: m } : m === 'hang' ? { kind: 'hang' } : m;
  const b: Backend = {
    host,
    port: (server.address() as net.AddressInfo).port,
    requests: [],
    connections: 0,
    bodyBytesSent: 0,
    mode: toMode(initial),
    set(mode) {
      b.mode = toMode(mode);
    },
    waitForRequest(n = b.requests.length + 1, timeoutMs = 10_000) {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`backend ${host}:${b.port}: no request #${n} within ${timeoutMs} ms`)), timeoutMs);
        const check = () => {
          if (b.requests.length >= n) {
            clearTimeout(timer);
            resolve(b.requests[n - 1]!);
          } else waiters.push(check);
        };
        check();
      });
    },
    release(status = 200) {
      for (const res of hanging) res.writeHead(status).end();
      hanging.clear();
    },
    async close() {
      for (const res of hanging) res.destroy();
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
  return b;
}

export async function startBackends(n: number, initial: BackendMode | number = 200): Promise<Backend[]> {
  return Promise.all(Array.from({ length: n }, () => startBackend('127.0.0.1', initial)));
}

/** A TCP port with nothing listening on it. */
export async function closedPort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}

// ---- an isolated database --------------------------------------------------------------------

export interface IsolatedRuntime {
  rt: Runtime;
  /** DATABASE_URL of the isolated database (for child processes). */
  databaseUrl: string;
  /** The environment a child process needs to share this runtime's database and prefixes. */
  env: Record<string, string>;
  close(): Promise<void>;
}

/** A runtime on a fresh, migrated database of its own (plus its own Traefik root and meta prefix). */
export async function isolatedRuntime(overrides: Record<string, string> = {}): Promise<IsolatedRuntime> {
  const base = process.env.DATABASE_URL!;
  const name = `health_${randomUUID().replace(/-/g, '').slice(0, 12)}`;
  const admin = createPool({ databaseUrl: base, neonWsProxy: process.env.NEON_WS_PROXY, max: 1 });
  try {
    await admin.query(`CREATE DATABASE ${name}`);
  } finally {
    await admin.end();
  }
  const databaseUrl = base.replace(/\/[^/?]+(\?.*)?$/, `/${name}$1`);
  await migrate(databaseUrl, process.env.NEON_WS_PROXY);
  const config = testConfig({ DATABASE_URL: databaseUrl, ...overrides });
  const rt = createRuntime(config);
  return {
    rt,
    databaseUrl,
    env: { DATABASE_URL: databaseUrl, TRAEFIK_ROOT: config.traefikRoot, META_PREFIX: config.metaPrefix, ...overrides },
    async close() {
      await closeRuntime(rt);
      const a = createPool({ databaseUrl: base, neonWsProxy: process.env.NEON_WS_PROXY, max: 1 });
      await a.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`).catch(() => {});
      await a.end();
    },
  };
}

// ---- circuits with health checking -----------------------------------------------------------

let portSeq = 20000 + Math.floor(Math.random() * 20000);

export interface SeedHealthOptions {
  routes: Array<{ host: string; port: number; routeId?: string }>;
  healthCheck?: Partial<HealthCheckSettings>;
  protocol?: 'http' | 'tcp';
  worker?: string;
}

/** Registers a worker (or reuses one) and creates a circuit with health checking (not propagated). */
export async function seedHealthCircuit(rt: Runtime, opts: SeedHealthOptions) {
  const authority = opts.worker ?? `w-${randomUUID().slice(0, 8)}`;
  await registerWorker(rt.db, { authority, hostname: `${authority}.example.com`, wildcardDomain: 'apps.example.com', tls: false });
  const input = createCircuitSchema(rt.config.maxRoutesPerCircuit).parse({
    worker: authority,
    protocol: opts.protocol ?? 'http',
    appMode: 'inference',
    frontend: { mode: 'port', port: portSeq++ },
    healthCheck: {
      intervalSeconds: 1,
      timeoutMs: 1000,
      unhealthyThreshold: 2,
      healthyThreshold: 2,
      initialDelaySeconds: 0,
      ...opts.healthCheck,
    },
    routes: opts.routes.map((r) => ({ routeId: r.routeId ?? randomUUID(), sessionId: randomUUID(), host: r.host, port: r.port })),
  });
  const id = randomUUID();
  const view = await createCircuit(db(rt), id, input);
  return { id, worker: authority, view, routeIds: input.routes.map((r) => r.routeId) };
}
