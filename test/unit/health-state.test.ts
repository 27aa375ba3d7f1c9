// The pure health state machine: table tests for every rule, and properties (fast-check) that
// check it against an independent description of hysteresis ("the status is the kind of the
// latest threshold crossing").
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { inInitialDelay, MAX_COUNTER, nextHealth, type HealthCounters, type Thresholds } from '../../lib/health/state.js';
import type { HealthStatus } from '../../lib/model.js';

const h = (status: HealthStatus, s = 0, f = 0): HealthCounters => ({ status, consecutiveSuccesses: s, consecutiveFailures: f });
const T = (unhealthyThreshold: number, healthyThreshold: number): Thresholds => ({ unhealthyThreshold, healthyThreshold });
const OK = { ok: true } as const;
const FAIL = { ok: false, error: 'HTTP 500 (expected 200)' } as const;

describe('nextHealth: table', () => {
  const cases: Array<[string, HealthCounters, { ok: boolean; error?: string }, Thresholds, boolean, HealthCounters, boolean]> = [
    // name, current, outcome, thresholds, inDelay, expected, changed
    ['unknown: first success below threshold stays unknown', h('unknown'), OK, T(3, 2), false, h('unknown', 1, 0), false],
    ['unknown: success reaching healthyThreshold becomes healthy', h('unknown', 1, 0), OK, T(3, 2), false, h('healthy', 2, 0), true],
    ['unknown: healthyThreshold 1 joins on the first success', h('unknown'), OK, T(3, 1), false, h('healthy', 1, 0), true],
    ['unknown: failure below threshold stays unknown', h('unknown', 0, 1), FAIL, T(3, 2), false, h('unknown', 0, 2), false],
    ['unknown: failure reaching unhealthyThreshold becomes unhealthy', h('unknown', 0, 2), FAIL, T(3, 2), false, h('unhealthy', 0, 3), true],
    ['unknown: a failure resets the success run', h('unknown', 1, 0), FAIL, T(3, 2), false, h('unknown', 0, 1), false],
    ['unknown: a success resets the failure run', h('unknown', 0, 2), OK, T(3, 2), false, h('unknown', 1, 0), false],
    ['healthy: success keeps it and counts', h('healthy', 7, 0), OK, T(3, 2), false, h('healthy', 8, 0), false],
    ['healthy: one failure is not enough (hysteresis)', h('healthy', 7, 0), FAIL, T(3, 2), false, h('healthy', 0, 1), false],
    ['healthy: failures below threshold keep it', h('healthy', 0, 1), FAIL, T(3, 2), false, h('healthy', 0, 2), false],
    ['healthy: the threshold-th failure flips it', h('healthy', 0, 2), FAIL, T(3, 2), false, h('unhealthy', 0, 3), true],
    ['healthy: unhealthyThreshold 1 flips on the first failure', h('healthy', 4, 0), FAIL, T(1, 2), false, h('unhealthy', 0, 1), true],
    ['healthy: a success in between resets the failure run', h('healthy', 0, 2), OK, T(3, 2), false, h('healthy', 1, 0), false],
    ['unhealthy: failures keep counting', h('unhealthy', 0, 9), FAIL, T(3, 2), false, h('unhealthy', 0, 10), false],
    ['unhealthy: one success is not enough', h('unhealthy', 0, 9), OK, T(3, 2), false, h('unhealthy', 1, 0), false],
    ['unhealthy: the healthy-threshold-th success flips it back', h('unhealthy', 1, 0), OK, T(3, 2), false, h('healthy', 2, 0), true],
    ['initial delay: a failure is not counted', h('unknown', 0, 0), FAIL, T(1, 2), true, h('unknown', 0, 0), false],
    ['initial delay: a failure still breaks a success run', h('unknown', 1, 0), FAIL, T(3, 2), true, h('unknown', 0, 0), false],
    ['initial delay: successes count (a fast model joins early)', h('unknown', 1, 0), OK, T(3, 2), true, h('healthy', 2, 0), true],
    ['initial delay: a healthy route is not taken out', h('healthy', 5, 0), FAIL, T(1, 2), true, h('healthy', 0, 0), false],
    ['counters saturate', h('healthy', MAX_COUNTER, 0), OK, T(3, 2), false, h('healthy', MAX_COUNTER, 0), false],
    ['thresholds below 1 behave as 1', h('unknown'), OK, T(0, 0), false, h('healthy', 1, 0), true],
    ['garbage counters are normalised', h('healthy', -5, Number.NaN), FAIL, T(2, 2), false, h('healthy', 0, 1), false],
  ];
  it.each(cases)('%s', (_name, current, outcome, thresholds, delay, expected, changed) => {
    const t = nextHealth(current, outcome, thresholds, delay);
    expect(t.health).toEqual(expected);
    expect(t.changed).toBe(changed);
  });

  it('lastError: null after a success, the error (or a generic one) after a failure', () => {
    expect(nextHealth(h('unknown'), OK, T(3, 2), false).lastError).toBeNull();
    expect(nextHealth(h('unknown'), FAIL, T(3, 2), false).lastError).toBe('HTTP 500 (expected 200)');
    expect(nextHealth(h('unknown'), { ok: false }, T(3, 2), false).lastError).toBe('probe failed');
    expect(nextHealth(h('unknown'), { ok: false }, T(3, 2), true)).toMatchObject({ lastError: 'probe failed', ignored: true });
  });

  it('does not mutate its input', () => {
    const cur = Object.freeze(h('healthy', 0, 2));
    nextHealth(cur, FAIL, T(3, 2), false);
    expect(cur).toEqual(h('healthy', 0, 2));
  });
});

