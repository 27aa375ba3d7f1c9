// Bounded state (DESIGN I8): tombstones retire after TOMBSTONE_RETENTION_SECONDS, deleted rows are
// purged after DELETED_RETENTION_DAYS, and the readers that meet etcd's compaction recover (a lock
// waiter whose watch starts at a compacted revision, a drift scan whose revision was compacted
// between two pages) instead of failing. Time is moved by moving deleted_at back, not by waiting.
import { randomUUID } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Invocation } from '../../lib/runtime.js';
import { propagate } from '../../lib/circuits/propagate.js';
import { unload } from '../../lib/circuits/unload.js';
import { updateRoutes } from '../../lib/circuits/update-routes.js';
import { createAndPublish } from '../../lib/circuits/create.js';
import { deletedAndReleasedBefore, purgeDeleted, readCircuit, type Database } from '../../lib/db/index.js';
import { acquire, epochKey, lockPrefix, metaKey, type AcquireOptions } from '../../lib/etcd/index.js';
import { ConflictError, NotFoundError } from '../../lib/errors.js';
import { armFailpoint } from '../../lib/failpoints.js';
import { runSweep } from '../../lib/health/sweep.js';
import { computeDrift } from '../../lib/health/drift.js';
import { silentLog } from '../../lib/health/log.js';
import { createCircuitSchema } from '../../lib/model.js';
import { isolatedRuntime, type IsolatedRuntime } from '../support/fake-backends.js';
import { keysUnder, rawConnection, route, seedCircuit } from '../support/rt.js';

let iso: IsolatedRuntime;
let inv: Invocation;
const disarms: Array<() => void> = [];
beforeEach(async () => {
  // A stale writer lives at most FUNCTION_TIMEOUT_SECONDS + LOCK_TTL_SECONDS = 3 s here.
  iso = await isolatedRuntime({ FUNCTION_TIMEOUT_SECONDS: '1', LOCK_TTL_SECONDS: '2', TOMBSTONE_RETENTION_SECONDS: '4', DELETED_RETENTION_DAYS: '1' });
  inv = new Invocation(iso.rt);
});
afterEach(async () => {
  for (const d of disarms.splice(0)) d();
  await inv.close();
  await iso.close();
});

const sweep = () => runSweep(inv, { publish: async () => {} });
const revision = async () => BigInt((await iso.rt.etcd.kv.range({ key: Buffer.from('\0') })).header.revision);
const hasMeta = async (id: string) => (await keysUnder(iso.rt.etcd, metaKey(iso.rt.config.metaPrefix, id))).size > 0;
const age = (id: string, interval: string) => iso.rt.db.query(`UPDATE circuits SET deleted_at = deleted_at - interval '${interval}' WHERE id = $1`, [id]);

describe('tombstones and deleted rows', () => {
  it('a tombstone retires after its retention, and nothing writes it back; the row still refuses the circuit', async () => {
    const c = await seedCircuit(iso.rt, { routes: [route(1)] });
    await propagate(inv, c.id);
    expect((await unload(inv, c.id)).frontendReleased).toBe(true);
    await sweep();
    expect(await hasMeta(c.id)).toBe(true); // younger than its retention

    await age(c.id, '10 seconds');
    const s = await sweep();
    expect(s.tombstonesRetired).toBe(1);
    expect(await hasMeta(c.id)).toBe(false);

    // Converged: late deliveries and later sweeps write nothing back, and the database still says no.
    expect(await unload(inv, c.id)).toMatchObject({ found: true, deleted: true, unchanged: true, txns: 0 });
    expect(await sweep()).toMatchObject({ tombstonesRetired: 0, driftRepaired: 0, etcdTxns: 0 });
    expect(await hasMeta(c.id)).toBe(false);
    expect([...(await keysUnder(iso.rt.etcd, `${iso.rt.config.traefikRoot}/`)).keys()].filter((k) => k.includes(c.id))).toEqual([]);
    await expect(updateRoutes(inv, c.id, [route(2)])).rejects.toBeInstanceOf(NotFoundError);
    const again = createCircuitSchema().parse({ id: c.id, worker: c.worker, protocol: 'http', appMode: 'interactive', frontend: { mode: 'port', port: 1 }, routes: [] });
    await expect(createAndPublish(inv, again)).rejects.toMatchObject({ code: 'deleted' });
    await expect(createAndPublish(inv, again)).rejects.toBeInstanceOf(ConflictError);
  });

  it('deleted rows are purged after DELETED_RETENTION_DAYS, routes with them; live and recent ones stay', async () => {
    const old = await seedCircuit(iso.rt, { routes: [route(1), route(2)] });
    const recent = await seedCircuit(iso.rt, { routes: [route(3)] });
    const live = await seedCircuit(iso.rt, { routes: [route(4)] });
    for (const c of [old, recent, live]) await propagate(inv, c.id);
    await unload(inv, old.id);
    await unload(inv, recent.id);
    await age(old.id, '2 days');
    const s = await sweep();
    expect(s.rowsPurged).toBe(1);
    expect(await readCircuit(iso.rt.db, old.id)).toBeNull();
    expect((await iso.rt.db.query('SELECT 1 FROM routes WHERE circuit_id = $1', [old.id])).rows).toHaveLength(0);
    expect(await readCircuit(iso.rt.db, recent.id)).not.toBeNull();
    expect(await readCircuit(iso.rt.db, live.id)).not.toBeNull();
    expect(await hasMeta(old.id)).toBe(false); // its tombstone retired in the same sweep
  });
});

