// scheduled-health on the real etcd + Postgres, with real HTTP backends on 127.0.0.1: thresholds
// and Traefik's keys, the initial delay, zero etcd writes for unchanged circuits, overlapping
// sweeps (in one process and across OS processes) and the multi-pass loop.
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Invocation } from '../../lib/runtime.js';
import { readCircuit } from '../../lib/db/circuits.js';
import { runSweep, type SweepOptions } from '../../lib/health/sweep.js';
import { runSweeps } from '../../lib/health/passes.js';
import { closeProbers } from '../../lib/health/probers.js';
import type { RouteHealthChanged } from '../../lib/health/events.js';
import { render } from '../../lib/traefik/render.js';
import { workerRoot } from '../../lib/traefik/names.js';
import { metaKey } from '../../lib/etcd/index.js';
import { decodeMeta } from '../../lib/etcd/index.js';
import { db, keysUnder, route, seedCircuit, startProc } from '../support/rt.js';
import { propagate } from '../../lib/circuits/propagate.js';
import { recordUnloadRequest, type Database } from '../../lib/db/index.js';
import type { Prober } from '../../lib/health/probe.js';
import { isolatedRuntime, seedHealthCircuit, startBackend, startBackends, type Backend, type IsolatedRuntime } from '../support/fake-backends.js';

let iso: IsolatedRuntime;
let inv: Invocation;
let events: RouteHealthChanged[];
const backends: Backend[] = [];

beforeEach(async () => {
  iso = await isolatedRuntime();
  inv = new Invocation(iso.rt);
  events = [];
});
afterEach(async () => {
  await inv.close();
  await iso.close();
});
afterAll(async () => {
  closeProbers();
  await Promise.all(backends.map((b) => b.close()));
});

async function backend(initial: number | 'hang' = 200): Promise<Backend> {
  const b = await startBackend('127.0.0.1', initial === 'hang' ? { kind: 'hang' } : initial);
  backends.push(b);
  return b;
}

const at = (base: Date, seconds: number) => new Date(base.getTime() + seconds * 1000);
/**
 * "Now" for a sweep right after seeding. Postgres stamps next_probe_at in microseconds and a JS
 * Date has milliseconds: a circuit inserted within the current millisecond would not be due yet.
 */
const justAfterNow = () => new Date(Date.now() + 5);
const sweep = (now: Date, extra: Partial<SweepOptions> = {}) =>
  runSweep(inv, { publish: async (e) => void events.push(...e), now: () => now, ...extra });

const rootOf = (worker: string) => `${workerRoot(iso.rt.config.traefikRoot, worker)}/`;
const serverUrls = async (worker: string) =>
  [...(await keysUnder(iso.rt.etcd, rootOf(worker)))].filter(([k]) => /servers\/\d+\/url$/.test(k)).map(([, v]) => v).sort();
const revision = async () => BigInt((await iso.rt.etcd.kv.range({ key: Buffer.from('\0') })).header.revision);
async function meta(id: string) {
  const k = metaKey(iso.rt.config.metaPrefix, id);
  const v = (await keysUnder(iso.rt.etcd, k)).get(k);
  return v === undefined ? null : decodeMeta(v);
}
async function routeHealth(id: string) {
  const v = (await readCircuit(db(iso.rt), id))!;
  return v.circuit.routes.map((r) => ({ host: r.host, port: r.port, ...r.health }));
}
async function expectKeysMatchDatabase(id: string, worker: string) {
  const v = (await readCircuit(db(iso.rt), id))!;
  const want = render(v.circuit, v.worker, { traefikRoot: iso.rt.config.traefikRoot, extraMiddlewares: iso.rt.config.traefikExtraMiddlewares });
  const got = await keysUnder(iso.rt.etcd, rootOf(worker));
  expect([...got].sort()).toEqual([...want].sort());
  expect(await meta(id)).toMatchObject({ generation: v.circuit.generation, deleted: false });
}

