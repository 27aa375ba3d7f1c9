// The health sweep's fan-out on the real database, real backends and real OS processes: the
// dispatcher sizes the work (routes per second vs one sweeper's capacity), asks for the extra
// sweepers as HealthSweepRequested events, and the real health-sweeper function, one process per
// event, shares the due circuits with the dispatcher's own pass: every route probed exactly once.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Invocation } from '../../lib/runtime.js';
import { dispatchSweepers, eventSweeperLauncher, parseSweepEvent, runSweep, silentLog, type SweepStats } from '../../lib/health/index.js';
import type { OutgoingEvent, Publisher } from '../../lib/events.js';
import { handler as healthSweeper } from '../../functions/health-sweeper.js';
import { startLocalEventBridge, type LocalEventBridge } from '../../harness/devstack/local-eventbridge.js';
import { isolatedRuntime, seedHealthCircuit, startBackends, type Backend, type IsolatedRuntime } from '../support/fake-backends.js';
import { eventBridgeEvent, lambdaContext } from '../support/lambda.js';
import { killAll, startProc, type Proc } from '../support/rt.js';

const CIRCUITS = 12;
const ROUTES_PER_CIRCUIT = 5;
const INTERVAL_SECONDS = 2;

let iso: IsolatedRuntime;
let backends: Backend[];
let eventBridge: LocalEventBridge;
beforeAll(async () => {
  // 60 routes every 2 s = 30 routes/s; one sweeper is said to do 10: three sweepers, two started.
  iso = await isolatedRuntime({ HEALTH_SWEEPER_ROUTES_PER_SECOND: '10', HEALTH_MAX_SWEEPERS: '8' });
  backends = await startBackends(CIRCUITS * ROUTES_PER_CIRCUIT, 200);
  eventBridge = await startLocalEventBridge({ invoke: async () => null, log: () => {} });
  for (let c = 0; c < CIRCUITS; c++) {
    const mine = backends.slice(c * ROUTES_PER_CIRCUIT, (c + 1) * ROUTES_PER_CIRCUIT);
    await seedHealthCircuit(iso.rt, { routes: mine.map((b) => ({ host: b.host, port: b.port })), healthCheck: { intervalSeconds: INTERVAL_SECONDS } });
  }
}, 60_000);
afterAll(async () => {
  killAll();
  await eventBridge?.close();
  await Promise.all((backends ?? []).map((b) => b.close()));
  await iso?.close();
});

function capturing(): Publisher & { events: OutgoingEvent[] } {
  const events: OutgoingEvent[] = [];
  return { events, publish: async (e) => (events.push(...e), { published: e.length }) };
}