describe('purged circuits stay deleted (I1)', () => {
  const recreate = (c: { id: string; worker: string }) =>
    createCircuitSchema().parse({ id: c.id, worker: c.worker, protocol: 'http', appMode: 'interactive', frontend: { mode: 'port', port: 2 }, routes: [route(9)] });
  const keysOf = async (id: string) =>
    new Map([...(await keysUnder(iso.rt.etcd, `${iso.rt.config.traefikRoot}/`))].filter(([k]) => k.includes(id)));

  it('an id is refused with the same 409 "deleted" after its row is purged, and nothing is published', async () => {
    const c = await seedCircuit(iso.rt, { routes: [route(1)] });
    await propagate(inv, c.id);
    await unload(inv, c.id);
    await age(c.id, '2 days');
    expect((await sweep()).rowsPurged).toBe(1);
    expect(await readCircuit(iso.rt.db, c.id)).toBeNull();

    const err = await createAndPublish(inv, recreate(c)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConflictError);
    expect(err).toMatchObject({ code: 'deleted' });
    expect(await readCircuit(iso.rt.db, c.id)).toBeNull();
    expect(await keysOf(c.id)).toEqual(new Map());
    expect(await hasMeta(c.id)).toBe(false);
  });

  it('a create racing the purge of its id (waiting on the purge\'s delete) is refused once the purge commits', async () => {
    const c = await seedCircuit(iso.rt, { routes: [route(1)] });
    await propagate(inv, c.id);
    await unload(inv, c.id);
    await age(c.id, '2 days');
    const purger = await rawConnection(iso.rt);
    try {
      await purger.query('BEGIN');
      expect(await purgeDeleted(purger, 1, 10)).toEqual([c.id]);
      // The create's insert meets the purge's uncommitted delete of the old row and waits for it.
      const creating = createAndPublish(inv, recreate(c)).catch((e: unknown) => e);
      for (;;) {
        const w = await iso.rt.db.query<{ n: number }>(
          `SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE '%INSERT INTO circuits%'`,
        );
        if (w.rows[0]!.n > 0) break;
        await new Promise((r) => setTimeout(r, 10));
      }
      await purger.query('COMMIT');
      const err = await creating;
      expect(err).toBeInstanceOf(ConflictError);
      expect(err).toMatchObject({ code: 'deleted' });
      expect(await readCircuit(iso.rt.db, c.id)).toBeNull();
      expect(await keysOf(c.id)).toEqual(new Map());
    } finally {
      purger.release();
    }
  });

  it('keys and meta of a purged circuit written back into etcd (an old snapshot) are removed by the sweep under ORPHAN_POLICY=report', async () => {
    expect(iso.rt.config.orphanPolicy).toBe('report');
    const c = await seedCircuit(iso.rt, { routes: [route(1), route(2)] });
    await propagate(inv, c.id);
    const snapshot = await keysOf(c.id);
    const metaK = metaKey(iso.rt.config.metaPrefix, c.id);
    const liveMeta = (await keysUnder(iso.rt.etcd, metaK)).get(metaK)!;
    expect(snapshot.size).toBeGreaterThan(0);
    await unload(inv, c.id);
    await age(c.id, '2 days');
    expect((await sweep()).rowsPurged).toBe(1);
    expect(await keysOf(c.id)).toEqual(new Map());

    // The snapshot comes back: the circuit's keys and its live meta, as before the deletion.
    for (const [k, v] of [...snapshot, [metaK, liveMeta] as const]) await iso.rt.etcd.kv.put({ key: Buffer.from(k), value: Buffer.from(v) });
    const s = await sweep();
    expect(s.errors).toEqual([]);
    expect(s.orphanKeys).toBe(0); // not someone else's keys: circuitry's own deleted circuit
    expect(s.orphansRemoved).toBe(snapshot.size);
    expect(await keysOf(c.id)).toEqual(new Map());
    expect(await hasMeta(c.id)).toBe(false);
    // Converged: the next sweep finds nothing of it.
    expect(await sweep()).toMatchObject({ orphansRemoved: 0, tombstonesRetired: 0, etcdTxns: 0, errors: [] });
  });
});