describe('thresholds and Traefik keys', () => {
  it('a route leaves Traefik after unhealthyThreshold failures and returns after healthyThreshold successes', async () => {
    const [a, b] = [await backend(200), await backend(200)];
    const c = await seedHealthCircuit(iso.rt, { routes: [a, b], healthCheck: { unhealthyThreshold: 2, healthyThreshold: 2 } });
    const urlA = `http://127.0.0.1:${a.port}/`;
    const urlB = `http://127.0.0.1:${b.port}/`;
    const t0 = justAfterNow();

    // Pass 1: one success each (still unknown). Drift repair publishes the never-propagated circuit.
    let s = await sweep(at(t0, 0));
    expect(s).toMatchObject({ circuitsClaimed: 1, probes: 2, probeFailures: 0, statusChanges: 0, driftRepaired: 1 });
    expect((await routeHealth(c.id)).map((r) => r.status)).toEqual(['unknown', 'unknown']);
    await expectKeysMatchDatabase(c.id, c.worker);
    expect(await serverUrls(c.worker)).toEqual([urlA, urlB].sort()); // panic mode: all listed

    // Pass 2: healthy threshold reached: one lock, one generation, two events.
    s = await sweep(at(t0, 1));
    expect(s).toMatchObject({ statusChanges: 2, circuitsChanged: 1, lockAcquisitions: 1, etcdTxns: 1, driftRepaired: 0 });
    expect(events.map((e) => [e.routeId, e.from, e.to])).toEqual(
      expect.arrayContaining([
        [c.routeIds[0], 'unknown', 'healthy'],
        [c.routeIds[1], 'unknown', 'healthy'],
      ]),
    );
    expect(events.every((e) => e.generation === 2 && e.lastError === null && e.at === at(t0, 1).toISOString())).toBe(true);
    await expectKeysMatchDatabase(c.id, c.worker);
    const healthyKeys = await keysUnder(iso.rt.etcd, rootOf(c.worker));
    expect([...healthyKeys.keys()].some((k) => k.includes('/healthCheck/'))).toBe(false);

    // B fails once: hysteresis keeps it, and nothing at all is written to etcd.
    b.set(500);
    events = [];
    const before = await revision();
    s = await sweep(at(t0, 2));
    expect(s).toMatchObject({ probeFailures: 1, statusChanges: 0, etcdTxns: 0, lockAcquisitions: 0, countersWritten: 2 });
    expect(await revision()).toBe(before);
    expect((await routeHealth(c.id))[1]).toMatchObject({ status: 'healthy', consecutiveFailures: 1, lastError: 'HTTP 500 (expected 200)' });

    // Second failure: B leaves Traefik's keys.
    s = await sweep(at(t0, 3));
    expect(s).toMatchObject({ statusChanges: 1, circuitsChanged: 1, etcdTxns: 1 });
    expect(events).toEqual([
      { circuitId: c.id, routeId: c.routeIds[1], from: 'healthy', to: 'unhealthy', at: at(t0, 3).toISOString(), lastError: 'HTTP 500 (expected 200)', generation: 3 },
    ]);
    expect(await serverUrls(c.worker)).toEqual([urlA]);
    await expectKeysMatchDatabase(c.id, c.worker);

    // Recovery: one success is not enough, the second brings it back.
    b.set(200);
    events = [];
    s = await sweep(at(t0, 4));
    expect(s.statusChanges).toBe(0);
    expect(await serverUrls(c.worker)).toEqual([urlA]);
    s = await sweep(at(t0, 5));
    expect(s.statusChanges).toBe(1);
    expect(events).toMatchObject([{ routeId: c.routeIds[1], from: 'unhealthy', to: 'healthy', lastError: null, generation: 4 }]);
    expect(await serverUrls(c.worker)).toEqual([urlA, urlB].sort());
    await expectKeysMatchDatabase(c.id, c.worker);
  });

  it('a circuit that is not due is not probed; one due again after its interval is', async () => {
    const a = await backend(200);
    await seedHealthCircuit(iso.rt, { routes: [a], healthCheck: { intervalSeconds: 10 } });
    const t0 = justAfterNow();
    expect((await sweep(at(t0, 0))).probes).toBe(1);
    expect((await sweep(at(t0, 5))).probes).toBe(0);
    expect((await sweep(at(t0, 9.9))).probes).toBe(0);
    expect((await sweep(at(t0, 10))).probes).toBe(1);
  });
});

