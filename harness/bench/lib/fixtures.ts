// Fixtures shared by the bench parts: runtimes, route sets, circuits, and the reference-style
// writer the fenced path is compared with.
import { randomUUID } from 'node:crypto';
import { parseConfig, type Config } from '../../../lib/config.js';
import { deadline } from '../../../lib/etcd/index.js';
import { createRuntime, type Runtime } from '../../../lib/runtime.js';
import { createCircuit, readCircuit, registerWorker, replaceRoutes, type Queryable } from '../../../lib/db/index.js';
import type { CircuitView } from '../../../lib/model.js';
import { createCircuitSchema, type RouteInput } from '../../../lib/model.js';
import { render } from '../../../lib/traefik/index.js';
import { circuitNames, workerRoot } from '../../../lib/traefik/index.js';
import { enc, prefixEnd } from '../../../lib/etcd/index.js';

export function benchConfig(overrides: Record<string, string> = {}): Config {
  return parseConfig({
    ...process.env,
    TRAEFIK_ROOT: process.env.TRAEFIK_ROOT ?? 'traefik-bench',
    META_PREFIX: process.env.META_PREFIX ?? 'circuitry-bench',
    LOCK_TTL_SECONDS: process.env.LOCK_TTL_SECONDS ?? '10',
    LOCK_WAIT_MS: process.env.LOCK_WAIT_MS ?? '5000',
    ALLOWED_BACKEND_CIDRS: '127.0.0.0/8',
    ...overrides,
  });
}

/** lib/runtime.ts createRuntime, with a chosen pool size (writers sharing one process). */
export function benchRuntime(config: Config, poolMax = 10): Runtime {
  return createRuntime(config, { poolMax });
}

export const q = (rt: Runtime): Queryable => rt.db;

/** n routes; `variant` shifts ids and ports so two variants differ in every route. */
export function routeSet(n: number, variant: number, seed = randomUUID()): RouteInput[] {
  return Array.from({ length: n }, (_, i) => ({
    routeId: uuidFrom(seed, variant, i),
    sessionId: uuidFrom(seed, variant + 1000, i),
    host: `127.0.0.${(i % 250) + 1}`,
    port: 20_000 + variant * 1000 + i,
    trafficRatio: 1,
  }));
}

function uuidFrom(seed: string, variant: number, i: number): string {
  const tail = ((variant & 0xffff) * 0x10000 + (i & 0xffff)).toString(16).padStart(12, '0');
  return `${seed.slice(0, 24)}${tail}`;
}

let portSeq = 10_000 + Math.floor(Math.random() * 40_000);

/** A fresh worker and a circuit on it (generation 1, not published). */
export async function seedCircuit(rt: Runtime, routes: RouteInput[], healthCheck: null | Record<string, unknown> = null): Promise<CircuitView> {
  const authority = `w-${randomUUID().slice(0, 8)}`;
  await registerWorker(rt.db, { authority, hostname: `${authority}.example.com`, wildcardDomain: 'apps.example.com', tls: false });
  const input = createCircuitSchema(rt.config.maxRoutesPerCircuit).parse({
    worker: authority,
    protocol: 'http',
    appMode: 'inference',
    frontend: { mode: 'port', port: portSeq++ },
    healthCheck,
    allowedClientIps: [],
    routes,
  });
  return createCircuit(q(rt), randomUUID(), input);
}

// ---- the reference way ------------------------------------------------------------------------

export interface BaselineCounts {
  dbQueries: number;
  etcdCalls: number;
}

/**
 * How the reference system writes a circuit: etcd3's Lock (a try-lock on its own lease: lease
 * grant, keepalive stream, create-if-absent txn), the database read (or change) through the same
 * Neon pool, the circuit's subtrees deleted (router, service, middleware: one call each), every
 * key put one by one, and the lock released by revoking its lease.
 */
export async function baselineWrite(rt: Runtime, circuitId: string, worker: string, routes?: readonly RouteInput[]): Promise<BaselineCounts> {
  const { config, etcd } = rt;
  const t = config.etcd.timeoutMs;
  const lock = await etcd.lock(`${config.metaPrefix}/baseline-locks/${circuitId}`).ttl(config.lockTtlSeconds).acquire();
  let etcdCalls = 2; // lease grant + acquire txn
  try {
    // The reference system fenced nothing: a fence that wins over any other.
    const view = routes ? await replaceRoutes(q(rt), circuitId, routes, undefined, { epoch: Number.MAX_SAFE_INTEGER, revision: '0' }) : await readCircuit(q(rt), circuitId);
    if (view === null) throw new Error(`baseline circuit ${circuitId} vanished`);
    const keys = render(view.circuit, view.worker, { traefikRoot: config.traefikRoot });
    const root = workerRoot(config.traefikRoot, worker);
    const n = circuitNames(circuitId);
    const p = view.circuit.protocol;
    for (const prefix of [`${root}/${p}/routers/${n.router}/`, `${root}/${p}/services/${n.service}/`, `${root}/${p}/middlewares/${n.allowList}/`]) {
      await etcd.kv.deleteRange({ key: enc(prefix), range_end: prefixEnd(enc(prefix)) }, deadline(t));
      etcdCalls++;
    }
    for (const [k, v] of keys) {
      await etcd.kv.put({ key: enc(k), value: enc(v) }, deadline(t));
      etcdCalls++;
    }
  } finally {
    await lock.release();
    etcdCalls++;
  }
  return { dbQueries: 1, etcdCalls };
}
