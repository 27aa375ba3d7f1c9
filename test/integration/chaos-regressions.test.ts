// Regressions found by the chaos harness (scripts/chaos, check R): a request whose database change
// had committed was answered 503 "... nothing was changed". DESIGN §3: when the database commit
// succeeded but etcd could not be written, the database is the source of truth, the next sweep
// converges etcd, and the response says so.
//   1. create (createAndPublish): the INSERT commits, then publishing fails (etcd unreachable, or
//      the new circuit's lock held by a drift sweep of a process that was just killed) and the
//      error escaped as 503 "etcd is unavailable; nothing was changed" / "the circuit is busy".
//   2. propagate: the change commits, the process is paused past its lease TTL, and the local
//      liveness check in applyFenced throws SessionLostError, which escaped as 503 "the circuit
//      lock was lost before the change; nothing was changed".
// And an I4 violation (seed full1): etcd was written "generation g" with a rendering that was not
// the database's generation g, because replaceRoutes racing another replaceRoutes of the same
// circuit (a writer paused past its lease, resuming after the lock's next owner started) committed
// the union of both route sets: its `del` scanned a snapshot older than the routes the other
// writer had just inserted.
import { randomUUID } from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { closeRuntime, createRuntime, Invocation, type Runtime } from '../../lib/runtime.js';
import { createAndPublish } from '../../lib/circuits/create.js';
import { propagate } from '../../lib/circuits/propagate.js';
import { epochKey, lockPrefix, metaKey } from '../../lib/etcd/index.js';
import { readCircuit, replaceRoutes, registerWorker } from '../../lib/db/index.js';
import { acquire } from '../../lib/etcd/index.js';
import { decodeMeta } from '../../lib/etcd/index.js';
import { enc } from '../../lib/etcd/keys.js';
import { createCircuitSchema } from '../../lib/model.js';
import { closedPort } from '../support/fake-backends.js';
import { db, fence, rawConnection, route, seedCircuit, testConfig, testRuntime } from '../support/rt.js';


let rt: Runtime;
beforeAll(() => {
  rt = testRuntime({ LOCK_WAIT_MS: '300' });
});
afterAll(() => closeRuntime(rt));
afterEach(() => {
  vi.restoreAllMocks();
});

async function newCircuitInput(r: Runtime) {
  const authority = `w-${randomUUID().slice(0, 8)}`;
  await registerWorker(r.db, { authority, hostname: `${authority}.example.com`, wildcardDomain: null, tls: false });
  return createCircuitSchema(r.config.maxRoutesPerCircuit).parse({
    id: randomUUID(),
    worker: authority,
    protocol: 'http',
    appMode: 'interactive',
    frontend: { mode: 'port', port: 20000 + Math.floor(Math.random() * 40000) },
    routes: [route(1)],
  });
}

