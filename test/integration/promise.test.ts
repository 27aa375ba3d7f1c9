// The promise, closed for good: each test forces one interleaving that an outside review found,
// on the real etcd and PostgreSQL, with failpoints (lib/failpoints.ts) holding a writer exactly
// where the race needs it. Every test fails without the fix it is named after.
import { randomUUID } from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { closeRuntime, Invocation, type Runtime } from '../../lib/runtime.js';
import { propagate } from '../../lib/circuits/propagate.js';
import { unload, requestUnload, completePendingUnloads } from '../../lib/circuits/unload.js';
import { updateRoutes } from '../../lib/circuits/update-routes.js';
import { createAndPublish } from '../../lib/circuits/create.js';
import { getCircuit } from '../../lib/circuits/read.js';
import { registerWorker } from '../../lib/circuits/workers.js';
import { readCircuit, registerWorker as storeWorker } from '../../lib/db/index.js';
import { acquire, decodeMeta, epochKey, lockPrefix, metaKey, withLock, type AcquireOptions } from '../../lib/etcd/index.js';
import { ConflictError, DependencyError, RejectedError, SessionLostError, StaleFenceError } from '../../lib/errors.js';
import { armFailpoint, pauseAt } from '../../lib/failpoints.js';
import { createCircuitSchema } from '../../lib/model.js';
import { workerRoot } from '../../lib/traefik/names.js';
import { runSweep } from '../../lib/health/sweep.js';
import type { Publisher } from '../../lib/events.js';
import { keysUnder, route, seedCircuit, testRuntime } from '../support/rt.js';

let rt: Runtime;
const invs: Invocation[] = [];
const inv = (label = '') => {
  const i = new Invocation(rt, label);
  invs.push(i);
  return i;
};
const disarms: Array<() => void> = [];

beforeAll(() => {
  rt = testRuntime({ UNLOAD_GRACE_SECONDS: '30' });
});
afterEach(async () => {
  for (const d of disarms.splice(0)) d();
  await Promise.all(invs.splice(0).map((i) => i.close().catch(() => {})));
});
afterAll(() => closeRuntime(rt));

const meta = async (id: string) => {
  const m = await keysUnder(rt.etcd, metaKey(rt.config.metaPrefix, id));
  const v = m.get(metaKey(rt.config.metaPrefix, id));
  return v === undefined ? null : decodeMeta(v);
};
const circuitKeys = async (worker: string, id: string) =>
  [...(await keysUnder(rt.etcd, `${workerRoot(rt.config.traefikRoot, worker)}/`)).keys()].filter((k) => k.includes(id));
const settle = <T,>(p: Promise<T>) => p.then((v) => v, (e: unknown) => e as Error);
const lockOpts = (id: string, waitMs = 1000): AcquireOptions => ({
  prefix: lockPrefix(rt.config.metaPrefix, id),
  epochKey: epochKey(rt.config.metaPrefix),
  waitMs,
  rpcTimeoutMs: rt.config.etcd.timeoutMs,
});

describe('every lock holder fences the database, readers included', () => {
  it.each([
    ['an unload', (i: Invocation, id: string) => unload(i, id)],
    ['an update-routes', (i: Invocation, id: string) => updateRoutes(i, id, [route(9)])],
  ])('%s superseded while paused cannot commit after a drift repair that only read the circuit', async (_, staleWrite) => {
    const c = await seedCircuit(rt, { routes: [route(1), route(2)] });
    await propagate(inv(), c.id);
    // Drift, so that the repair has something to write.
    const rule = (await circuitKeys(c.worker, c.id)).find((k) => k.endsWith('/rule'))!;
    await rt.etcd.delete().key(rule);

    const U = inv('U');
    const D = inv('D');
    // U takes the lock and stops before its database statement ...
    const pausedU = pauseAt('propagate.locked', (ctx) => ctx.holder === 'U');
    disarms.push(pausedU.disarm);
    const u = settle(staleWrite(U, c.id));
    await pausedU.reached;
    // ... and its lease expires meanwhile (a frozen Lambda): its lock key is gone.
    await (await U.session()).close();
    // The drift repair D takes the lock, reads the circuit (live) and stops before its apply.
    const pausedD = pauseAt('propagate.beforeApply', (ctx) => ctx.holder === 'D');
    disarms.push(pausedD.disarm);
    const d = settle(propagate(D, c.id));
    await pausedD.reached;
    // U resumes: its statement must be refused, D having touched the circuit under a newer lock.
    pausedU.release();
    const uResult = await u;
    pausedD.release();
    const dResult = await d;

    expect(uResult).toBeInstanceOf(StaleFenceError);
    expect(dResult).toMatchObject({ applied: true });
    const row = (await readCircuit(rt.db, c.id))!.circuit;
    const m = await meta(c.id);
    // The promise itself: no write of the circuit follows a committed deletion, no etcd meta
    // claims a generation the database has moved past.
    expect(row.deletedAt).toBeNull();
    expect(m).toMatchObject({ generation: row.generation, deleted: false });
    expect(row.routes.map((r) => r.port).sort()).toEqual(c.view.circuit.routes.map((r) => r.port).sort());
  });
});

