// Dependency failures through the real handlers: etcd or PostgreSQL unreachable,
// stopped before a request, stopped in the middle of one (while it waits for the circuit lock,
// after the database commit, before it), or hanging. Every time: a 503 problem with Retry-After
// within the configured timeouts, and no partial write: either the old state or the new state,
// fully; when the database committed but etcd did not, the response says applied: false and the
// next propagate converges etcd.
//
// This file starts its OWN etcd and PostgreSQL (it stops them), and points the process-wide
// runtime of the handlers at them before the first handler call.
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { mockClient } from 'aws-sdk-client-mock';
import { EventBridgeClient, PutEventsCommand } from '@aws-sdk/client-eventbridge';
import { startServices, type Services } from '../../harness/devstack/services.js';
import { migrate } from '../../lib/db/migrate.js';

const tag = randomUUID().slice(0, 8);
const T = { ETCD_TIMEOUT_MS: 1000, DATABASE_TIMEOUT_MS: 1500, LOCK_WAIT_MS: 1500, LOCK_TTL_SECONDS: 2 };
Object.assign(process.env, {
  TRAEFIK_ROOT: `traefik-df${tag}`,
  META_PREFIX: `circuitry-df${tag}`,
  ETCD_TIMEOUT_MS: String(T.ETCD_TIMEOUT_MS),
  DATABASE_TIMEOUT_MS: String(T.DATABASE_TIMEOUT_MS),
  LOCK_WAIT_MS: String(T.LOCK_WAIT_MS),
  LOCK_TTL_SECONDS: String(T.LOCK_TTL_SECONDS),
  AWS_REGION: 'us-east-1',
  AWS_ACCESS_KEY_ID: 'test',
  AWS_SECRET_ACCESS_KEY: 'test',
  POWERTOOLS_LOG_LEVEL: process.env.DF_LOG ?? 'CRITICAL',
  POWERTOOLS_METRICS_DISABLED: 'true',
});

const { handler: circuitsApi } = await import('../../functions/circuits-api.js');
const { handler: updateRoutesFn } = await import('../../functions/update-routes.js');
const { getRuntime, closeRuntime, Invocation } = await import('../../lib/runtime.js');
const { resetConfigCache } = await import('../../lib/config.js');
const { acquire } = await import('../../lib/etcd/index.js');
const { propagate } = await import('../../lib/circuits/propagate.js');
const { epochKey, lockPrefix, metaKey } = await import('../../lib/etcd/index.js');
const { workerRoot } = await import('../../lib/traefik/names.js');
const { keysUnder, route } = await import('../support/rt.js');
const { call } = await import('../support/lambda.js');
type Res = Awaited<ReturnType<typeof call>>;

const eb = mockClient(EventBridgeClient);
beforeEach(() => {
  eb.reset();
  eb.on(PutEventsCommand).callsFake((input: { Entries: unknown[] }) => ({ FailedEntryCount: 0, Entries: input.Entries.map(() => ({ EventId: randomUUID() })) }));
});

let services: Services;
const rt = () => getRuntime();
const worker = `w-df${tag}`;
let portSeq = 20000 + Math.floor(Math.random() * 20000);

beforeAll(async () => {
  services = await startServices();
  await migrate(services.env.DATABASE_URL!, services.env.NEON_WS_PROXY);
  Object.assign(process.env, services.env);
  resetConfigCache();
  expect(getRuntime().config.etcd.endpoints).toEqual([services.etcd.endpoint]);
  const w = await call(circuitsApi, { method: 'PUT', path: `/v2/workers/${worker}`, pathParameters: { authority: worker }, body: { hostname: 'proxy.example.com', wildcardDomain: 'apps.example.com' } });
  expect(w.statusCode).toBe(201);
}, 120_000);

afterAll(async () => {
  eb.restore();
  await closeRuntime(getRuntime());
  await services?.stop();
}, 60_000);

/** Both services running (a test that stopped one restarts it; this is the safety net). */
async function bothUp(): Promise<void> {
  await Promise.all([services.etcd.start(), services.postgres.start()]);
}