describe('health fan-out', () => {
  it('sizes the work, starts the extra sweepers as events, and the sweepers and the dispatcher probe every route exactly once', async () => {
    const inv = new Invocation(iso.rt, 'dispatcher');
    try {
      const publisher = capturing();
      const d = await dispatchSweepers(inv, { launcher: eventSweeperLauncher(publisher), log: silentLog });
      expect(d.load).toMatchObject({ circuits: CIRCUITS, routes: CIRCUITS * ROUTES_PER_CIRCUIT, routesPerSecond: (CIRCUITS * ROUTES_PER_CIRCUIT) / INTERVAL_SECONDS });
      expect({ sweepers: d.sweepers, toStart: d.toStart, started: d.started, failed: d.failed, capped: d.capped }).toEqual({ sweepers: 3, toStart: 2, started: 2, failed: 0, capped: false });
      expect(publisher.events.map((e) => e.detailType)).toEqual(['HealthSweepRequested', 'HealthSweepRequested']);
      expect(publisher.events.map((e) => [e.detail.index, e.detail.of])).toEqual([[1, 3], [2, 3]]);

      // Each event as EventBridge hands it to the function, in its own process.
      const procs: Proc[] = publisher.events.map((e) =>
        startProc('health-sweeper-fn', [JSON.stringify(eventBridgeEvent(e.detailType, e.detail))], { ...iso.env, EVENTBRIDGE_ENDPOINT: eventBridge.url }),
      );
      await Promise.all(procs.map((p) => p.waitFor(/"ready":true/, 30_000)));
      for (const p of procs) p.send('go');
      const own = runSweep(inv, { publish: async () => {}, batchSize: 2 });
      const results = await Promise.all(procs.map(async (p) => JSON.parse(await p.waitFor(/"result"/, 60_000)) as { result: { status: string } & SweepStats }));
      const mine = await own;

      expect(results.map((r) => r.result.status)).toEqual(['swept', 'swept']);
      // The extra sweepers only probe: no drift check, no history check, no unloads.
      for (const r of results) expect(r.result.driftChecked).toBe(0);
      const probes = mine.probes + results.reduce((n, r) => n + r.result.probes, 0);
      expect(probes).toBe(CIRCUITS * ROUTES_PER_CIRCUIT);
      expect(backends.map((b) => b.requests.length)).toEqual(backends.map(() => 1));
    } finally {
      await inv.close();
    }
  }, 120_000);

  it('without room for more sweepers, sweeps alone and says the work is capped', async () => {
    const capped = await isolatedRuntime({ HEALTH_SWEEPER_ROUTES_PER_SECOND: '10', HEALTH_MAX_SWEEPERS: '1' });
    const inv = new Invocation(capped.rt, 'dispatcher');
    try {
      await seedHealthCircuit(capped.rt, { routes: backends.slice(0, 5).map((b) => ({ host: b.host, port: b.port })), healthCheck: { intervalSeconds: 1 } });
      await seedHealthCircuit(capped.rt, { routes: backends.slice(5, 20).map((b) => ({ host: b.host, port: b.port })), healthCheck: { intervalSeconds: 1 } });
      const publisher = capturing();
      const warnings: string[] = [];
      const d = await dispatchSweepers(inv, { launcher: eventSweeperLauncher(publisher), log: { ...silentLog, warn: (m) => void warnings.push(m) } });
      expect(d.load.routesPerSecond).toBe(20);
      expect({ sweepers: d.sweepers, toStart: d.toStart, capped: d.capped }).toEqual({ sweepers: 1, toStart: 0, capped: true });
      expect(publisher.events).toEqual([]);
      expect(warnings).toEqual(['health work exceeds the sweepers allowed: routes will be probed late']);
    } finally {
      await inv.close();
      await capped.close();
    }
  }, 60_000);

  it('a publish that fails for some sweepers reports them and starts the rest', async () => {
    const inv = new Invocation(iso.rt, 'dispatcher');
    try {
      const { PublishError } = await import('../../lib/events.js');
      const failing: Publisher = {
        publish: async (events) => {
          throw new PublishError('1 of 2 events were not published', [events[1]!]);
        },
      };
      const errors: string[] = [];
      const d = await dispatchSweepers(inv, { launcher: eventSweeperLauncher(failing), log: { ...silentLog, error: (m) => void errors.push(m) } });
      expect({ started: d.started, failed: d.failed }).toEqual({ started: 1, failed: 1 });
      expect(errors).toEqual(['some sweepers could not be started: the others and the next tick cover their work']);
    } finally {
      await inv.close();
    }
  });
});

describe('health-sweeper', () => {
  it.each<[string, unknown, RegExp]>([
    ['no detail', { 'detail-type': 'HealthSweepRequested' }, /detail/],
    ['another detail type', eventBridgeEvent('CircuitUnloadRequested', { dispatchedAt: new Date().toISOString(), index: 1, of: 2 }), /detail-type/],
    ['an index not below of', eventBridgeEvent('HealthSweepRequested', { dispatchedAt: new Date().toISOString(), index: 2, of: 2 }), /detail\.index: 2 is not below detail\.of \(2\)/],
    ['a date that is not one', eventBridgeEvent('HealthSweepRequested', { dispatchedAt: 'yesterday', index: 1, of: 2 }), /detail\.dispatchedAt/],
  ])('drops a malformed event (%s), naming the problem', async (_name, event, problem) => {
    expect(parseSweepEvent(event)).toEqual({ problem: expect.stringMatching(problem) });
    const r = (await healthSweeper(event as never, lambdaContext(1_000, 'health-sweeper') as never)) as { status: string; problem: string };
    expect(r.status).toBe('malformed');
    expect(r.problem).toMatch(problem);
  });

  it('skips a request that arrived after its tick', async () => {
    const before = backends.reduce((n, b) => n + b.requests.length, 0);
    const event = eventBridgeEvent('HealthSweepRequested', { dispatchedAt: new Date(Date.now() - 55_000).toISOString(), index: 1, of: 2 });
    const r = (await healthSweeper(event as never, lambdaContext(1_000, 'health-sweeper') as never)) as { status: string; ageMs: number };
    expect(r.status).toBe('stale');
    expect(r.ageMs).toBeGreaterThanOrEqual(55_000);
    expect(backends.reduce((n, b) => n + b.requests.length, 0)).toBe(before);
  });
});