describe('an accepted DELETE is durable', () => {
  const dropping: Publisher = {
    publish: async () => {
      throw new Error('EventBridge unreachable');
    },
  };

  it('is recorded before the answer, shows as deleting, and the sweep completes it after the grace period', async () => {
    const c = await seedCircuit(rt, { routes: [route(1)] });
    await propagate(inv(), c.id);
    const publishErrors: Error[] = [];
    const r = await requestUnload(rt, dropping, c.id, (e) => publishErrors.push(e));
    expect(r).toMatchObject({ alreadyDeleted: false, eventPublished: false });
    expect(publishErrors).toHaveLength(1);
    const read = (await getCircuit(rt, c.id))!;
    expect(read.status).toBe('deleting');
    expect(read.view.circuit.unloadRequestedAt).not.toBeNull();

    // Within the grace period the event may still come: the sweep leaves it.
    // (Other tests' circuits share this database: look at ours only.)
    const touched: string[] = [];
    await completePendingUnloads(inv(), { olderThanSeconds: rt.config.unloadGraceSeconds, onEach: (_r, id) => void touched.push(id) });
    expect(touched).not.toContain(c.id);
    expect((await readCircuit(rt.db, c.id))!.circuit.deletedAt).toBeNull();

    // Past the grace period (moved back in time rather than waited for), one sweep completes it.
    await rt.db.query("UPDATE circuits SET unload_requested_at = now() - interval '10 minutes' WHERE id = $1", [c.id]);
    const s = await runSweep(inv(), { publish: async () => {}, drift: false });
    expect(s.pendingUnloadsCompleted).toBeGreaterThanOrEqual(1);
    expect((await readCircuit(rt.db, c.id))!.circuit.deletedAt).not.toBeNull();
    expect(await circuitKeys(c.worker, c.id)).toEqual([]);
    expect(await meta(c.id)).toMatchObject({ deleted: true });
  });

  it('a circuit being unloaded takes no new routes (409), so nothing accepted is undone by the unload', async () => {
    const c = await seedCircuit(rt, { routes: [route(1)] });
    await requestUnload(rt, dropping, c.id);
    const e = await settle(updateRoutes(inv(), c.id, [route(2)]));
    expect(e).toBeInstanceOf(ConflictError);
    expect((e as ConflictError).code).toBe('unloading');
  });
});

describe("a frontend is reusable only once the previous circuit's keys are gone", () => {
  it('an unload whose etcd apply fails after its commit keeps the port taken (409 + Retry-After) until the sweep removes the keys', async () => {
    const c = await seedCircuit(rt, { routes: [route(1)] });
    await propagate(inv(), c.id);
    const port = c.view.circuit.frontend.mode === 'port' ? c.view.circuit.frontend.port : 0;
    disarms.push(
      armFailpoint('propagate.beforeApply', (ctx) => {
        if (ctx.holder === 'U') throw new DependencyError('etcd', 'connection lost during the apply');
      }),
    );
    const r = await unload(inv('U'), c.id);
    expect(r).toMatchObject({ deleted: true, applied: false });
    expect((await circuitKeys(c.worker, c.id)).length).toBeGreaterThan(0); // the old router is still live

    const input = createCircuitSchema().parse({
      id: randomUUID(),
      worker: c.worker,
      protocol: 'http',
      appMode: 'interactive',
      frontend: { mode: 'port', port },
      routes: [route(2)],
    });
    const refused = await settle(createAndPublish(inv(), input));
    expect(refused).toBeInstanceOf(ConflictError);
    expect(refused).toMatchObject({ code: 'frontend-releasing' });
    expect((refused as ConflictError).retryAfterSeconds).toBeGreaterThan(0);
    expect(await readCircuit(rt.db, input.id!)).toBeNull();

    const s = await runSweep(inv(), { publish: async () => {} });
    expect(s.frontendsReleased).toBeGreaterThanOrEqual(1);
    expect(await circuitKeys(c.worker, c.id)).toEqual([]);
    const created = await createAndPublish(inv(), input);
    expect(created.sync.applied).toBe(true);
  });
});

describe('a lock key never outlives a failed acquire or release', () => {
  it('an acquire whose answer is lost withdraws its key, and the session goes on', async () => {
    const id = randomUUID();
    const i = inv();
    const session = await i.session();
    const kv = rt.etcd.kv;
    const txn = kv.txn.bind(kv);
    let lost = false;
    kv.txn = (async (...a: Parameters<typeof txn>) => {
      const res = await txn(...a);
      if (!lost) {
        lost = true; // the put committed; its answer never arrives
        throw Object.assign(new Error('14 UNAVAILABLE: connection reset'), { name: 'GRPCUnavailableError' });
      }
      return res;
    }) as typeof kv.txn;
    let failed: unknown;
    try {
      failed = await settle(acquire(session, lockOpts(id)));
    } finally {
      kv.txn = txn;
    }
    expect(failed).toBeInstanceOf(Error);
    expect((await keysUnder(rt.etcd, lockPrefix(rt.config.metaPrefix, id))).size).toBe(0);
    expect(session.lost).toBe(false);
    // Nobody is stuck behind a key nobody will release.
    const other = await acquire(await inv().session(), lockOpts(id, 500));
    await other.lock.release(1000);
  });

  it('a release that fails revokes the lease, so the key vanishes with it', async () => {
    const id = randomUUID();
    const i = inv();
    const session = await i.session();
    const kv = rt.etcd.kv;
    const deleteRange = kv.deleteRange.bind(kv);
    kv.deleteRange = (async () => {
      throw new Error('14 UNAVAILABLE: connection reset');
    }) as typeof kv.deleteRange;
    try {
      await withLock(session, lockOpts(id), async () => {});
    } finally {
      kv.deleteRange = deleteRange;
    }
    expect(session.lost).toBe(true);
    expect((await keysUnder(rt.etcd, lockPrefix(rt.config.metaPrefix, id))).size).toBe(0);
  });
});