describe('initial delay', () => {
  it('failures inside the delay are not counted, successes are; counting starts when it ends', async () => {
    const failing = await backend(500);
    const fine = await backend(200);
    const c = await seedHealthCircuit(iso.rt, {
      routes: [failing, fine],
      healthCheck: { initialDelaySeconds: 60, unhealthyThreshold: 2, healthyThreshold: 2 },
    });
    const created = new Date(c.view.circuit.routes[0]!.createdAt);
    for (let i = 0; i < 4; i++) await sweep(at(created, 1 + i));
    const [f, ok] = await routeHealth(c.id);
    expect(f).toMatchObject({ status: 'unknown', consecutiveFailures: 0, consecutiveSuccesses: 0, lastError: 'HTTP 500 (expected 200)' });
    expect(f!.lastCheckedAt).not.toBeNull();
    // The fast one joined early, inside the delay.
    expect(ok).toMatchObject({ status: 'healthy', consecutiveSuccesses: 4 });
    expect(events.map((e) => [e.routeId, e.to])).toEqual([[c.routeIds[1], 'healthy']]);

    await sweep(at(created, 59.5)); // still inside
    expect((await routeHealth(c.id))[0]).toMatchObject({ status: 'unknown', consecutiveFailures: 0 });
    await sweep(at(created, 60.5));
    expect((await routeHealth(c.id))[0]).toMatchObject({ status: 'unknown', consecutiveFailures: 1 });
    await sweep(at(created, 61.5));
    expect((await routeHealth(c.id))[0]).toMatchObject({ status: 'unhealthy', consecutiveFailures: 2 });
  });
});

describe('writing only what changed', () => {
  it('a sweep over unchanged circuits performs zero etcd writes (header revision unchanged)', async () => {
    const bs = await startBackends(6, 200);
    backends.push(...bs);
    const circuits = [];
    for (let i = 0; i < 3; i++) circuits.push(await seedHealthCircuit(iso.rt, { routes: bs.slice(i * 2, i * 2 + 2) }));
    const t0 = justAfterNow();
    await sweep(at(t0, 0));
    const s1 = await sweep(at(t0, 1)); // all become healthy
    expect(s1.circuitsChanged).toBe(3);
    for (const c of circuits) await expectKeysMatchDatabase(c.id, c.worker);
    const gens = await Promise.all(circuits.map(async (c) => (await readCircuit(db(iso.rt), c.id))!.circuit.generation));

    const before = await revision();
    for (let i = 2; i < 5; i++) {
      const s = await sweep(at(t0, i));
      expect(s).toMatchObject({ probes: 6, statusChanges: 0, etcdTxns: 0, lockAcquisitions: 0, driftRepaired: 0, orphansRemoved: 0, errors: [] });
      expect(s.countersWritten).toBe(6);
    }
    expect(await revision()).toBe(before);
    const after = await Promise.all(circuits.map(async (c) => (await readCircuit(db(iso.rt), c.id))!.circuit.generation));
    expect(after).toEqual(gens);
    expect((await routeHealth(circuits[0]!.id))[0]).toMatchObject({ status: 'healthy', consecutiveSuccesses: 5 });
  });

  it('a disallowed route address is refused (never connected) and counts as a failure', async () => {
    const a = await backend(200);
    const c = await seedHealthCircuit(iso.rt, { routes: [a, { host: '169.254.169.254', port: 80 }], healthCheck: { unhealthyThreshold: 1 } });
    const s = await sweep(justAfterNow());
    expect(s).toMatchObject({ probes: 2, probeFailures: 1, probesRefused: 1, statusChanges: 1 });
    const h = await routeHealth(c.id);
    expect(h[1]).toMatchObject({ status: 'unhealthy', lastError: expect.stringMatching(/^refused: .*metadata/) });
  });
});

