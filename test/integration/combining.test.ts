// Combining on a hot circuit, on the real etcd and database, each interleaving forced: writers
// queued behind a holder have their changes applied by the first of them to get the lock, in queue
// order, one generation each, with one etcd write, and learn it without another RPC; when the
// holder cannot tell them (its etcd write failed after its commit), each publishes what the
// database holds and answers with its own generation; a waiter that gives up takes its change
// back (503, nothing changed) or, when a holder already committed it, says so (200 applied:false).
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { closeRuntime, Invocation } from '../../lib/runtime.js';
import { updateRoutes } from '../../lib/circuits/update-routes.js';
import { propagate, type PropagateResult } from '../../lib/circuits/propagate.js';
import { readCircuit } from '../../lib/db/index.js';
import { acquire, decodeMeta, epochKey, lockPrefix, metaKey, type Acquired } from '../../lib/etcd/index.js';
import { render } from '../../lib/traefik/render.js';
import { circuitKeyPrefixes, workerRoot } from '../../lib/traefik/names.js';
import { LockTimeoutError, OutcomeUnknownError } from '../../lib/errors.js';
import type { Database } from '../../lib/db/index.js';
import type { Runtime } from '../../lib/runtime.js';
import { pauseAt } from '../../lib/failpoints.js';
import type { RouteInput } from '../../lib/model.js';
import { keysUnder, route, seedCircuit, testRuntime } from '../support/rt.js';

// A TTL longer than the machine can stall for: the test holder's lease must not run out.
const rt = testRuntime({ LOCK_WAIT_MS: '10000', LOCK_TTL_SECONDS: '10' });
const invs: Invocation[] = [];
const inv = (label: string) => {
  const i = new Invocation(rt, label);
  invs.push(i);
  return i;
};
afterEach(async () => {
  await Promise.all(invs.splice(0).map((i) => i.close().catch(() => {})));
});
afterAll(() => closeRuntime(rt));

/** Holds the circuit's lock as a plain contender (it combines nothing) until released. */
async function hold(id: string): Promise<{ acquired: Acquired; release: () => Promise<void> }> {
  const holder = inv('test:holder');
  const acquired = await acquire(await holder.session(), { prefix: lockPrefix(rt.config.metaPrefix, id), epochKey: epochKey(rt.config.metaPrefix), waitMs: 5000, rpcTimeoutMs: 3000 });
  return { acquired, release: () => acquired.lock.release(3000) };
}

/** Resolves when `n` changes of the circuit are recorded and pending (the writers queued). */
async function pendingIntents(id: string, n: number): Promise<void> {
  for (let i = 0; i < 800; i++) {
    const r = await rt.db.query<{ n: string }>(`SELECT count(*) AS n FROM route_intents WHERE circuit_id = $1 AND status = 'pending'`, [id]);
    if (Number(r.rows[0]!.n) >= n) return;
    await new Promise((res) => setTimeout(res, 25));
  }
  const all = await rt.db.query<{ status: string }>('SELECT status FROM route_intents WHERE circuit_id = $1', [id]);
  throw new Error(`fewer than ${n} pending changes of ${id}: ${JSON.stringify(all.rows)}`);
}

async function etcdState(id: string, worker: string) {
  const keys = new Map<string, string>();
  for (const p of circuitKeyPrefixes(workerRoot(rt.config.traefikRoot, worker), id)) for (const [k, v] of await keysUnder(rt.etcd, p)) keys.set(k, v);
  const meta = (await keysUnder(rt.etcd, metaKey(rt.config.metaPrefix, id))).get(metaKey(rt.config.metaPrefix, id));
  return { keys, meta: meta === undefined ? null : decodeMeta(meta) };
}

async function expectPublished(id: string, worker: string, routes: RouteInput[], generation: number): Promise<void> {
  const view = (await readCircuit(rt.db, id))!;
  expect(view.circuit.generation).toBe(generation);
  expect(view.circuit.routes.map((r) => r.routeId)).toEqual(routes.map((r) => r.routeId));
  const s = await etcdState(id, worker);
  expect(s.meta?.generation).toBe(generation);
  expect(s.keys).toEqual(render(view.circuit, view.worker, { traefikRoot: rt.config.traefikRoot, extraMiddlewares: rt.config.traefikExtraMiddlewares }));
}