describe('a worker change and a create do not race', () => {
  it('a wildcard circuit never commits on a worker whose wildcard domain is being removed', async () => {
    const authority = `w-${randomUUID().slice(0, 8)}`;
    await storeWorker(rt.db, { authority, hostname: `${authority}.example.com`, wildcardDomain: 'apps.example.com', tls: false });
    // The worker change holds its row lock (after locking, before its check and update) ...
    const paused = pauseAt('db.registerWorker.locked');
    disarms.push(paused.disarm);
    const change = settle(registerWorker(inv(), { authority, hostname: `${authority}.example.com`, wildcardDomain: null, tls: false }));
    await paused.reached;
    // ... while a wildcard circuit is created on it: the create must wait for the change.
    const input = createCircuitSchema().parse({
      id: randomUUID(),
      worker: authority,
      protocol: 'http',
      appMode: 'interactive',
      frontend: { mode: 'wildcard', subdomain: 'app' },
      routes: [route(1)],
    });
    let createDone = false;
    const create = settle(createAndPublish(inv(), input)).finally(() => (createDone = true));
    await new Promise((r) => setTimeout(r, 400));
    expect(createDone).toBe(false);
    paused.release();
    expect(await change).toMatchObject({ worker: { wildcardDomain: null } });
    const created = await create;
    expect(created).toBeInstanceOf(RejectedError);
    expect(await readCircuit(rt.db, input.id!)).toBeNull();
  });

  it('a worker change after a wildcard circuit committed is refused (409), the circuit stays renderable', async () => {
    const authority = `w-${randomUUID().slice(0, 8)}`;
    await storeWorker(rt.db, { authority, hostname: `${authority}.example.com`, wildcardDomain: 'apps.example.com', tls: false });
    const input = createCircuitSchema().parse({ worker: authority, protocol: 'http', appMode: 'interactive', frontend: { mode: 'wildcard', subdomain: 'app' }, routes: [route(1)] });
    await createAndPublish(inv(), input);
    const e = await settle(registerWorker(inv(), { authority, hostname: `${authority}.example.com`, wildcardDomain: null, tls: false }));
    expect(e).toBeInstanceOf(ConflictError);
    expect((e as ConflictError).code).toBe('worker-in-use');
  });
});

describe("the session's own clock", () => {
  it('is checked before the database change: a holder paused past its TTL changes nothing', async () => {
    const c = await seedCircuit(rt, { routes: [route(1)] });
    await propagate(inv(), c.id);
    const realNow = performance.now.bind(performance);
    disarms.push(
      armFailpoint('propagate.locked', (ctx) => {
        if (ctx.holder !== 'P') return;
        // The pause: when the process resumes, its clock says the TTL has long passed.
        const jumped = realNow() + (rt.config.lockTtlSeconds + 5) * 1000;
        performance.now = () => jumped;
      }),
    );
    let e: unknown;
    try {
      e = await settle(updateRoutes(inv('P'), c.id, [route(7)]));
    } finally {
      performance.now = realNow;
    }
    expect(e).toBeInstanceOf(SessionLostError);
    expect((await readCircuit(rt.db, c.id))!.circuit.generation).toBe(1);
  });

  it('a session found lost locally revokes its lease: its lock keys vanish at once', async () => {
    const id = randomUUID();
    const i = inv();
    const session = await i.session();
    const held = await acquire(session, lockOpts(id));
    expect((await keysUnder(rt.etcd, lockPrefix(rt.config.metaPrefix, id))).size).toBe(1);
    const realNow = performance.now.bind(performance);
    const jumped = realNow() + (rt.config.lockTtlSeconds + 5) * 1000;
    performance.now = () => jumped;
    try {
      expect(session.lost).toBe(true);
    } finally {
      performance.now = realNow;
    }
    // The revoke is sent at once; wait for it to land (far less than the TTL).
    const until = Date.now() + 1500;
    while ((await keysUnder(rt.etcd, lockPrefix(rt.config.metaPrefix, id))).size > 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
    expect((await keysUnder(rt.etcd, lockPrefix(rt.config.metaPrefix, id))).size).toBe(0);
    expect(held.lock.createRevision).not.toBe('0');
  });
});