describe('overlapping sweeps', () => {
  async function seedMany(n: number) {
    const bs = await startBackends(4, 200);
    backends.push(...bs);
    const cs = [];
    for (let i = 0; i < n; i++) cs.push(await seedHealthCircuit(iso.rt, { routes: [bs[i % 4]!, bs[(i + 1) % 4]!], healthCheck: { healthyThreshold: 3 } }));
    return { bs, cs };
  }
  async function counters(ids: string[]) {
    const r = await db(iso.rt).query<{ s: number; n: string }>(
      'SELECT consecutive_successes AS s, count(*) AS n FROM routes WHERE circuit_id = ANY($1::uuid[]) GROUP BY 1',
      [ids],
    );
    return Object.fromEntries(r.rows.map((x) => [x.s, Number(x.n)]));
  }

  it('concurrent sweeps in one process claim each circuit once per interval: counters advance by exactly one', async () => {
    const { cs } = await seedMany(20);
    const ids = cs.map((c) => c.id);
    const t0 = justAfterNow();
    for (let k = 0; k < 3; k++) {
      const runs = await Promise.all([0, 1, 2].map(() => sweep(at(t0, k), { batchSize: 3, drift: false })));
      expect(runs.flatMap((s) => s.errors)).toEqual([]);
      expect(runs.reduce((n, s) => n + s.circuitsClaimed, 0)).toBe(20);
      expect(runs.reduce((n, s) => n + s.probes, 0)).toBe(40);
      expect(await counters(ids)).toEqual({ [k + 1]: 40 });
      // A sweep later in the same interval finds nothing due.
      expect((await sweep(at(t0, k + 0.5), { drift: false })).circuitsClaimed).toBe(0);
    }
    // Third success: healthy; exactly one propagate per circuit across all sweeps.
    expect(events).toHaveLength(40);
    expect(new Set(events.map((e) => e.routeId)).size).toBe(40);
  });

  it('sweeps in separate OS processes (plus this one) never double-count', async () => {
    const { cs } = await seedMany(30);
    const ids = cs.map((c) => c.id);
    const t0 = justAfterNow();
    for (let k = 0; k < 2; k++) {
      const now = at(t0, k).toISOString();
      const procs = [0, 1].map(() => startProc('health-sweep', [now, '2', '--wait-go', '--no-drift'], iso.env));
      await Promise.all(procs.map((p) => p.waitFor(/"ready"/)));
      for (const p of procs) p.send('go');
      const mine = await sweep(new Date(now), { batchSize: 2, drift: false });
      const theirs = await Promise.all(
        procs.map(async (p) => {
          const line = await p.waitFor(/"stats"/, 30_000);
          expect(await p.exited).toBe(0);
          return JSON.parse(line) as { stats: { circuitsClaimed: number; probes: number; errors: string[] } };
        }),
      );
      const claimed = [mine.circuitsClaimed, ...theirs.map((t) => t.stats.circuitsClaimed)];
      expect(claimed.reduce((a, b) => a + b, 0)).toBe(30);
      expect(claimed.filter((n) => n > 0).length).toBeGreaterThanOrEqual(2); // they did overlap
      expect(theirs.flatMap((t) => t.stats.errors)).toEqual([]);
      expect(await counters(ids)).toEqual({ [k + 1]: 60 });
    }
  });

  it('a sweep that probes more slowly than the interval loses to the next one instead of double-counting', async () => {
    const slow = await backend('hang');
    const c = await seedHealthCircuit(iso.rt, { routes: [slow], healthCheck: { timeoutMs: 5000, unhealthyThreshold: 5 } });
    const t0 = justAfterNow();
    const first = sweep(at(t0, 0), { drift: false });
    await slow.waitForRequest(1);
    const second = sweep(at(t0, 1), { drift: false }); // the next interval: due again
    await slow.waitForRequest(2);
    slow.release(500);
    const [s1, s2] = await Promise.all([first, second]);
    expect(s1.probes + s2.probes).toBe(2);
    // Both computed failures=1 from the same state; only the first write lands.
    expect(s1.countersWritten + s2.countersWritten).toBe(1);
    expect(s1.resultsDiscarded + s2.resultsDiscarded).toBe(1);
    expect((await routeHealth(c.id))[0]).toMatchObject({ consecutiveFailures: 1 });
  });
});

