// etcd disasters heal from the database (DESIGN I3: the fence is bound to the etcd cluster's
// identity and history). An operator restores etcd from a snapshot (revisions roll back below the
// fences the database recorded) or rebuilds it from scratch: nothing may stall, the next sweep
// starts a new fencing epoch and re-propagates every circuit from the database — circuits deleted
// after the snapshot do not come back, circuits created or changed after it reappear exactly.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServices, type Services } from '../../harness/devstack/services.js';
import { Invocation } from '../../lib/runtime.js';
import { propagate } from '../../lib/circuits/propagate.js';
import { unload } from '../../lib/circuits/unload.js';
import { updateRoutes } from '../../lib/circuits/update-routes.js';
import { readCircuit, latestEpoch } from '../../lib/db/index.js';
import { decodeMeta, metaKey } from '../../lib/etcd/index.js';
import { EtcdHistoryChangedError } from '../../lib/errors.js';
import { render } from '../../lib/traefik/render.js';
import { runSweep } from '../../lib/health/sweep.js';
import { isolatedRuntime, type IsolatedRuntime } from '../support/fake-backends.js';
import { keysUnder, route, seedCircuit } from '../support/rt.js';

let services: Services<true, false>;
let iso: IsolatedRuntime;
let dir: string;

beforeAll(async () => {
  services = await startServices({ postgres: false });
  iso = await isolatedRuntime({ ETCD_ENDPOINTS: services.env.ETCD_ENDPOINTS!, LOCK_TTL_SECONDS: '2', ETCD_TIMEOUT_MS: '1500' });
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'circuitry-snap-'));
});
afterAll(async () => {
  await iso?.close();
  await services?.stop();
  fs.rmSync(dir, { recursive: true, force: true });
});

const sweep = async () => {
  const inv = new Invocation(iso.rt);
  try {
    return await runSweep(inv, { publish: async () => {} });
  } finally {
    await inv.close();
  }
};
const withInv = async <T,>(fn: (inv: Invocation) => Promise<T>): Promise<T> => {
  const inv = new Invocation(iso.rt);
  try {
    return await fn(inv);
  } finally {
    await inv.close();
  }
};

/** etcd holds exactly render(database) for these circuits, and their metas agree. */
async function expectConverged(ids: string[]): Promise<void> {
  const rt = iso.rt;
  const want = new Map<string, string>();
  for (const id of ids) {
    const v = (await readCircuit(rt.db, id))!;
    for (const [k, val] of render(v.circuit, v.worker, { traefikRoot: rt.config.traefikRoot })) want.set(k, val);
    const m = (await keysUnder(rt.etcd, metaKey(rt.config.metaPrefix, id))).get(metaKey(rt.config.metaPrefix, id));
    // A deleted circuit whose keys are confirmed gone needs no tombstone: the database refuses it.
    if (m === undefined && v.circuit.deletedAt !== null && v.circuit.keysRemovedAt !== null) continue;
    expect(m === undefined ? null : decodeMeta(m), `meta of ${id}`).toMatchObject({ generation: v.circuit.generation, deleted: v.circuit.deletedAt !== null });
  }
  const have = await keysUnder(rt.etcd, `${rt.config.traefikRoot}/`);
  expect([...have].sort()).toEqual([...want].sort());
}

