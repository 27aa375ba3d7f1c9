// Drift repair and ownership: after ONE sweep, the keys of every circuit the database knows equal
// exactly render(database) (DESIGN I2), whatever was manually deleted, altered or added; keys
// that are not circuitry's (an operator's router, another system's circuits) are reported and
// left alone (DESIGN I7) unless ORPHAN_POLICY=delete, which removes circuit-named ones only.
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { randomUUID } from 'node:crypto';
import { Invocation } from '../../lib/runtime.js';
import { readCircuit } from '../../lib/db/index.js';
import { propagate } from '../../lib/circuits/propagate.js';
import { unload } from '../../lib/circuits/unload.js';
import { runSweep } from '../../lib/health/sweep.js';
import { closeProbers } from '../../lib/health/probers.js';
import { removeOrphanCircuit } from '../../lib/health/orphans.js';
import { acquire } from '../../lib/etcd/index.js';
import { render } from '../../lib/traefik/render.js';
import { workerRoot } from '../../lib/traefik/names.js';
import { epochKey, lockPrefix, metaKey } from '../../lib/etcd/index.js';
import { decodeMeta, encodeMeta } from '../../lib/etcd/index.js';
import { enc } from '../../lib/etcd/keys.js';
import { db, keysUnder, route, seedCircuit } from '../support/rt.js';
import { isolatedRuntime, seedHealthCircuit, startBackend, type Backend, type IsolatedRuntime } from '../support/fake-backends.js';
import { naiveWrite } from '../support/naive-writer.js';

let iso: IsolatedRuntime;
let inv: Invocation;
const backends: Backend[] = [];

beforeEach(async () => {
  iso = await isolatedRuntime();
  inv = new Invocation(iso.rt);
});
afterEach(async () => {
  await inv.close();
  await iso.close();
});
afterAll(async () => {
  closeProbers();
  await Promise.all(backends.map((b) => b.close()));
});

const put = (k: string, v: string) => iso.rt.etcd.kv.put({ key: enc(k), value: enc(v) });
const del = (k: string) => iso.rt.etcd.kv.deleteRange({ key: enc(k) });
const sweep = () => runSweep(inv, { publish: async () => {} });

/** render() of every live circuit in the database, keyed as etcd should hold them. */
async function expectedTraefikKeys(ids: string[]): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const id of ids) {
    const v = (await readCircuit(db(iso.rt), id))!;
    if (v.circuit.deletedAt !== null) continue;
    for (const [k, val] of render(v.circuit, v.worker, { traefikRoot: iso.rt.config.traefikRoot, extraMiddlewares: iso.rt.config.traefikExtraMiddlewares })) out.set(k, val);
  }
  return out;
}
const sorted = (m: Map<string, string>) => [...m].sort(([a], [b]) => (a < b ? -1 : 1));