describe('a pass slower than the interval', () => {
  it('ends: it claims only what was due when it started, each circuit once', async () => {
    const [h1, h2] = [await backend('hang'), await backend('hang')];
    for (const h of [h1, h2]) await seedHealthCircuit(iso.rt, { routes: [h], healthCheck: { intervalSeconds: 1, timeoutMs: 1200 } });
    const s = await runSweep(inv, { publish: async () => {}, batchSize: 1, maxCircuitsInFlight: 1, drift: false });
    expect(s).toMatchObject({ circuitsClaimed: 2, probes: 2, probeFailures: 2 });
    expect(s.durationMs).toBeGreaterThan(2000); // the first circuit was due again while the second was probed
  });
});

describe('the deadline', () => {
  let late: IsolatedRuntime;
  let lateInv: Invocation;
  beforeEach(async () => {
    late = await isolatedRuntime({ UNLOAD_GRACE_SECONDS: '0' });
    lateInv = new Invocation(late.rt);
  });
  afterEach(async () => {
    await lateInv.close();
    await late.close();
  });

  /** A circuit published and then DELETEd, its unload event lost. */
  async function pendingUnload() {
    const u = await seedCircuit(late.rt, { routes: [route(1)] });
    await propagate(lateInv, u.id);
    await recordUnloadRequest(late.rt.db, u.id);
    return u;
  }
  const keysOf = async (id: string) => [...(await keysUnder(late.rt.etcd, `${late.rt.config.traefikRoot}/`)).keys()].filter((k) => k.includes(id));
  const unloaded = async (id: string) => (await readCircuit(db(late.rt), id))!.circuit.deletedAt !== null && (await keysOf(id)).length === 0;

  it('with 4 s left, a hanging route whose timeout does not fit is not claimed, the pending unload completes, and runSweeps returns before the deadline', async () => {
    const h = await backend('hang');
    await seedHealthCircuit(late.rt, { routes: [h], healthCheck: { intervalSeconds: 60, timeoutMs: 20_000 } });
    const u = await pendingUnload();
    const deadline = Date.now() + 4000;
    const r = await runSweeps(lateInv, { publish: async () => {}, remainingMs: () => deadline - Date.now(), safetyMarginMs: 500 });
    expect(Date.now()).toBeLessThan(deadline);
    expect(r.total).toMatchObject({ circuitsClaimed: 0, pendingUnloadsCompleted: 1, errors: [] });
    expect(h.requests).toHaveLength(0);
    expect(await unloaded(u.id)).toBe(true);
  });

  it('a pending unload completes while a claimed circuit is still being probed, not after', async () => {
    const a = await backend(200);
    const c = await seedHealthCircuit(late.rt, { routes: [a], healthCheck: { intervalSeconds: 60, timeoutMs: 1000 } });
    const u = await pendingUnload();
    let sawUnload = false;
    // The probe answers only once the unload is done: a sweep that completes unloads after its
    // probes never finishes this one (the test times out).
    const prober = {
      probe: async () => {
        while (!(await unloaded(u.id))) await new Promise((res) => setTimeout(res, 20));
        sawUnload = true;
        return { ok: true, statusCode: 200 };
      },
    } as unknown as Prober;
    const s = await runSweep(lateInv, { publish: async () => {}, prober, now: justAfterNow });
    expect(sawUnload).toBe(true);
    expect(s).toMatchObject({ circuitsClaimed: 1, pendingUnloadsCompleted: 1, errors: [] });
    expect((await readCircuit(db(late.rt), c.id))!.circuit.routes[0]!.health.consecutiveSuccesses).toBe(1);
  });

  it('the counters of a finished claim batch are written while later batches are still probed', async () => {
    const [a, b] = [await backend(200), await backend(200)];
    const ca = await seedHealthCircuit(late.rt, { routes: [a], healthCheck: { intervalSeconds: 60 } });
    await seedHealthCircuit(late.rt, { routes: [b], healthCheck: { intervalSeconds: 60 } });
    // b's probe answers only once a's counters are in the database: a sweep that buffers counters
    // until all its probes are done never finishes it (the test times out).
    const prober = {
      probe: async (t: { port: number }) => {
        if (t.port === b.port) {
          while ((await readCircuit(db(late.rt), ca.id))!.circuit.routes[0]!.health.consecutiveSuccesses === 0) await new Promise((res) => setTimeout(res, 20));
        }
        return { ok: true, statusCode: 200 };
      },
    } as unknown as Prober;
    const s = await runSweep(lateInv, { publish: async () => {}, prober, now: justAfterNow, batchSize: 1, drift: false });
    expect(s).toMatchObject({ circuitsClaimed: 2, batches: 2, countersWritten: 2, errors: [] });
  });

  it('a failing claim statement is retried after claimRetryMs, not at once, and not past the deadline', async () => {
    await seedHealthCircuit(late.rt, { routes: [await backend(200)], healthCheck: { intervalSeconds: 1 } });
    let claims = 0;
    const failing: Database = {
      ...late.rt.db,
      query: (text, params) => {
        if (!text.includes('FOR UPDATE SKIP LOCKED')) return late.rt.db.query(text, params);
        claims++;
        return Promise.reject(new Error('claim failed'));
      },
    };
    const inv2 = new Invocation({ ...late.rt, db: failing });
    // Virtual time: sleeping moves the clock the loop sees, so the test does not wait for it.
    let slept = 0;
    const waits: number[] = [];
    const end = Date.now() + 10_000;
    try {
      const r = await runSweeps(inv2, {
        publish: async () => {},
        remainingMs: () => end - Date.now() - slept,
        sleep: async (ms) => {
          waits.push(ms);
          slept += ms;
        },
        safetyMarginMs: 500,
      });
      expect(r.total.claimFailures).toBe(claims);
      expect(claims).toBeGreaterThanOrEqual(2);
      // About one pass per claimRetryMs of the ~9.5 s left, not one pass after another.
      expect(claims).toBeLessThanOrEqual(10);
      expect(waits.every((w) => w >= 1000)).toBe(true);
    } finally {
      await inv2.close();
    }
  });
});

