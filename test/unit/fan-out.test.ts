// Sizing the health fan-out (pure): enough sweepers for the steady rate plus the catch-up of late
// routes, at least the dispatcher, at most the cap.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { fanOutFor, invocationsFor } from '../../lib/health/fan-out.js';

const policy = { routesPerSecondPerSweeper: 2000, maxSweepers: 16, catchUpSeconds: 30 };

describe('fanOutFor', () => {
  it.each<[string, { routesPerSecond: number; lateRoutes: number }, { sweepers: number; toStart: number; capped: boolean }]>([
    ['no work: the dispatcher alone', { routesPerSecond: 0, lateRoutes: 0 }, { sweepers: 1, toStart: 0, capped: false }],
    ['exactly one sweeper of work', { routesPerSecond: 2000, lateRoutes: 0 }, { sweepers: 1, toStart: 0, capped: false }],
    ['a route more', { routesPerSecond: 2000.5, lateRoutes: 0 }, { sweepers: 2, toStart: 1, capped: false }],
    ['100,000 routes every 10 s', { routesPerSecond: 10_000, lateRoutes: 0 }, { sweepers: 5, toStart: 4, capped: false }],
    ['late routes are caught up within 30 s', { routesPerSecond: 1000, lateRoutes: 60_000 }, { sweepers: 2, toStart: 1, capped: false }],
    ['more than the cap', { routesPerSecond: 40_000, lateRoutes: 0 }, { sweepers: 16, toStart: 15, capped: true }],
    ['negative inputs count as none', { routesPerSecond: -5, lateRoutes: -100 }, { sweepers: 1, toStart: 0, capped: false }],
  ])('%s', (_name, load, expected) => {
    expect(fanOutFor(load, policy)).toMatchObject(expected);
  });

  it('always has capacity for the demand unless capped, and never one sweeper too many', () => {
    fc.assert(
      fc.property(fc.double({ min: 0, max: 1e6, noNaN: true }), fc.nat(1e7), fc.integer({ min: 1, max: 1e5 }), fc.integer({ min: 1, max: 100 }), (rps, late, capacity, max) => {
        const p = { routesPerSecondPerSweeper: capacity, maxSweepers: max, catchUpSeconds: 30 };
        const f = fanOutFor({ routesPerSecond: rps, lateRoutes: late }, p);
        expect(f.sweepers).toBeGreaterThanOrEqual(1);
        expect(f.sweepers).toBeLessThanOrEqual(max);
        expect(f.toStart).toBe(f.sweepers - 1);
        if (!f.capped) expect(f.sweepers * capacity).toBeGreaterThanOrEqual(f.demandRoutesPerSecond);
        if (f.sweepers > 1 && !f.capped) expect((f.sweepers - 1) * capacity).toBeLessThan(f.demandRoutesPerSecond);
        expect(f.capped).toBe(Math.ceil(f.demandRoutesPerSecond / capacity) > max);
      }),
      { numRuns: 1000 },
    );
  });

  it('refuses a policy that cannot size anything', () => {
    expect(() => fanOutFor({ routesPerSecond: 1, lateRoutes: 0 }, { ...policy, routesPerSecondPerSweeper: 0 })).toThrow(RangeError);
    expect(() => fanOutFor({ routesPerSecond: 1, lateRoutes: 0 }, { ...policy, maxSweepers: 0 })).toThrow(RangeError);
  });
});

describe('invocationsFor', () => {
  it('is the sweepers a fleet needs at an interval', () => {
    expect(invocationsFor(100_000, 10, 2000)).toBe(5);
    expect(invocationsFor(100_000, 10, 3333)).toBe(4);
    expect(invocationsFor(10, 60, 2000)).toBe(1);
  });
});