/**
 * Starts updateRoutes writers one after another, each queued (its change recorded) before the next
 * starts; resolves with their starts once the last is queued, so the caller can release the lock.
 */
async function queueWriters(id: string, sets: RouteInput[][]): Promise<{ done: Promise<PropagateResult[]> }> {
  const results: Array<Promise<PropagateResult>> = [];
  for (const [k, routes] of sets.entries()) {
    results.push(updateRoutes(inv(`test:w${k}`), id, routes));
    await pendingIntents(id, k + 1);
  }
  return { done: Promise.all(results) };
}

/**
 * The runtime with a database whose answers to some statements are lost: `fault(text)` says
 * whether to fail the statement before sending it, or after it ran (committed, answer lost).
 */
function lossy(base: Runtime, fault: (text: string) => 'before' | 'after' | undefined): Runtime {
  const db = new Proxy(base.db, {
    get(target, prop) {
      if (prop === 'query') {
        return async (text: string, params?: unknown[]) => {
          const f = fault(text);
          if (f === 'before') throw new Error('test: connection terminated before the statement');
          const r = await target.query(text, params);
          if (f === 'after') throw new Error('test: connection terminated, the answer was lost');
          return r;
        };
      }
      const v = Reflect.get(target, prop, target) as unknown;
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  }) as Database;
  return { ...base, db };
}
const isRecord = (text: string) => text.startsWith('INSERT INTO route_intents (');
const isWithdraw = (text: string) => text.includes("'withdrawn'") && text.includes('ON CONFLICT (intent_id)');

describe('combining on a hot circuit', () => {
  it('the first writer to get the lock applies the changes queued behind it: queue order, one generation each, one etcd write; the others learn it with at most one more RPC', async () => {
    const { id, worker } = await seedCircuit(rt, { routes: [route(1)] });
    await propagate(inv('test:publish'), id);
    const held = await hold(id);
    const sets = [[route(10)], [route(20), route(21)], [route(30)], [route(40)]];
    const { done: all } = await queueWriters(id, sets);
    const revisionBefore = BigInt((await rt.etcd.kv.range({ key: Buffer.from('x'), count_only: true })).header.revision);
    await held.release();
    const [first, ...rest] = await all;

    expect(first).toMatchObject({ applied: true, generation: 2, served: 3 });
    expect(first!.servedBy).toBeUndefined();
    expect(rest.map((r) => [r.applied, r.servedBy, r.generation])).toEqual([
      [true, 'holder-ahead', 3],
      [true, 'holder-ahead', 4],
      [true, 'holder-ahead', 5],
    ]);
    // A served writer's RPCs: the one that queued it, and at most the check of its key when the
    // predecessor's delete reached it before the holder's note.
    for (const r of rest) expect(r.etcdRpcs).toBeLessThanOrEqual(2);
    await expectPublished(id, worker, sets[3]!, 5);
    // One etcd write for the four changes: the release of the holder and the first writer's apply.
    const revisionAfter = BigInt((await rt.etcd.kv.range({ key: Buffer.from('x'), count_only: true })).header.revision);
    expect(revisionAfter - revisionBefore).toBe(2n);
    const outcomes = await rt.db.query<{ status: string; generation: string }>(`SELECT status, generation FROM route_intents WHERE circuit_id = $1 ORDER BY generation`, [id]);
    expect(outcomes.rows.map((r) => [r.status, Number(r.generation)])).toEqual([
      ['applied', 2],
      ['applied', 3],
      ['applied', 4],
      ['applied', 5],
    ]);
  });

  it('If-Match changes are not combined: they take the lock themselves', async () => {
    const { id, worker } = await seedCircuit(rt, { routes: [route(1)] });
    await propagate(inv('test:publish'), id);
    const held = await hold(id);
    const [aRoutes, bRoutes] = [[route(2)], [route(3)]];
    const a = updateRoutes(inv('test:a'), id, aRoutes);
    await pendingIntents(id, 1);
    const b = updateRoutes(inv('test:b'), id, bRoutes, 2);
    await new Promise((r) => setTimeout(r, 300));
    await held.release();
    const [ra, rb] = await Promise.all([a, b]);
    expect([ra.generation, ra.served, rb.generation, rb.servedBy]).toEqual([2, undefined, 3, undefined]);
    await expectPublished(id, worker, bRoutes, 3);
  });

  it('when the holder commits their changes but cannot write etcd, each served writer publishes the database state itself and answers its own generation', async () => {
    const { id, worker } = await seedCircuit(rt, { routes: [route(1)] });
    await propagate(inv('test:publish'), id);
    const held = await hold(id);
    const sets = [[route(10)], [route(20)], [route(30)]];
    // The first writer to hold the lock loses its lease after its statement, before its etcd write.
    const paused = pauseAt('propagate.beforeApply', (ctx) => ctx.holder === 'test:w0');
    const { done: all } = await queueWriters(id, sets);
    await held.release();
    await paused.reached;
    const w0 = invs.find((i) => i.label === 'test:w0')!;
    await (await w0.session()).abandon('test: lease revoked between the commit and the etcd write');
    paused.release();
    const [first, second, third] = await all;
    expect(first).toMatchObject({ applied: false, generation: 2, served: 2 });
    // Served in the database only: each became the holder in turn and published.
    expect([second!.servedBy, second!.generation, second!.applied]).toEqual([undefined, 3, true]);
    expect([third!.servedBy, third!.generation, third!.applied]).toEqual([undefined, 4, true]);
    await expectPublished(id, worker, sets[2]!, 4);
  });

  it('a writer that gives up takes its change back: 503, nothing changed, and nobody applies it later', async () => {
    const quick = testRuntime({ LOCK_WAIT_MS: '600', LOCK_TTL_SECONDS: '10', META_PREFIX: rt.config.metaPrefix, TRAEFIK_ROOT: rt.config.traefikRoot });
    try {
      const { id } = await seedCircuit(quick, { routes: [route(1)] });
      const held = await hold(id);
      const w = new Invocation(quick, 'test:quick');
      const err = await updateRoutes(w, id, [route(2)]).then(
        () => null,
        (e: Error) => e,
      );
      await w.close();
      expect(err).toBeInstanceOf(LockTimeoutError);
      const r = await rt.db.query<{ status: string }>('SELECT status FROM route_intents WHERE circuit_id = $1', [id]);
      expect(r.rows.map((x) => x.status)).toEqual(['withdrawn']);
      await held.release();
      // The next writer does not apply it.
      const nextRoutes = [route(3)];
      const next = await updateRoutes(inv('test:next'), id, nextRoutes);
      expect(next.generation).toBe(2);
      expect((await readCircuit(rt.db, id))!.circuit.routes.map((x) => x.routeId)).toEqual(nextRoutes.map((x) => x.routeId));
    } finally {
      await closeRuntime(quick);
    }
  });

  it('a writer whose wait ends after the holder committed its change answers 200 applied:false with its generation, never "nothing changed"', async () => {
    const quick = testRuntime({ LOCK_WAIT_MS: '1500', LOCK_TTL_SECONDS: '10', META_PREFIX: rt.config.metaPrefix, TRAEFIK_ROOT: rt.config.traefikRoot });
    try {
      const { id, worker } = await seedCircuit(quick, { routes: [route(1)] });
      const held = await hold(id);
      // The holder-to-be (w0, patient) and a waiter behind it with a short wait.
      const w0 = updateRoutes(inv('test:w0'), id, [route(10)]);
      await pendingIntents(id, 1);
      const quickInv = new Invocation(quick, 'test:quick');
      const lateRoutes = [route(20)];
      const late = updateRoutes(quickInv, id, lateRoutes);
      await pendingIntents(id, 2);
      // w0 takes the lock, commits both changes, and is frozen before its etcd write until the
      // waiter's wait has run out.
      const paused = pauseAt('propagate.beforeApply', (ctx) => ctx.holder === 'test:w0');
      await held.release();
      await paused.reached;
      const r = await late;
      paused.release();
      await quickInv.close();
      expect(r.applied).toBe(false);
      expect(r.generation).toBe(3);
      expect(r.notAppliedReason).toMatch(/applied in the database by the lock holder ahead/);
      expect(await w0).toMatchObject({ applied: true, generation: 2, served: 1 });
      await expectPublished(id, worker, lateRoutes, 3);
    } finally {
      await closeRuntime(quick);
    }
  });
  it('a writer whose record committed but whose answer was lost is applied once: it learns its change was applied ahead, and the change queued after it is not overwritten', async () => {
    const { id, worker } = await seedCircuit(rt, { routes: [route(1)] });
    await propagate(inv('test:publish'), id);
    const held = await hold(id);
    const [h, w, q] = [[route(10)], [route(20)], [route(30)]];
    const hRun = updateRoutes(inv('test:h'), id, h);
    await pendingIntents(id, 1);
    const wInv = new Invocation(lossy(rt, (t) => (isRecord(t) ? 'after' : undefined)), 'test:w');
    invs.push(wInv);
    const wRun = updateRoutes(wInv, id, w);
    await pendingIntents(id, 2);
    const qRun = updateRoutes(inv('test:q'), id, q);
    await pendingIntents(id, 3);
    // h claims w and q with its own change, then loses its lease before its etcd write.
    const paused = pauseAt('propagate.beforeApply', (ctx) => ctx.holder === 'test:h');
    await held.release();
    await paused.reached;
    await (await invs.find((i) => i.label === 'test:h')!.session()).abandon('test: lease revoked between the commit and the etcd write');
    paused.release();
    expect(await hRun).toMatchObject({ applied: false, generation: 2, served: 2 });
    const [wr, qr] = await Promise.all([wRun, qRun]);
    expect(wr.generation).toBe(3);
    expect(qr.generation).toBe(4);
    const statuses = await rt.db.query<{ status: string; generation: string }>('SELECT status, generation FROM route_intents WHERE circuit_id = $1 ORDER BY generation', [id]);
    expect(statuses.rows.map((r) => [r.status, Number(r.generation)])).toEqual([['applied', 2], ['applied', 3], ['applied', 4]]);
    // q's change, queued last, is what the circuit ends with, at q's generation: w was not re-applied.
    await expectPublished(id, worker, q, 4);
  });

  it('a waiter that gives up withdraws its change even when the first withdrawal fails; when none succeeds, it answers "outcome unknown", never "nothing changed"', async () => {
    const quick = testRuntime({ LOCK_WAIT_MS: '1200', LOCK_TTL_SECONDS: '10', META_PREFIX: rt.config.metaPrefix, TRAEFIK_ROOT: rt.config.traefikRoot });
    try {
      for (const failures of [1, Infinity]) {
        const { id, worker } = await seedCircuit(quick, { routes: [route(1)] });
        await propagate(inv('test:publish'), id);
        const held = await hold(id);
        const hRoutes = [route(10)];
        const hRun = updateRoutes(inv('test:h'), id, hRoutes);
        await pendingIntents(id, 1);
        let failed = 0;
        const wInv = new Invocation(lossy(quick, (t) => (isWithdraw(t) && failed++ < failures ? 'before' : undefined)), 'test:w');
        const wRoutes = [route(20)];
        const wRun = updateRoutes(wInv, id, wRoutes).then(
          (r) => r,
          (e: Error) => e,
        );
        await pendingIntents(id, 2);
        // h takes the lock having read w's note, and is frozen before its statement until w gave up.
        const paused = pauseAt('propagate.locked', (ctx) => ctx.holder === 'test:h');
        await held.release();
        await paused.reached;
        const wr = await wRun;
        paused.release();
        const hr = await hRun;
        await wInv.close();
        if (failures === 1) {
          expect(wr).toBeInstanceOf(LockTimeoutError);
          expect(hr).toMatchObject({ applied: true, generation: 2 });
          expect(hr.served).toBeUndefined();
          await expectPublished(id, worker, hRoutes, 2);
        } else {
          expect(wr).toBeInstanceOf(OutcomeUnknownError);
          // and indeed: the holder applied it after w answered
          expect(hr).toMatchObject({ applied: true, generation: 2, served: 1 });
          await expectPublished(id, worker, wRoutes, 3);
        }
      }
    } finally {
      await closeRuntime(quick);
    }
  });
});