describe('chaos regressions: committed changes are reported as committed', () => {
  it('create with etcd unreachable: the circuit is created and reported not yet published', async () => {
    const broken = createRuntime(
      testConfig({
        TRAEFIK_ROOT: rt.config.traefikRoot,
        META_PREFIX: rt.config.metaPrefix,
        ETCD_ENDPOINTS: `http://127.0.0.1:${await closedPort()}`,
        ETCD_TIMEOUT_MS: '300',
      }),
    );
    const inv = new Invocation(broken);
    try {
      const input = await newCircuitInput(broken);
      const { view, sync } = await createAndPublish(inv, input);
      expect(view.circuit.id).toBe(input.id);
      expect(sync.applied).toBe(false);
      expect(sync.notAppliedReason).toMatch(/etcd/);
      expect((await readCircuit(db(rt), input.id!))?.circuit.generation).toBe(1);
    } finally {
      await inv.close().catch(() => {});
      await closeRuntime(broken);
    }
  });

  it("create while the new circuit's lock is held: created, reported not yet published, published by the next propagate", async () => {
    const input = await newCircuitInput(rt);
    const holder = new Invocation(rt);
    const held = await acquire(await holder.session(), { prefix: lockPrefix(rt.config.metaPrefix, input.id!), epochKey: epochKey(rt.config.metaPrefix), waitMs: 1000, rpcTimeoutMs: 1000 });
    const inv = new Invocation(rt);
    try {
      const { sync } = await createAndPublish(inv, input);
      expect(sync.applied).toBe(false);
      expect(sync.notAppliedReason).toMatch(/lock/);
      expect(await readCircuit(db(rt), input.id!)).not.toBeNull();
    } finally {
      await held.lock.release(1000);
      await holder.close();
      await inv.close();
    }
    const again = new Invocation(rt);
    const r = await propagate(again, input.id!);
    await again.close();
    expect(r.applied).toBe(true);
    expect(r.unchanged).toBe(false);
  });

  it('a session lost (process paused past its TTL) after the change committed: applied false, not an error', async () => {
    const c = await seedCircuit(rt);
    const first = new Invocation(rt);
    await propagate(first, c.id);
    await first.close();

    const inv = new Invocation(rt);
    const realNow = performance.now.bind(performance);
    const r = await propagate(inv, c.id, {
      change: async (q, f) => {
        const view = await replaceRoutes(q, c.id, [route(7)], undefined, f);
        // The pause: when the process resumes, its clock says the lease TTL has long passed.
        const jumped = realNow() + (rt.config.lockTtlSeconds + 5) * 1000;
        vi.spyOn(performance, 'now').mockImplementation(() => jumped);
        return view;
      },
    });
    vi.restoreAllMocks();
    await inv.close().catch(() => {});
    expect(r.found).toBe(true);
    expect(r.generation).toBe(2);
    expect(r.applied).toBe(false);
    expect(r.notAppliedReason).toMatch(/session lost/);
    // The database has the change; etcd still has generation 1 (the next sweep converges it).
    expect((await readCircuit(db(rt), c.id))?.circuit.generation).toBe(2);
    const meta = await rt.etcd.kv.range({ key: enc(metaKey(rt.config.metaPrefix, c.id)) });
    expect(decodeMeta(meta.kvs[0]!.value.toString())?.generation).toBe(1);
  });

  it('replaceRoutes racing a concurrent replaceRoutes of the same circuit: the later one replaces, nothing merges', async () => {
    const A = route(1);
    const c = await seedCircuit(rt, { routes: [A] });
    const X = route(2); // inserted by the writer that commits first
    const B = route(3); // the later writer's replacement
    const first = await rawConnection(rt);
    try {
      await first.query('BEGIN');
      const a = await replaceRoutes(first, c.id, [A, X], undefined, fence(1));
      expect(a.circuit.generation).toBe(2);
      // The second statement starts now and waits for the first one's row lock.
      const secondP = replaceRoutes(db(rt), c.id, [A, B], undefined, fence(2));
      await new Promise((r) => setTimeout(r, 300));
      await first.query('COMMIT');
      const b = await secondP;
      const committed = (await readCircuit(db(rt), c.id))!;
      const addrs = (rs: Array<{ port: number }>) => rs.map((r) => r.port).sort();
      expect(b.circuit.generation).toBe(3);
      expect(addrs(b.circuit.routes)).toEqual([A.port, B.port]);
      expect(committed.circuit.generation).toBe(3);
      expect(addrs(committed.circuit.routes)).toEqual([A.port, B.port]);
    } finally {
      first.release();
    }
  });

  it('replaceRoutes with If-Match racing a concurrent writer: a mismatch, nothing merged', async () => {
    const A = route(1);
    const c = await seedCircuit(rt, { routes: [A] });
    const first = await rawConnection(rt);
    try {
      await first.query('BEGIN');
      await replaceRoutes(first, c.id, [A, route(2)], undefined, fence(1));
      const secondP = replaceRoutes(db(rt), c.id, [route(3)], 1, fence(2)).catch((e: unknown) => e);
      await new Promise((r) => setTimeout(r, 300));
      await first.query('COMMIT');
      expect(await secondP).toMatchObject({ name: 'ConflictError', code: 'generation-mismatch' });
      const committed = (await readCircuit(db(rt), c.id))!;
      expect(committed.circuit.generation).toBe(2);
      expect(committed.circuit.routes).toHaveLength(2);
    } finally {
      first.release();
    }
  });
});