describe('inInitialDelay', () => {
  const created = new Date('2025-01-01T00:00:00.000Z');
  it.each([
    [0, 0, false],
    [60, 59_999, true],
    [60, 60_000, false],
    [60, -1_000, true], // clock skew: a route "from the future" is still in its delay
    [1, 500, true],
  ])('delay %ss, %sms after creation -> %s', (delay, after, expected) => {
    expect(inInitialDelay(created, delay, new Date(created.getTime() + after))).toBe(expected);
    expect(inInitialDelay(created.toISOString(), delay, new Date(created.getTime() + after))).toBe(expected);
  });
  it('an unparsable creation time is not a delay', () => {
    expect(inInitialDelay('nonsense', 60, new Date())).toBe(false);
  });
});

// ---- properties ------------------------------------------------------------------------------

const statusArb = fc.constantFrom<HealthStatus>('unknown', 'healthy', 'unhealthy');
const countersArb = fc.record({
  status: statusArb,
  consecutiveSuccesses: fc.integer({ min: 0, max: 50 }),
  consecutiveFailures: fc.integer({ min: 0, max: 50 }),
});
const thresholdsArb = fc.record({ unhealthyThreshold: fc.integer({ min: 1, max: 6 }), healthyThreshold: fc.integer({ min: 1, max: 6 }) });