describe('etcd restored from a snapshot', () => {
  it('the next sweep starts a new epoch and re-propagates everything from the database; writes work again', async () => {
    const kept = await seedCircuit(iso.rt, { routes: [route(1), route(2)] });
    const doomed = await seedCircuit(iso.rt, { routes: [route(3)] });
    await withInv(async (inv) => {
      await propagate(inv, kept.id);
      await propagate(inv, doomed.id);
    });
    expect((await sweep()).epochsStarted).toBe(1); // the first epoch of this database
    const snapshot = path.join(dir, 'a.db');
    await services.etcd.snapshot(snapshot);

    // After the snapshot: 60 updates, a deletion, a creation.
    await withInv(async (inv) => {
      for (let i = 0; i < 60; i++) expect((await updateRoutes(inv, kept.id, [route(10 + (i % 3)), route(20)])).applied).toBe(true);
      expect((await unload(inv, doomed.id)).applied).toBe(true);
    });
    const born = await seedCircuit(iso.rt, { routes: [route(30)] });
    await withInv((inv) => propagate(inv, born.id));

    await services.etcd.restore(snapshot);

    const s = await sweep();
    expect(s.epochsStarted).toBe(1);
    expect(s.errors).toEqual([]);
    expect((await latestEpoch(iso.rt.db))?.epoch).toBe(2);
    await expectConverged([kept.id, doomed.id, born.id]);
    expect((await readCircuit(iso.rt.db, doomed.id))!.circuit.deletedAt).not.toBeNull();
    // Writes go through again, first try.
    const r = await withInv((inv) => updateRoutes(inv, kept.id, [route(40)]));
    expect(r.applied).toBe(true);
    await expectConverged([kept.id, doomed.id, born.id]);
  });

  it('a writer that meets the rolled-back history before any sweep starts the epoch itself: one 503, then the retry succeeds', async () => {
    const c = await seedCircuit(iso.rt, { routes: [route(1)] });
    await withInv((inv) => propagate(inv, c.id));
    await sweep();
    const snapshot = path.join(dir, 'b.db');
    await services.etcd.snapshot(snapshot);
    await withInv(async (inv) => {
      for (let i = 0; i < 30; i++) await updateRoutes(inv, c.id, [route(50 + (i % 2))]);
    });
    const epochBefore = (await latestEpoch(iso.rt.db))!.epoch;
    await services.etcd.restore(snapshot);

    const first = await withInv((inv) => updateRoutes(inv, c.id, [route(60)]).then((x) => x, (e: unknown) => e));
    expect(first).toBeInstanceOf(EtcdHistoryChangedError);
    expect((await latestEpoch(iso.rt.db))!.epoch).toBe(epochBefore + 1);
    const retry = await withInv((inv) => updateRoutes(inv, c.id, [route(60)]));
    expect(retry.applied).toBe(true);
  });
});

describe('etcd rebuilt from scratch', () => {
  it('an empty etcd (keys and revisions gone) is re-fenced and re-populated by one sweep', async () => {
    const a = await seedCircuit(iso.rt, { routes: [route(1)] });
    const b = await seedCircuit(iso.rt, { routes: [route(2), route(3)] });
    await withInv(async (inv) => {
      await propagate(inv, a.id);
      await propagate(inv, b.id);
      for (let i = 0; i < 10; i++) await updateRoutes(inv, b.id, [route(4 + (i % 2)), route(3)]);
    });
    await sweep();
    // An empty etcd: snapshot of a fresh cluster restored over this one.
    const fresh = await startServices({ postgres: false });
    const empty = path.join(dir, 'empty.db');
    try {
      await fresh.etcd.snapshot(empty);
    } finally {
      await fresh.stop();
    }
    await services.etcd.restore(empty);
    expect((await keysUnder(iso.rt.etcd, `${iso.rt.config.traefikRoot}/`)).size).toBe(0);

    const s = await sweep();
    expect(s.epochsStarted).toBe(1);
    expect(s.errors).toEqual([]);
    const all = (await iso.rt.db.query<{ id: string }>('SELECT id FROM circuits')).rows.map((x) => x.id);
    await expectConverged(all);
    expect((await withInv((inv) => updateRoutes(inv, a.id, [route(9)]))).applied).toBe(true);
  });
});

describe('the history check races the writers', () => {
  it('a fence recorded between its two reads is no rollback: no epoch is started', async () => {
    const { armFailpoint } = await import('../../lib/failpoints.js');
    const { checkEtcdHistory } = await import('../../lib/circuits/history.js');
    const c = await seedCircuit(iso.rt, { routes: [route(1)] });
    await withInv((inv) => propagate(inv, c.id));
    await sweep();
    const before = (await latestEpoch(iso.rt.db))!.epoch;
    // Between the check's database read and its etcd read, writers take locks and record fences.
    const disarm = armFailpoint('history.betweenReads', async () => {
      await withInv(async (inv) => {
        for (let i = 0; i < 3; i++) await updateRoutes(inv, c.id, [route(2 + i)]);
      });
    });
    try {
      expect(await withInv((inv) => checkEtcdHistory(inv))).toMatchObject({ status: 'ok', epoch: before });
    } finally {
      disarm();
    }
    expect((await latestEpoch(iso.rt.db))!.epoch).toBe(before);
  });
});