describe('drift repair and ownership', () => {
  it('one sweep repairs what circuitry owns (a deleted key, an altered key, a stale meta, a resurrected circuit, keys under a foreign root) and leaves the rest alone', async () => {
    const b = await startBackend();
    backends.push(b);
    const root = iso.rt.config.traefikRoot;
    // Three live circuits (two without health checking, one with), one deleted.
    const c1 = await seedCircuit(iso.rt, { routes: [route(1), route(2)] });
    const c2 = await seedCircuit(iso.rt, { routes: [route(3)], allowedClientIps: ['10.0.0.0/8'] });
    const c3 = await seedHealthCircuit(iso.rt, { routes: [b] });
    const c4 = await seedCircuit(iso.rt, { routes: [route(4)] });
    const never = await seedCircuit(iso.rt, { routes: [route(5)] }); // committed, never propagated
    for (const c of [c1, c2, c3, c4]) await propagate(inv, c.id);
    const snapshot4 = (await readCircuit(db(iso.rt), c4.id))!;
    await unload(inv, c4.id);
    const w1 = `${workerRoot(root, c1.worker)}`;

    // Vandalism:
    const c1keys = await keysUnder(iso.rt.etcd, `${w1}/`);
    const weightKey = [...c1keys.keys()].find((k) => k.endsWith('/servers/1/weight'))!;
    await del(weightKey); // a manually deleted key
    await put(`${workerRoot(root, c2.worker)}/http/routers/bai_router_${c2.id}/rule`, 'Host(`evil.example.com`)'); // altered
    await put(`${workerRoot(root, c2.worker)}/http/services/bai_service_${c2.id}/loadBalancer/servers/7/url`, 'http://10.9.9.9:1/'); // extra
    const m3 = metaKey(iso.rt.config.metaPrefix, c3.id);
    const meta3 = decodeMeta((await keysUnder(iso.rt.etcd, m3)).get(m3)!)!;
    await put(m3, encodeMeta({ ...meta3, generation: meta3.generation - 1 })); // stale applied generation
    await naiveWrite(iso.rt, snapshot4); // the reference bug: a deleted circuit written back
    const unknownId = randomUUID();
    await put(`${w1}/http/routers/bai_router_${unknownId}/rule`, 'Host(`stray.example.com`)'); // circuit unknown to the DB
    await put(`${w1}/http/services/bai_service_${unknownId}/loadBalancer/servers/0/url`, 'http://10.0.0.1:1/');
    await put(`${workerRoot(root, 'nobody-registered')}/tcp/routers/bai_router_${c1.id}/rule`, 'HostSNI(`*`)'); // c1 under a foreign worker
    await put(`${w1}/http/routers/handmade/rule`, 'Host(`x`)'); // a key that names no circuit
    await put(`${w1}/http/middlewares/bai_ipallowlist_not-a-uuid/ipAllowList/sourceRange/0`, '0.0.0.0/0');
    await put(`${root}/shared/config`, 'left alone'); // outside any worker root

    const s = await sweep();
    expect(s.errors).toEqual([]);
    // c1 (deleted key), c2 (altered + extra), c3 (stale meta), c4 (resurrected keys), never-propagated
    expect(s.driftRepaired).toBe(5);
    // Only the key of circuit c1 (known to the database) under another worker's root is removed;
    // the unknown circuit's 2 keys are reported; the 2 keys outside circuitry's naming are foreign.
    expect(s).toMatchObject({ orphansRemoved: 1, orphanKeys: 2, foreignKeys: 2 });

    const want = await expectedTraefikKeys([c1.id, c2.id, c3.id, c4.id, never.id]);
    want.set(`${root}/shared/config`, 'left alone');
    want.set(`${w1}/http/routers/bai_router_${unknownId}/rule`, 'Host(`stray.example.com`)');
    want.set(`${w1}/http/services/bai_service_${unknownId}/loadBalancer/servers/0/url`, 'http://10.0.0.1:1/');
    want.set(`${w1}/http/routers/handmade/rule`, 'Host(`x`)');
    want.set(`${w1}/http/middlewares/bai_ipallowlist_not-a-uuid/ipAllowList/sourceRange/0`, '0.0.0.0/0');
    expect(sorted(await keysUnder(iso.rt.etcd, `${root}/`))).toEqual(sorted(want));
    for (const c of [c1, c2, c3, never]) {
      const m = decodeMeta((await keysUnder(iso.rt.etcd, metaKey(iso.rt.config.metaPrefix, c.id))).get(metaKey(iso.rt.config.metaPrefix, c.id))!);
      expect(m).toMatchObject({ generation: (await readCircuit(db(iso.rt), c.id))!.circuit.generation, deleted: false });
    }
    const m4 = decodeMeta((await keysUnder(iso.rt.etcd, metaKey(iso.rt.config.metaPrefix, c4.id))).get(metaKey(iso.rt.config.metaPrefix, c4.id))!);
    expect(m4).toMatchObject({ deleted: true });
    // No lock key left behind.
    expect((await keysUnder(iso.rt.etcd, `${iso.rt.config.metaPrefix}/locks/`)).size).toBe(0);

    // Converged: the next sweep finds nothing to do and writes nothing.
    const rev = (await iso.rt.etcd.kv.range({ key: enc('\0') })).header.revision;
    const s2 = await sweep();
    expect(s2).toMatchObject({ driftRepaired: 0, orphansRemoved: 0, etcdTxns: 0, lockAcquisitions: 0, errors: [] });
    expect((await iso.rt.etcd.kv.range({ key: enc('\0') })).header.revision).toBe(rev);
  });

  it('a drifted circuit whose health change converges it takes its lock once; one without a change is still repaired', async () => {
    const [x, y] = [await startBackend(), await startBackend()];
    backends.push(x, y);
    const changing = await seedHealthCircuit(iso.rt, { routes: [x], healthCheck: { healthyThreshold: 1 } });
    const steady = await seedHealthCircuit(iso.rt, { routes: [y], healthCheck: { healthyThreshold: 5 } });
    for (const c of [changing, steady]) await propagate(inv, c.id);
    for (const c of [changing, steady]) {
      const rule = `${workerRoot(iso.rt.config.traefikRoot, c.worker)}/http/routers/bai_router_${c.id}/rule`;
      await del(rule);
    }
    const s = await sweep();
    expect(s).toMatchObject({ statusChanges: 1, circuitsChanged: 1, driftRepaired: 1, errors: [] });
    expect(s.lockAcquisitions).toBe(2); // one for the health change (which also restores the key), one for the repair
    expect(sorted(await keysUnder(iso.rt.etcd, `${iso.rt.config.traefikRoot}/`))).toEqual(sorted(await expectedTraefikKeys([changing.id, steady.id])));
  });

  it('pages through etcd and the database (small pages) with the same result', async () => {
    const cs = [];
    for (let i = 0; i < 7; i++) cs.push(await seedCircuit(iso.rt, { routes: [route(i), route(i + 10)] }));
    for (const c of cs.slice(0, 5)) await propagate(inv, c.id); // two never propagated
    const w = workerRoot(iso.rt.config.traefikRoot, cs[0]!.worker);
    await put(`${w}/http/routers/bai_router_${randomUUID()}/rule`, 'x');
    const s = await runSweep(inv, { publish: async () => {}, driftCircuitsPageSize: 2, driftKeysPageSize: 3 });
    expect(s).toMatchObject({ driftChecked: 7, driftRepaired: 2, orphanKeys: 1, orphansRemoved: 0, errors: [] });
    const want = await expectedTraefikKeys(cs.map((c) => c.id));
    expect([...(await keysUnder(iso.rt.etcd, `${iso.rt.config.traefikRoot}/`)).keys()].filter((k) => !want.has(k))).toHaveLength(1);
  });

  it('ORPHAN_POLICY=delete removes keys named after circuits the database does not know, and still never a foreign key', async () => {
    await inv.close();
    await iso.close();
    iso = await isolatedRuntime({ ORPHAN_POLICY: 'delete' });
    inv = new Invocation(iso.rt);
    const c = await seedCircuit(iso.rt, { routes: [route(1)] });
    await propagate(inv, c.id);
    const w = workerRoot(iso.rt.config.traefikRoot, c.worker);
    const unknownId = randomUUID();
    await put(`${w}/http/routers/bai_router_${unknownId}/rule`, 'Host(`stray.example.com`)');
    await put(`${w}/http/services/bai_service_${unknownId}/loadBalancer/servers/0/url`, 'http://10.0.0.1:1/');
    await put(metaKey(iso.rt.config.metaPrefix, unknownId), encodeMeta({ generation: 3, deleted: false, worker: c.worker, writer: '', at: '' }));
    await put(`${w}/http/routers/operator-static/rule`, 'Host(`ops.example.com`)');
    const s = await sweep();
    expect(s).toMatchObject({ orphanKeys: 2, orphansRemoved: 2, foreignKeys: 1, errors: [] });
    const want = await expectedTraefikKeys([c.id]);
    want.set(`${w}/http/routers/operator-static/rule`, 'Host(`ops.example.com`)');
    expect(sorted(await keysUnder(iso.rt.etcd, `${iso.rt.config.traefikRoot}/`))).toEqual(sorted(want));
    expect((await keysUnder(iso.rt.etcd, metaKey(iso.rt.config.metaPrefix, unknownId))).size).toBe(0);
  });
});