describe('what retention waits for', () => {
  const keysOf = async (id: string) =>
    new Map([...(await keysUnder(iso.rt.etcd, `${iso.rt.config.traefikRoot}/`))].filter(([k]) => k.includes(id)));

  it('an aged deleted row whose keys are not confirmed gone is neither purged nor has its tombstone retired', async () => {
    const c = await seedCircuit(iso.rt, { routes: [route(1)] });
    await propagate(inv, c.id);
    await unload(inv, c.id);
    await iso.rt.db.query(`UPDATE circuits SET keys_removed_at = NULL, deleted_at = deleted_at - interval '2 days' WHERE id = $1`, [c.id]);
    expect(await deletedAndReleasedBefore(iso.rt.db, [c.id], 4)).toEqual(new Set());
    expect(await purgeDeleted(iso.rt.db, 1, 10)).toEqual([]);
    expect(await readCircuit(iso.rt.db, c.id)).not.toBeNull();
    const plan = await computeDrift(inv, { db: iso.rt.db, circuitsPageSize: 10, keysPageSize: 10, log: silentLog });
    expect(plan.tombstonesToRetire).toEqual([]);
    expect(plan.repairs.get(c.id)?.reason).toMatch(/not yet confirmed gone/);
  });

  it('no row is purged after a drift pass that failed', async () => {
    const c = await seedCircuit(iso.rt, { routes: [route(1)] });
    await propagate(inv, c.id);
    await unload(inv, c.id);
    await age(c.id, '2 days');
    // The drift pass's page of live circuits fails; everything else works.
    const db: Database = {
      ...iso.rt.db,
      query: (text, params) => (/c\.deleted_at IS NULL AND \(\$1::uuid IS NULL/.test(text) ? Promise.reject(new Error('page failed')) : iso.rt.db.query(text, params)),
    };
    const failing = new Invocation({ ...iso.rt, db });
    try {
      const s = await runSweep(failing, { publish: async () => {} });
      expect(s.errors).toEqual([expect.stringMatching(/^drift: page failed/)]);
      expect(s.rowsPurged).toBe(0);
      expect(s.tombstonesRetired).toBe(0);
      expect(await readCircuit(iso.rt.db, c.id)).not.toBeNull();
      expect(await hasMeta(c.id)).toBe(true);
    } finally {
      await failing.close();
    }
    expect(await sweep()).toMatchObject({ rowsPurged: 1, errors: [] });
  });

  it('a circuit whose drift repair failed in this pass is not purged in it, nor in the pass that repairs it', async () => {
    const c = await seedCircuit(iso.rt, { routes: [route(1)] });
    await propagate(inv, c.id);
    const snapshot = await keysOf(c.id);
    await unload(inv, c.id);
    await age(c.id, '2 days');
    // Its keys are back in etcd (the row still says they were removed), and their repair fails.
    for (const [k, v] of snapshot) await iso.rt.etcd.kv.put({ key: Buffer.from(k), value: Buffer.from(v) });
    disarms.push(
      armFailpoint('propagate.locked', (ctx) => {
        if (ctx.circuitId === c.id) throw new Error('repair failed');
      }),
    );
    const s1 = await sweep();
    expect(s1.errors).toEqual([expect.stringMatching(/repair failed/)]);
    expect(s1.rowsPurged).toBe(0);
    expect(await readCircuit(iso.rt.db, c.id)).not.toBeNull();
    expect((await keysOf(c.id)).size).toBe(snapshot.size);

    disarms.splice(0).forEach((d) => d());
    const s2 = await sweep();
    expect(s2).toMatchObject({ rowsPurged: 0, errors: [] });
    expect(await keysOf(c.id)).toEqual(new Map());
    expect(await sweep()).toMatchObject({ rowsPurged: 1, errors: [] });
  });
});

describe('queued route changes', () => {
  const oldIntents = async (circuitId: string, n: number) =>
    iso.rt.db.query(
      `INSERT INTO route_intents (intent_id, circuit_id, routes, created_at)
       SELECT gen_random_uuid(), $1, '[]'::jsonb, now() - interval '1 day' FROM generate_series(1, $2)`,
      [circuitId, n],
    );
  const left = async () => (await iso.rt.db.query<{ n: number }>('SELECT count(*)::int AS n FROM route_intents')).rows[0]!.n;

  it('a pass purges old queued changes batch after batch while batches come back full', async () => {
    const c = await seedCircuit(iso.rt, { routes: [route(1)] });
    await oldIntents(c.id, 45); // purgePerPass 2: batches of 20
    await runSweep(inv, { publish: async () => {}, purgePerPass: 2 });
    expect(await left()).toBe(0);
  });

  it('with its deadline passed, a pass purges one batch and leaves the rest to the next', async () => {
    const c = await seedCircuit(iso.rt, { routes: [route(1)] });
    await oldIntents(c.id, 45);
    await runSweep(inv, { publish: async () => {}, purgePerPass: 2, deadline: Date.now() - 1 });
    expect(await left()).toBe(25);
  });
});

describe('compaction', () => {
  const lockOpts = (id: string): AcquireOptions => ({
    prefix: lockPrefix(iso.rt.config.metaPrefix, id),
    epochKey: epochKey(iso.rt.config.metaPrefix),
    waitMs: 3000,
    rpcTimeoutMs: 1000,
  });

  it('a lock waiter whose watch starts at a compacted revision re-checks and gets the lock', async () => {
    const id = randomUUID();
    const holder = new Invocation(iso.rt);
    const held = await acquire(await holder.session(), lockOpts(id));
    disarms.push(
      armFailpoint('mutex.beforeWatch', async () => {
        // Between the waiter's predecessor read and its watch: the holder leaves, and the
        // revision the watch would start from is compacted away.
        await held.lock.release(1000);
        await iso.rt.etcd.kv.put({ key: Buffer.from(`${iso.rt.config.metaPrefix}/x`), value: Buffer.from('1') });
        await iso.rt.etcd.kv.compact({ revision: String(await revision()), physical: true });
      }),
    );
    const waiter = new Invocation(iso.rt);
    try {
      const got = await acquire(await waiter.session(), lockOpts(id));
      expect(got.waitedMs).toBeGreaterThanOrEqual(0);
      expect(got.rpcs).toBeGreaterThan(1);
      await got.lock.release(1000);
    } finally {
      await waiter.close();
      await holder.close();
    }
  });

  it("a drift scan whose revision is compacted between two pages starts over and reports the same plan", async () => {
    const cs = [];
    for (let i = 0; i < 4; i++) cs.push(await seedCircuit(iso.rt, { routes: [route(i), route(i + 10)] }));
    for (const c of cs) await propagate(inv, c.id);
    let compactions = 0;
    const plan = await computeDrift(inv, {
      db: iso.rt.db,
      circuitsPageSize: 2,
      keysPageSize: 3,
      log: silentLog,
      betweenPages: async () => {
        if (compactions > 0) return;
        compactions++;
        await iso.rt.etcd.kv.put({ key: Buffer.from(`${iso.rt.config.metaPrefix}/x`), value: Buffer.from(String(Date.now())) });
        await iso.rt.etcd.kv.compact({ revision: String(await revision()), physical: true });
      },
    });
    expect(compactions).toBe(1);
    expect(plan.scanRestarts).toBeGreaterThanOrEqual(1);
    expect(plan.circuitsChecked).toBe(4);
    expect(plan.repairs.size).toBe(0);
    expect(plan.orphans).toEqual([]);
  });
});
