// propagate / updateRoutes / unload on the real etcd and Postgres (through the Neon driver).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { closeRuntime, Invocation, type Runtime } from '../../lib/runtime.js';
import { propagate } from '../../lib/circuits/propagate.js';
import { updateRoutes } from '../../lib/circuits/update-routes.js';
import { unload } from '../../lib/circuits/unload.js';
import { readCircuit, replaceRoutes } from '../../lib/db/index.js';
import { StaleFenceError } from '../../lib/errors.js';
import { render } from '../../lib/traefik/render.js';
import { workerRoot } from '../../lib/traefik/names.js';
import { metaKey } from '../../lib/etcd/index.js';
import { decodeMeta } from '../../lib/etcd/index.js';
import { db, keysUnder, route, seedCircuit, testRuntime } from '../support/rt.js';
import type { RouteInput } from '../../lib/model.js';
import { naiveWrite } from '../support/naive-writer.js';

let rt: Runtime;
let inv: Invocation;
beforeAll(() => {
  rt = testRuntime();
  inv = new Invocation(rt);
});
afterAll(async () => {
  await inv.close();
  await closeRuntime(rt);
});

const rootOf = (worker: string) => `${workerRoot(rt.config.traefikRoot, worker)}/`;
async function expectedKeys(id: string) {
  const v = (await readCircuit(db(rt), id))!;
  return v.circuit.deletedAt ? new Map() : render(v.circuit, v.worker, { traefikRoot: rt.config.traefikRoot });
}
const sorted = (m: Map<string, string>) => [...m].sort(([a], [b]) => a.localeCompare(b));
async function meta(id: string) {
  const m = await keysUnder(rt.etcd, metaKey(rt.config.metaPrefix, id));
  const v = m.get(metaKey(rt.config.metaPrefix, id));
  return v === undefined ? null : decodeMeta(v);
}

describe('propagate', () => {
  it('publishes a circuit exactly as rendered, with its generation in the meta key', async () => {
    const c = await seedCircuit(rt);
    const r = await propagate(inv, c.id);
    expect(r).toMatchObject({ found: true, applied: true, generation: 1, deleted: false });
    expect(sorted(await keysUnder(rt.etcd, rootOf(c.worker)))).toEqual(sorted(await expectedKeys(c.id)));
    expect(await meta(c.id)).toMatchObject({ generation: 1, deleted: false, worker: c.worker });
  });

  it('writes nothing when etcd already matches, and costs 2 etcd RPCs when the worker is known', async () => {
    const c = await seedCircuit(rt);
    await propagate(inv, c.id);
    const before = await rt.etcd.kv.range({ key: Buffer.from('x') });
    const again = await propagate(inv, c.id);
    expect(again).toMatchObject({ applied: true, unchanged: true, etcdRpcs: 2, dbQueries: 1 });
    // Nothing under Traefik's root changed (the only writes were our lock key put/delete).
    const after = await rt.etcd.kv.range({ key: Buffer.from('x') });
    expect(BigInt(after.header.revision) - BigInt(before.header.revision)).toBe(2n);
    const changed = await updateRoutes(inv, c.id, [route(7)]);
    expect(changed).toMatchObject({ applied: true, unchanged: false, generation: 2, etcdRpcs: 2, dbQueries: 1, txns: 1 });
  });

  it('replaces routes (If-Match checked) and converges keys, with no stale server index left', async () => {
    const c = await seedCircuit(rt, { routes: [route(0), route(1), route(2), route(3)] });
    await propagate(inv, c.id);
    const r = await updateRoutes(inv, c.id, [route(9)], 1);
    expect(r).toMatchObject({ generation: 2, applied: true });
    const keys = await keysUnder(rt.etcd, rootOf(c.worker));
    expect(sorted(keys)).toEqual(sorted(await expectedKeys(c.id)));
    expect([...keys.keys()].filter((k) => /servers\/\d+\/url$/.test(k))).toHaveLength(1);
    await expect(updateRoutes(inv, c.id, [route(1)], 1)).rejects.toMatchObject({ name: 'ConflictError', code: 'generation-mismatch' });
    expect(sorted(await keysUnder(rt.etcd, rootOf(c.worker)))).toEqual(sorted(keys));
  });

  it('unload removes every key and leaves a tombstone; a duplicate unload is a no-op', async () => {
    const c = await seedCircuit(rt, { allowedClientIps: ['10.0.0.0/8'] });
    await propagate(inv, c.id);
    expect((await keysUnder(rt.etcd, rootOf(c.worker))).size).toBeGreaterThan(0);
    const u = await unload(inv, c.id);
    expect(u).toMatchObject({ deleted: true, applied: true, generation: 2 });
    expect((await keysUnder(rt.etcd, rootOf(c.worker))).size).toBe(0);
    expect(await meta(c.id)).toMatchObject({ deleted: true, generation: 2 });
    const again = await unload(inv, c.id);
    expect(again).toMatchObject({ deleted: true, unchanged: true, generation: 2 });
    await expect(updateRoutes(inv, c.id, [route(1)])).rejects.toMatchObject({ name: 'NotFoundError' });
    expect((await keysUnder(rt.etcd, rootOf(c.worker))).size).toBe(0);
  });

  it('an unknown circuit is reported as not found and writes nothing', async () => {
    const r = await unload(inv, '6b1f3a52-0000-4000-8000-000000000000');
    expect(r).toMatchObject({ found: false, applied: false });
    expect(await meta('6b1f3a52-0000-4000-8000-000000000000')).toBeNull();
  });
});