async function createCircuit(): Promise<string> {
  const r = await call(circuitsApi, { method: 'POST', path: '/v2/circuits', body: { worker, protocol: 'http', appMode: 'inference', frontend: { mode: 'port', port: portSeq++ }, healthCheck: null, routes: [route(1), route(2)] } });
  expect(r.statusCode, JSON.stringify(r.json)).toBe(201);
  expect(r.json.publish).toEqual({ applied: true });
  return r.json.id as string;
}

const putRoutes = (id: string, routes: unknown[]) => call(updateRoutesFn, { method: 'PUT', path: `/v2/circuits/${id}/routes`, pathParameters: { id }, body: { routes } });
const getCircuit = (id: string) => call(circuitsApi, { method: 'GET', path: `/v2/circuits/${id}`, pathParameters: { id } });
const root = () => `${workerRoot(rt().config.traefikRoot, worker)}/`;

/** The circuit's Traefik keys and its meta key, as etcd has them. */
async function etcdState(id: string): Promise<string> {
  const keys = [...(await keysUnder(rt().etcd, root())).entries()].filter(([k]) => k.includes(id)).sort();
  const meta = [...(await keysUnder(rt().etcd, metaKey(rt().config.metaPrefix, id))).values()].map((v) => JSON.parse(v) as { generation: number; deleted: boolean });
  return JSON.stringify({ keys, meta: meta.map((m) => ({ generation: m.generation, deleted: m.deleted })) });
}

async function dbState(id: string): Promise<string> {
  const db = rt().db as unknown as { query: (q: string, p: unknown[]) => Promise<{ rows: unknown[] }> };
  const r = await db.query(
    `SELECT c.generation, c.deleted_at IS NOT NULL AS deleted,
            (SELECT json_agg(json_build_array(route_id, host, port, traffic_ratio) ORDER BY position) FROM routes WHERE circuit_id = c.id) AS routes
       FROM circuits c WHERE c.id = $1`,
    [id],
  );
  return JSON.stringify(r.rows[0]);
}

const lockKeys = async (id: string) => (await keysUnder(rt().etcd, lockPrefix(rt().config.metaPrefix, id))).size;

function expect503(r: Res, label: string): void {
  expect(r.statusCode, `${label}: ${JSON.stringify(r.json)}`).toBe(503);
  expect(r.headers['content-type']).toBe('application/problem+json');
  expect(r.headers['retry-after'], label).toMatch(/^[1-9]\d*$/);
  expect(r.json).toMatchObject({ status: 503, title: 'Service Unavailable' });
}

/** pid and all its descendants, from /proc. */
function processTree(pid: number): number[] {
  const children = new Map<number, number[]>();
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${d}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      children.set(ppid, [...(children.get(ppid) ?? []), Number(d)]);
    } catch {
      // gone meanwhile
    }
  }
  const out = [pid];
  for (let i = 0; i < out.length; i++) out.push(...(children.get(out[i]!) ?? []));
  return out;
}

async function timed<R>(f: () => Promise<R>): Promise<{ r: R; ms: number }> {
  const t0 = performance.now();
  const r = await f();
  return { r, ms: performance.now() - t0 };
}

async function waitFor(cond: () => Promise<boolean>, what: string, ms = 10_000): Promise<void> {
  const until = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Propagates until etcd holds the database's generation (the sweep's job; lock leftovers expire by TTL). */
async function converge(id: string): Promise<void> {
  await waitFor(async () => {
    const inv = new Invocation(rt());
    try {
      const r = await propagate(inv, id);
      return r.applied;
    } catch {
      return false;
    } finally {
      await inv.close();
    }
  }, `convergence of ${id}`, 15_000);
}

// An etcd call is bounded by ETCD_TIMEOUT_MS and a request makes a few in a row; the lock wait is
// bounded by LOCK_WAIT_MS. Generous bounds: what matters is "seconds, not the Lambda timeout".
const ETCD_BOUND = 4 * T.ETCD_TIMEOUT_MS + 1000;
const DB_BOUND = 2 * T.DATABASE_TIMEOUT_MS + T.ETCD_TIMEOUT_MS + 1000;

