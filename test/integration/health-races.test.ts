// The races that caused the reference bug, with a probe held in flight by a hanging backend:
// the route's address changes, or the circuit is deleted, while it is being probed. The result
// must never be written back: not to the new address, not to the deleted circuit, not to etcd.
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { randomUUID } from 'node:crypto';
import { Invocation } from '../../lib/runtime.js';
import { readCircuit } from '../../lib/db/circuits.js';
import { updateRoutes } from '../../lib/circuits/update-routes.js';
import { unload } from '../../lib/circuits/unload.js';
import { propagate } from '../../lib/circuits/propagate.js';
import { runSweep } from '../../lib/health/sweep.js';
import { closeProbers } from '../../lib/health/probers.js';
import type { RouteHealthChanged } from '../../lib/health/events.js';
import { workerRoot } from '../../lib/traefik/names.js';
import { metaKey } from '../../lib/etcd/index.js';
import { decodeMeta } from '../../lib/etcd/index.js';
import { db, keysUnder } from '../support/rt.js';
import { isolatedRuntime, seedHealthCircuit, startBackend, type Backend, type IsolatedRuntime } from '../support/fake-backends.js';

let iso: IsolatedRuntime;
let inv: Invocation;
let other: Invocation;
let events: RouteHealthChanged[];
const backends: Backend[] = [];

beforeEach(async () => {
  iso = await isolatedRuntime();
  inv = new Invocation(iso.rt);
  other = new Invocation(iso.rt); // another invocation (its own etcd session), as a concurrent Lambda
  events = [];
});
afterEach(async () => {
  await inv.close();
  await other.close();
  await iso.close();
});
afterAll(async () => {
  closeProbers();
  await Promise.all(backends.map((b) => b.close()));
});

async function backend(initial: number | 'hang'): Promise<Backend> {
  const b = await startBackend('127.0.0.1', initial === 'hang' ? { kind: 'hang' } : initial);
  backends.push(b);
  return b;
}
const sweep = () => runSweep(inv, { publish: async (e) => void events.push(...e), now: () => new Date(), probeConcurrency: 8 });
const rootOf = (worker: string) => `${workerRoot(iso.rt.config.traefikRoot, worker)}/`;
async function meta(id: string) {
  const k = metaKey(iso.rt.config.metaPrefix, id);
  const v = (await keysUnder(iso.rt.etcd, k)).get(k);
  return v === undefined ? null : decodeMeta(v);
}

// unhealthyThreshold 1: the in-flight failure WOULD change the status (locked path);
// unhealthyThreshold 5: it would only bump counters (unlocked path). Both must be discarded.
describe.each([
  ['status change (locked path)', 1],
  ['counters only (unlocked path)', 5],
])('a probe in flight: %s', (_name, unhealthyThreshold) => {
  it('a route whose address changed mid-probe is not overwritten', async () => {
    const hanging = await backend('hang');
    const fresh = await backend(200);
    const steady = await backend(200);
    const routeId = randomUUID();
    const steadyId = randomUUID();
    const c = await seedHealthCircuit(iso.rt, {
      routes: [{ ...hanging, routeId }, { ...steady, routeId: steadyId }],
      healthCheck: { unhealthyThreshold, timeoutMs: 5000 },
    });
    await propagate(inv, c.id);

    const running = sweep();
    await hanging.waitForRequest(1);
    // Meanwhile the route moves to another address (same route id), through the real write path.
    const r = await updateRoutes(other, c.id, [
      { routeId, sessionId: randomUUID(), host: '127.0.0.1', port: fresh.port, trafficRatio: 1 },
      { routeId: steadyId, sessionId: randomUUID(), host: '127.0.0.1', port: steady.port, trafficRatio: 1 },
    ]);
    expect(r).toMatchObject({ applied: true, generation: 2 });
    hanging.release(500);
    const s = await running;

    expect(s.probes).toBe(2);
    expect(s.resultsDiscarded).toBe(1);
    expect(s.statusChanges).toBe(0);
    expect(events).toEqual([]);
    const v = (await readCircuit(db(iso.rt), c.id))!;
    expect(v.circuit.generation).toBe(2); // only the update bumped it
    const moved = v.circuit.routes.find((x) => x.routeId === routeId)!;
    expect(moved).toMatchObject({ port: fresh.port, health: { status: 'unknown', consecutiveSuccesses: 0, consecutiveFailures: 0, lastCheckedAt: null, lastError: null } });
    // The other route's result did land.
    expect(v.circuit.routes.find((x) => x.routeId === steadyId)!.health).toMatchObject({ consecutiveSuccesses: 1 });
    expect([...(await keysUnder(iso.rt.etcd, rootOf(c.worker))).values()]).toContain(`http://127.0.0.1:${fresh.port}/`);
    expect(await meta(c.id)).toMatchObject({ generation: 2, deleted: false });
  });

  it('a circuit deleted while its probe is in flight is never written back', async () => {
    const hanging = await backend('hang');
    const c = await seedHealthCircuit(iso.rt, { routes: [hanging], healthCheck: { unhealthyThreshold, timeoutMs: 5000 } });
    await propagate(inv, c.id);
    expect((await keysUnder(iso.rt.etcd, rootOf(c.worker))).size).toBeGreaterThan(0);
    const healthBefore = (await readCircuit(db(iso.rt), c.id))!.circuit.routes[0]!.health;

    const running = sweep();
    await hanging.waitForRequest(1);
    const u = await unload(other, c.id);
    expect(u).toMatchObject({ deleted: true, applied: true, generation: 2 });
    const revAfterUnload = BigInt((await iso.rt.etcd.kv.range({ key: Buffer.from('\0') })).header.revision);
    hanging.release(500);
    const s = await running;

    expect(s).toMatchObject({ probes: 1, statusChanges: 0, circuitsChanged: 0, etcdTxns: 0, driftRepaired: 0, orphansRemoved: 0 });
    expect(events).toEqual([]);
    // No key of it afterwards, tombstone in place, database untouched.
    expect((await keysUnder(iso.rt.etcd, rootOf(c.worker))).size).toBe(0);
    expect(await meta(c.id)).toMatchObject({ deleted: true, generation: 2 });
    const v = (await readCircuit(db(iso.rt), c.id))!;
    expect(v.circuit).toMatchObject({ generation: 2, deletedAt: expect.any(String) });
    expect(v.circuit.routes[0]!.health).toEqual(healthBefore);
    // Nothing under Traefik's root or the meta prefix was written after the unload (the only
    // possible writes are lock keys of the locked path, which come and go).
    const changes = await iso.rt.etcd.kv.range({
      key: Buffer.from(`${iso.rt.config.traefikRoot}/`),
      range_end: Buffer.from(`${iso.rt.config.traefikRoot}0`),
      min_mod_revision: (revAfterUnload + 1n).toString(),
    });
    expect(changes.kvs).toEqual([]);
    const metaAfter = await iso.rt.etcd.kv.range({ key: Buffer.from(metaKey(iso.rt.config.metaPrefix, c.id)) });
    expect(BigInt(metaAfter.kvs[0]!.mod_revision)).toBeLessThanOrEqual(revAfterUnload);

    // And later sweeps do not bring it back either.
    const again = await sweep();
    expect(again).toMatchObject({ circuitsClaimed: 0, etcdTxns: 0 });
    expect((await keysUnder(iso.rt.etcd, rootOf(c.worker))).size).toBe(0);
  });
});
