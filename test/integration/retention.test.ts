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
import { readCircuit } from '../../lib/db/index.js';
import { acquire, epochKey, lockPrefix, metaKey, type AcquireOptions } from '../../lib/etcd/index.js';
import { ConflictError, NotFoundError } from '../../lib/errors.js';
import { armFailpoint } from '../../lib/failpoints.js';
import { runSweep } from '../../lib/health/sweep.js';
import { computeDrift } from '../../lib/health/drift.js';
import { silentLog } from '../../lib/health/log.js';
import { createCircuitSchema } from '../../lib/model.js';
import { isolatedRuntime, type IsolatedRuntime } from '../support/fake-backends.js';
import { keysUnder, route, seedCircuit } from '../support/rt.js';

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