describe('etcd down', () => {
  beforeEach(bothUp);

  it('stopped before the request: 503 + Retry-After for every call that needs etcd; database untouched', async () => {
    const id = await createCircuit();
    const db0 = await dbState(id);
    await services.etcd.stop();
    try {
      const put = await timed(() => putRoutes(id, [route(3)]));
      expect503(put.r, 'PUT routes');
      expect(put.ms).toBeLessThan(ETCD_BOUND);
      const get = await timed(() => getCircuit(id));
      expect503(get.r, 'GET circuit');
      expect(get.ms).toBeLessThan(ETCD_BOUND);
      const w = await timed(() => call(circuitsApi, { method: 'PUT', path: `/v2/workers/${worker}`, pathParameters: { authority: worker }, body: { hostname: 'proxy.example.com', wildcardDomain: 'apps.example.com' } }));
      expect(w.r.statusCode).toBe(200); // unchanged worker: nothing to republish, no etcd call
      // The health endpoint says which dependency is down, without a token and without detail.
      const h = await timed(() => call(circuitsApi, { method: 'GET', path: '/v2/health', token: null }));
      expect(h.r.statusCode).toBe(503);
      expect(h.r.headers['retry-after']).toBe('5');
      expect(h.r.json).toEqual({ status: 'unavailable', etcd: { ok: false, latencyMs: expect.any(Number) }, database: { ok: true, latencyMs: expect.any(Number) } });
      expect(h.ms).toBeLessThan(ETCD_BOUND);
      expect(await dbState(id)).toBe(db0);
    } finally {
      await services.etcd.start();
    }
    expect(await dbState(id)).toBe(db0);
    const after = await putRoutes(id, [route(4)]);
    expect(after.statusCode).toBe(200);
    expect(after.json).toMatchObject({ generation: 2, applied: true });
  });

  it('stopped while update-routes waits for the lock: 503 within LOCK_WAIT_MS, nothing written', async () => {
    const id = await createCircuit();
    const [db0, etcd0] = [await dbState(id), await etcdState(id)];
    const holder = new Invocation(rt());
    const held = await acquire(await holder.session(), { prefix: lockPrefix(rt().config.metaPrefix, id), epochKey: epochKey(rt().config.metaPrefix), waitMs: 100, rpcTimeoutMs: 1000 });
    const pending = timed(() => putRoutes(id, [route(5)]));
    await waitFor(async () => (await lockKeys(id)) === 2, 'the request to queue for the lock');
    await services.etcd.stop();
    const { r, ms } = await pending;
    expect503(r, 'PUT routes');
    expect(ms).toBeLessThan(T.LOCK_WAIT_MS + ETCD_BOUND);
    await services.etcd.start();
    await held.lock.release(1000).catch(() => {});
    await holder.close();
    expect(await dbState(id)).toBe(db0);
    expect(await etcdState(id)).toBe(etcd0);
  });

  it('stopped after the database commit: 200 applied:false, and the next propagate converges', async () => {
    const id = await createCircuit();
    const db = rt().db as unknown as { query: (...a: unknown[]) => Promise<unknown> };
    const original = db.query;
    db.query = async (...a: unknown[]) => {
      const res = await original.apply(db, a);
      if (/SET generation = c\.generation \+ 1/.test(String(a[0]))) await services.etcd.stop();
      return res;
    };
    let r: Res;
    let ms: number;
    try {
      ({ r, ms } = await timed(() => putRoutes(id, [route(6), route(7)])));
    } finally {
      db.query = original;
    }
    expect(r.statusCode, JSON.stringify(r.json)).toBe(200);
    // The reason names the category, not internal addresses (the log has the detail).
    expect(r.json).toEqual({ id, generation: 2, applied: false, notAppliedReason: 'etcd unavailable; the database is committed and the next sweep will converge etcd' });
    expect(ms).toBeLessThan(ETCD_BOUND);
    await services.etcd.start();
    // Not half applied: etcd still has generation 1, whole.
    expect(JSON.parse(await etcdState(id)).meta).toEqual([{ generation: 1, deleted: false }]);
    await converge(id);
    const state = JSON.parse(await etcdState(id)) as { keys: Array<[string, string]>; meta: unknown[] };
    expect(state.meta).toEqual([{ generation: 2, deleted: false }]);
    expect(state.keys.filter(([k]) => k.endsWith('/url')).map(([, v]) => v)).toEqual([`http://127.0.0.7:20006/`, `http://127.0.0.8:20007/`]);
    expect((await getCircuit(id)).json.sync).toEqual({ generation: 2, appliedGeneration: 2 });
  });

  it('hanging (SIGSTOP, connections open): 503 within the etcd timeouts; database untouched', async () => {
    const id = await createCircuit();
    const db0 = await dbState(id);
    await getCircuit(id); // a warm gRPC channel to a server that is about to freeze
    const pid = services.etcd.pid;
    process.kill(pid, 'SIGSTOP');
    try {
      const put = await timed(() => putRoutes(id, [route(10)]));
      expect503(put.r, 'PUT routes');
      expect(put.ms).toBeLessThan(ETCD_BOUND);
      const get = await timed(() => getCircuit(id));
      expect503(get.r, 'GET circuit');
      expect(get.ms).toBeLessThan(ETCD_BOUND);
      expect(await dbState(id)).toBe(db0);
    } finally {
      process.kill(pid, 'SIGCONT');
    }
    await converge(id);
    expect(await dbState(id)).toBe(db0);
  });

  it('POST /v2/circuits with etcd stopped: either nothing is created, or the answer says it is not applied', async () => {
    await services.etcd.stop();
    const id = randomUUID();
    let r: Res;
    try {
      r = await call(circuitsApi, { method: 'POST', path: '/v2/circuits', body: { id, worker, protocol: 'http', appMode: 'inference', frontend: { mode: 'port', port: portSeq++ }, healthCheck: null, routes: [route(1)] } });
    } finally {
      await services.etcd.start();
    }
    const row = await dbState(id);
    if (r.statusCode === 503) expect(row, 'a 503 must mean nothing was created').toBeUndefined();
    else {
      expect({ status: r.statusCode, publish: r.json.publish }).toMatchObject({ status: 201, publish: { applied: false } });
      expect(JSON.stringify(r.json.publish)).not.toMatch(/127\.0\.0\.1|ECONNREFUSED/);
    }
  });

  it('unreachable (nothing listening): 503 within the timeout', async () => {
    const id = await createCircuit();
    const db0 = await dbState(id);
    await closeRuntime(getRuntime());
    const real = process.env.ETCD_ENDPOINTS!;
    process.env.ETCD_ENDPOINTS = 'http://127.0.0.1:9'; // discard port: refused
    resetConfigCache();
    try {
      const put = await timed(() => putRoutes(id, [route(8)]));
      expect503(put.r, 'PUT routes');
      expect(put.ms).toBeLessThan(ETCD_BOUND);
      expect503((await getCircuit(id)), 'GET');
    } finally {
      await closeRuntime(getRuntime());
      process.env.ETCD_ENDPOINTS = real;
      resetConfigCache();
    }
    expect(await dbState(id)).toBe(db0);
  });
});