describe('nextHealth: properties', () => {
  it('single step: counters follow the outcome, status moves only across a threshold', () => {
    fc.assert(
      fc.property(countersArb, fc.boolean(), thresholdsArb, fc.boolean(), (cur, ok, th, delay) => {
        const t = nextHealth(cur, ok ? OK : FAIL, th, delay);
        expect(t.changed).toBe(t.health.status !== cur.status);
        expect(t.health.consecutiveSuccesses).toBeGreaterThanOrEqual(0);
        expect(t.health.consecutiveFailures).toBeGreaterThanOrEqual(0);
        if (ok) {
          expect(t.health).toMatchObject({ consecutiveSuccesses: cur.consecutiveSuccesses + 1, consecutiveFailures: 0 });
          expect(t.health.status).toBe(
            cur.status !== 'healthy' && cur.consecutiveSuccesses + 1 >= th.healthyThreshold ? 'healthy' : cur.status,
          );
        } else if (delay) {
          expect(t.health).toEqual({ status: cur.status, consecutiveSuccesses: 0, consecutiveFailures: cur.consecutiveFailures });
          expect(t.ignored).toBe(true);
        } else {
          expect(t.health).toMatchObject({ consecutiveSuccesses: 0, consecutiveFailures: cur.consecutiveFailures + 1 });
          expect(t.health.status).toBe(
            cur.status !== 'unhealthy' && cur.consecutiveFailures + 1 >= th.unhealthyThreshold ? 'unhealthy' : cur.status,
          );
        }
        // Never straight from one extreme to the other in the "wrong" direction.
        if (ok) expect(t.health.status).not.toBe(cur.status === 'unhealthy' ? 'unknown' : 'unhealthy');
        else expect(t.health.status).not.toBe(cur.status === 'healthy' ? 'unknown' : 'healthy');
      }),
      { numRuns: 2000 },
    );
  });

  // A route's life: the first `delayed` probes fall in its initial delay, then none does.
  const lifeArb = fc.record({
    outcomes: fc.array(fc.boolean(), { maxLength: 60 }),
    delayed: fc.nat({ max: 60 }),
    th: thresholdsArb,
  });

  it('sequences: the status is the kind of the latest threshold crossing (reference model)', () => {
    fc.assert(
      fc.property(lifeArb, ({ outcomes, delayed, th }) => {
        let state = h('unknown');
        let successRun = 0;
        let failRun = 0;
        let expected: HealthStatus = 'unknown';
        outcomes.forEach((ok, i) => {
          const delay = i < delayed;
          state = nextHealth(state, ok ? OK : FAIL, th, delay).health;
          // Independent model: runs of outcomes, and the latest crossing of a threshold.
          if (ok) {
            successRun++;
            failRun = 0;
            if (successRun >= th.healthyThreshold) expected = 'healthy';
          } else {
            successRun = 0;
            if (!delay) {
              failRun++;
              if (failRun >= th.unhealthyThreshold) expected = 'unhealthy';
            }
          }
          expect(state.status).toBe(expected);
          expect(state.consecutiveSuccesses).toBe(successRun);
          expect(state.consecutiveFailures).toBe(failRun);
        });
      }),
      { numRuns: 2000 },
    );
  });

  it('never unhealthy inside the initial delay; a new route stays unknown until a threshold', () => {
    fc.assert(
      fc.property(fc.array(fc.boolean(), { maxLength: 40 }), thresholdsArb, (outcomes, th) => {
        let state = h('unknown');
        let maxRun = 0;
        let run = 0;
        for (const ok of outcomes) {
          state = nextHealth(state, ok ? OK : FAIL, th, true).health;
          run = ok ? run + 1 : 0;
          maxRun = Math.max(maxRun, run);
          expect(state.status).not.toBe('unhealthy');
          expect(state.consecutiveFailures).toBe(0);
          expect(state.status).toBe(maxRun >= th.healthyThreshold ? 'healthy' : 'unknown');
        }
      }),
    );
  });

  it('hysteresis: fewer consecutive failures than the threshold never take a healthy route out', () => {
    fc.assert(
      fc.property(fc.array(fc.boolean(), { maxLength: 60 }), thresholdsArb, (outcomes, th) => {
        let state = h('healthy', th.healthyThreshold, 0);
        let run = 0;
        for (const ok of outcomes) {
          const before = state.status;
          state = nextHealth(state, ok ? OK : FAIL, th, false).health;
          run = ok ? 0 : run + 1;
          if (before === 'healthy' && state.status === 'unhealthy') expect(run).toBe(th.unhealthyThreshold);
          if (run < th.unhealthyThreshold && before === 'healthy') expect(state.status).toBe('healthy');
        }
      }),
    );
  });

  it('a flapping route (alternating outcomes) never changes status when both thresholds exceed 1', () => {
    fc.assert(
      fc.property(statusArb, fc.integer({ min: 2, max: 6 }), fc.integer({ min: 2, max: 6 }), fc.nat(40), (status, u, hh, n) => {
        let state = h(status);
        for (let i = 0; i < n; i++) {
          const t = nextHealth(state, i % 2 === 0 ? OK : FAIL, T(u, hh), false);
          expect(t.changed).toBe(false);
          state = t.health;
        }
      }),
    );
  });
});