describe('removeOrphanCircuit', () => {
  it('deletes a circuit-named orphan only while holding that circuit lock, and releases it in the same transaction', async () => {
    const id = randomUUID();
    const root = workerRoot(iso.rt.config.traefikRoot, 'w-orphan');
    await put(`${root}/http/routers/bai_router_${id}/rule`, 'x');
    await put(`${root}/http/services/bai_service_${id}_staging/loadBalancer/servers/0/url`, 'y');
    await put(`${root}/http/routers/bai_router_${randomUUID()}/rule`, 'another circuit: untouched');
    const r = await removeOrphanCircuit(inv, { circuitId: id, root, keys: 2, known: false }, iso.rt.db);
    expect(r).toMatchObject({ removed: 2, txns: 1 });
    expect((await keysUnder(iso.rt.etcd, `${root}/`)).size).toBe(1);
    expect((await keysUnder(iso.rt.etcd, lockPrefix(iso.rt.config.metaPrefix, id))).size).toBe(0);
  });

  it('re-checks an unknown circuit under its lock: one created meanwhile under that root is not an orphan', async () => {
    const c = await seedCircuit(iso.rt, { routes: [route(1)] });
    await propagate(inv, c.id);
    const root = workerRoot(iso.rt.config.traefikRoot, c.worker);
    const before = await keysUnder(iso.rt.etcd, `${root}/`);
    const r = await removeOrphanCircuit(inv, { circuitId: c.id, root, keys: before.size, known: false }, iso.rt.db);
    expect(r).toMatchObject({ removed: 0, skipped: 'no-longer-orphan' });
    expect(await keysUnder(iso.rt.etcd, `${root}/`)).toEqual(before);
  });

  it('waits for the circuit lock held by another writer', async () => {
    const id = randomUUID();
    const root = workerRoot(iso.rt.config.traefikRoot, 'w-orphan');
    await put(`${root}/http/routers/bai_router_${id}/rule`, 'x');
    const holder = new Invocation(iso.rt);
    const session = await holder.session();
    const held = await acquire(session, { prefix: lockPrefix(iso.rt.config.metaPrefix, id), epochKey: epochKey(iso.rt.config.metaPrefix), waitMs: 1000, rpcTimeoutMs: 1000 });
    let done = false;
    const p = removeOrphanCircuit(inv, { circuitId: id, root, keys: 1, known: false }, iso.rt.db).then((r) => ((done = true), r));
    await new Promise((r) => setTimeout(r, 300));
    expect(done).toBe(false);
    expect((await keysUnder(iso.rt.etcd, `${root}/`)).size).toBe(1);
    await held.lock.release(1000);
    expect(await p).toMatchObject({ removed: 1 });
    await holder.close();
  });
});