describe('PostgreSQL down', () => {
  beforeEach(bothUp);

  it('stopped before the request: 503 + Retry-After on every route; etcd untouched and the lock released', async () => {
    const id = await createCircuit();
    const etcd0 = await etcdState(id);
    await services.postgres.stop();
    try {
      const calls: Array<[string, () => Promise<Res>]> = [
        ['PUT routes', () => putRoutes(id, [route(3)])],
        ['GET circuit', () => getCircuit(id)],
        ['GET list', () => call(circuitsApi, { method: 'GET', path: '/v2/circuits' })],
        ['DELETE', () => call(circuitsApi, { method: 'DELETE', path: `/v2/circuits/${id}`, pathParameters: { id } })],
        ['POST', () => call(circuitsApi, { method: 'POST', path: '/v2/circuits', body: { worker, protocol: 'http', appMode: 'inference', frontend: { mode: 'port', port: portSeq++ }, routes: [route(1)] } })],
        ['PUT worker', () => call(circuitsApi, { method: 'PUT', path: `/v2/workers/${worker}`, pathParameters: { authority: worker }, body: { hostname: 'other.example.com' } })],
      ];
      for (const [label, f] of calls) {
        const { r, ms } = await timed(f);
        expect503(r, label);
        expect(ms, label).toBeLessThan(DB_BOUND);
      }
      expect(await etcdState(id)).toBe(etcd0);
      expect(await lockKeys(id)).toBe(0);
      expect(eb.commandCalls(PutEventsCommand)).toHaveLength(0);
      const h = await call(circuitsApi, { method: 'GET', path: '/v2/health', token: null });
      expect(h.statusCode).toBe(503);
      expect(h.json).toMatchObject({ status: 'unavailable', etcd: { ok: true }, database: { ok: false } });
    } finally {
      await services.postgres.start();
    }
    expect((await getCircuit(id)).json).toMatchObject({ generation: 1, sync: { generation: 1, appliedGeneration: 1 } });
    expect((await putRoutes(id, [route(4)])).json).toMatchObject({ generation: 2, applied: true });
  });

  it('stopped while update-routes waits for the lock: 503, etcd untouched, then the old state whole', async () => {
    const id = await createCircuit();
    const [db0, etcd0] = [await dbState(id), await etcdState(id)];
    const holder = new Invocation(rt());
    const held = await acquire(await holder.session(), { prefix: lockPrefix(rt().config.metaPrefix, id), epochKey: epochKey(rt().config.metaPrefix), waitMs: 100, rpcTimeoutMs: 1000 });
    const pending = timed(() => putRoutes(id, [route(5), route(6)]));
    await waitFor(async () => (await lockKeys(id)) === 2, 'the request to queue for the lock');
    await services.postgres.stop();
    await held.lock.release(1000);
    await holder.close();
    const { r, ms } = await pending;
    expect503(r, 'PUT routes');
    expect(ms).toBeLessThan(DB_BOUND + 500);
    expect(await etcdState(id)).toBe(etcd0);
    expect(await lockKeys(id)).toBe(0);
    await services.postgres.start();
    expect(await dbState(id)).toBe(db0);
  });

  it('hanging (SIGSTOP, connections open): 503 within DATABASE_TIMEOUT_MS, not the Lambda timeout', async () => {
    const id = await createCircuit();
    const etcd0 = await etcdState(id);
    await getCircuit(id); // a warm pooled connection to a backend that is about to freeze
    // The postmaster and every backend (each backend is its own session, so not one group):
    // all of them descendants of the postgres child this file started.
    const frozen = processTree(services.postgres.pid);
    for (const pid of frozen) process.kill(pid, 'SIGSTOP');
    try {
      const put = await timed(() => putRoutes(id, [route(9)]));
      expect503(put.r, 'PUT routes');
      expect(put.ms).toBeLessThan(DB_BOUND);
      const get = await timed(() => getCircuit(id));
      expect503(get.r, 'GET circuit');
      expect(get.ms).toBeLessThan(DB_BOUND);
      expect(await etcdState(id)).toBe(etcd0);
      expect(await lockKeys(id)).toBe(0);
    } finally {
      for (const pid of frozen) process.kill(pid, 'SIGCONT');
    }
    // The frozen statement may have run after all once the server resumed; either way the
    // database is the truth and one propagate makes etcd agree with it, whole.
    await converge(id);
    const g = (await getCircuit(id)).json as { generation: number; sync: { appliedGeneration: number } };
    expect(g.sync.appliedGeneration).toBe(g.generation);
  });
});