describe('runSweeps', () => {
  it('runs exactly one pass when the remaining time is below one interval', async () => {
    const a = await backend(200);
    const c = await seedHealthCircuit(iso.rt, { routes: [a], healthCheck: { intervalSeconds: 5 } });
    const r = await runSweeps(inv, { publish: async () => {}, remainingMs: () => 3000, safetyMarginMs: 500 });
    expect(r.passes).toHaveLength(1);
    expect((await routeHealth(c.id))[0]).toMatchObject({ consecutiveSuccesses: 1 });
    // Also with no time at all (a tool driving single passes).
    const r0 = await runSweeps(inv, { publish: async () => {}, remainingMs: () => 0, safetyMarginMs: 500 });
    expect(r0.passes).toHaveLength(1);
  });

  it('loops sub-minute intervals while time remains, one probe per circuit per interval', async () => {
    const a = await backend(200);
    const c = await seedHealthCircuit(iso.rt, { routes: [a], healthCheck: { intervalSeconds: 1, healthyThreshold: 2 } });
    const end = Date.now() + 3600;
    const r = await runSweeps(inv, { publish: async (e) => void events.push(...e), remainingMs: () => end - Date.now(), safetyMarginMs: 300 });
    expect(Date.now()).toBeLessThan(end);
    // ~1 s apart within 3.6 s (fewer on a loaded machine, never more than the intervals allow)
    expect(r.passes.length).toBeGreaterThanOrEqual(2);
    expect(r.passes.length).toBeLessThanOrEqual(4);
    expect(r.total.probes).toBe(r.passes.length);
    expect(a.requests).toHaveLength(r.passes.length);
    // Drift repair ran on the first pass only.
    expect(r.passes[0]!.driftChecked).toBe(1);
    expect(r.passes.slice(1).every((p) => p.driftChecked === 0)).toBe(true);
    expect((await routeHealth(c.id))[0]).toMatchObject({ status: 'healthy', consecutiveSuccesses: r.passes.length });
    expect(events).toHaveLength(1);
  });
});