// The reference bug: a health-style writer reads C, C's unload commits, the writer then writes.
describe('the reference resurrection bug', () => {
  async function scenario(writer: 'circuitry' | 'naive') {
    const c = await seedCircuit(rt);
    await propagate(inv, c.id);
    const snapshot = (await readCircuit(db(rt), c.id))!; // taken before any lock, as the old checker did
    const other = new Invocation(rt);
    await unload(other, c.id);
    await other.close();
    if (writer === 'circuitry') await propagate(inv, c.id);
    else await naiveWrite(rt, snapshot);
    return { keys: await keysUnder(rt.etcd, rootOf(c.worker)), meta: await meta(c.id) };
  }

  it('circuitry: no key of the unloaded circuit exists afterwards and the tombstone stays', async () => {
    const r = await scenario('circuitry');
    expect(r.keys.size).toBe(0);
    expect(r.meta).toMatchObject({ deleted: true });
  });

  it('(control) the reference write path resurrects the keys, so the check above can fail', async () => {
    const r = await scenario('naive');
    expect(r.keys.size).toBeGreaterThan(0);
  });
});

describe('large circuits', () => {
  it('applies 200 routes and a full replacement; a watcher never sees a router without its service', async () => {
    const routes = Array.from({ length: 200 }, (_, i) => route(i));
    const c = await seedCircuit(rt, { routes });
    const root = rootOf(c.worker);
    const start = BigInt((await rt.etcd.kv.range({ key: Buffer.from('x') })).header.revision) + 1n;
    const r1 = await propagate(inv, c.id);
    expect(r1.txns).toBeGreaterThan(1);
    const r2 = await updateRoutes(inv, c.id, Array.from({ length: 200 }, (_, i) => route(i + 300)));
    expect(r2.applied).toBe(true);
    const r3 = await updateRoutes(inv, c.id, [route(1), route(2)]);
    expect(r3.applied).toBe(true);
    expect(sorted(await keysUnder(rt.etcd, root))).toEqual(sorted(await expectedKeys(c.id)));

    // Replay every revision under the root and check what Traefik would have read at each.
    const end = BigInt((await rt.etcd.kv.range({ key: Buffer.from('x') })).header.revision);
    const states: Map<string, string>[] = [];
    for (let rev = start; rev <= end; rev++) {
      const s = await rt.etcd.kv.range({ key: Buffer.from(root), range_end: Buffer.from(root.slice(0, -1) + '0'), revision: rev.toString() });
      states.push(new Map(s.kvs.map((kv) => [kv.key.toString(), kv.value.toString()])));
    }
    let checked = 0;
    for (const s of states) {
      for (const [k, svc] of s) {
        if (!k.endsWith('/service') || !k.includes('/routers/')) continue;
        const servers = [...s.keys()].filter((x) => x.startsWith(`${root}http/services/${svc}/loadBalancer/servers/`) && x.endsWith('/url'));
        expect(servers.length, `router ${k} -> ${svc} has no servers`).toBeGreaterThan(0);
        const idx = servers.map((x) => Number(x.split('/').at(-2))).sort((a, b) => a - b);
        expect(idx).toEqual(idx.map((_, i) => i));
        checked++;
      }
    }
    expect(checked).toBeGreaterThan(0);
  }, 60_000);
});

// A writer whose lock expired (paused past its TTL) must not commit its database change after
// the lock's next owner did: the change is fenced by the lock's create revision (I3).
describe('database fencing', () => {
  async function staleWriter(useFence: boolean) {
    const r1 = route(1);
    const c = await seedCircuit(rt, { routes: [r1, route(2)] });
    await propagate(inv, c.id);
    const stale = new Invocation(rt);
    const next = new Invocation(rt);
    const removal: RouteInput[] = [route(3)];
    const attempt = propagate(stale, c.id, {
      change: async (q, fence) => {
        // The "pause": our lease expires, the next owner removes route 1 and commits.
        await (await stale.session()).close();
        await updateRoutes(next, c.id, removal);
        // Without the fence: a fence that wins over any other (the check is then no check at all).
        return replaceRoutes(q, c.id, [r1, route(4)], undefined, useFence ? fence : { epoch: 1_000_000, revision: '0' });
      },
    });
    const outcome = await attempt.then(
      (r) => r,
      (e: unknown) => e,
    );
    await next.close();
    const routes = (await readCircuit(db(rt), c.id))!.circuit.routes.map((r) => r.routeId);
    return { outcome, routes, r1: r1.routeId, removal: removal.map((r) => r.routeId) };
  }

  it('refuses the change of a writer whose lock was taken over; the removed route stays removed', async () => {
    const r = await staleWriter(true);
    expect(r.outcome).toBeInstanceOf(StaleFenceError);
    expect(r.routes).toEqual(r.removal);
  });

  it('(control) without the fence the stale writer re-adds the removed route', async () => {
    const r = await staleWriter(false);
    expect(r.routes).toContain(r.r1);
  });
});
