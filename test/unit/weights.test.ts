import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { weightsFor } from '../../lib/traefik/weights.js';

const RUNS = { numRuns: 1000 };

// Any trafficRatio the model accepts, biased towards the edges (tiny, clamped, 1/1000 steps).
const ratioArb = fc.oneof(
  fc.double({ min: Number.MIN_VALUE, max: 1, noNaN: true }),
  fc.integer({ min: 1, max: 1000 }).map((n) => n / 1000),
  fc.constantFrom(1, 0.5, 0.0005, 0.0004999, 0.0015, 0.0025, 1e-300, Number.MIN_VALUE),
);

const gcd = (a: number, b: number): number => (b === 0 ? a : gcd(b, a % b));

/**
 * Does w keep the proportions of r within the rounding of 1/1000?
 *
 * Let a_i = 1000·r_i and W_i = max(1, round(a_i)) the weight before the division by the gcd g
 * (w_i = W_i / g; a common factor changes no proportion). The rounding error d_i = W_i − a_i
 * is bounded by δ_i = 0.5 when a_i ≥ 0.5 (plain rounding) and by δ_i = 1 − a_i (< 1) when
 * a_i < 0.5, i.e. r_i < 0.0005, where the weight is clamped to 1. Since
 *   W_i·a_j − W_j·a_i = d_i·a_j − d_j·a_i,
 * the relative error of the proportion is
 *   |(w_i/w_j) / (r_i/r_j) − 1| = |W_i·a_j − W_j·a_i| / (W_j·a_i)
 *                               ≤ (δ_i·a_j + δ_j·a_i) / (W_j·a_i)
 *                               ≤ (δ_i·a_j + δ_j·a_i) / (M_j·a_i),  M_j = max(1, a_j − 0.5) ≤ W_j.
 * For two unclamped ratios that is about 0.5/a_i + 0.5/a_j (≤ 0.1% for 1 : 1, ≤ 1% for
 * 0.1 : 0.1); a clamped ratio's proportion is not representable, so its bound is loose but
 * the weight still never drops to 0. Checked multiplied out (no division by a tiny a_i):
 *   |w_i·a_j − w_j·a_i| · M_j ≤ (δ_i·a_j + δ_j·a_i) · w_j   (+ float tolerance).
 */
function keepsProportions(ratios: readonly number[], weights: readonly number[]): boolean {
  const a = ratios.map((r) => r * 1000);
  const delta = a.map((x) => (x >= 0.5 ? 0.5 : 1 - x));
  for (let i = 0; i < a.length; i++) {
    for (let j = 0; j < a.length; j++) {
      const [ai, aj, wi, wj, di, dj] = [a[i]!, a[j]!, weights[i]!, weights[j]!, delta[i]!, delta[j]!];
      const lhs = Math.abs(wi * aj - wj * ai) * Math.max(1, aj - 0.5);
      const rhs = (di * aj + dj * ai) * wj;
      if (lhs > rhs + 1e-9 * (wi * aj + wj * ai) * Math.max(1, aj)) return false;
    }
  }
  return true;
}

describe('weightsFor: examples', () => {
  it.each([
    [[], []],
    [[1], [1]],
    [[0.5], [1]],
    [[1, 1], [1, 1]],
    [[0.5, 0.5], [1, 1]],
    [[1, 0.5], [2, 1]],
    [[0.3, 0.7], [3, 7]],
    [[0.25, 0.5, 0.75], [1, 2, 3]],
    [[0.333, 0.667], [333, 667]],
    [[0.001, 1], [1, 1000]],
    // below 1/2000: clamped to weight 1, never 0 (the reference system's bug)
    [[0.0004, 1], [1, 1000]],
    [[1e-300, 0.5], [1, 500]],
    [[0.0004, 0.0001], [1, 1]],
    // the reference system truncated these to 0, 0, 1
    [[0.2, 0.8, 1], [1, 4, 5]],
  ])('%j -> %j', (ratios, expected) => {
    expect(weightsFor(ratios)).toEqual(expected);
  });

  it.each([0, -0.1, 1.0000001, 2, Number.NaN, Number.POSITIVE_INFINITY, -0])('rejects ratio %d', (r) => {
    expect(() => weightsFor([1, r])).toThrow(RangeError);
  });

  it('the proportion check fails on a truncating or flooring conversion', () => {
    // Sanity check of the oracle itself: it must catch the kind of bug it is there for.
    expect(keepsProportions([0.0019, 1], [1, 1000])).toBe(false); // floor(1.9) = 1
    expect(keepsProportions([0.3, 0.7], [3, 8])).toBe(false);
    expect(keepsProportions([0.3, 0.7], [3, 7])).toBe(true);
  });
});

describe('weightsFor: properties', () => {
  const ratiosArb = fc.array(ratioArb, { maxLength: 40 });

  it('gives one positive integer weight per ratio, never 0, at most 1000', () => {
    fc.assert(
      fc.property(ratiosArb, (ratios) => {
        const w = weightsFor(ratios);
        expect(w).toHaveLength(ratios.length);
        for (const x of w) {
          expect(Number.isInteger(x)).toBe(true);
          expect(x).toBeGreaterThanOrEqual(1);
          expect(x).toBeLessThanOrEqual(1000);
        }
      }),
      RUNS,
    );
  });

  it('no single ratio in (0, 1] gives weight 0', () => {
    fc.assert(
      fc.property(ratioArb, (r) => {
        expect(weightsFor([r])).toEqual([1]);
        expect(weightsFor([r, 1])[0]).toBeGreaterThanOrEqual(1);
      }),
      RUNS,
    );
  });

  it('is reduced (gcd 1), so equal ratios give weight 1', () => {
    fc.assert(
      fc.property(ratiosArb.filter((r) => r.length > 0), (ratios) => {
        expect(weightsFor(ratios).reduce(gcd, 0)).toBe(1);
      }),
      RUNS,
    );
    fc.assert(
      fc.property(ratioArb, fc.integer({ min: 1, max: 40 }), (r, n) => {
        expect(weightsFor(Array.from({ length: n }, () => r))).toEqual(Array.from({ length: n }, () => 1));
      }),
      RUNS,
    );
  });

  it('is monotonic: a larger ratio never gets a smaller weight', () => {
    fc.assert(
      fc.property(ratiosArb, (ratios) => {
        const w = weightsFor(ratios);
        ratios.forEach((ri, i) =>
          ratios.forEach((rj, j) => {
            if (ri <= rj) expect(w[i]!).toBeLessThanOrEqual(w[j]!);
          }),
        );
      }),
      RUNS,
    );
  });

  it('keeps proportions within the rounding of 1/1000 (bound derived above)', () => {
    fc.assert(
      fc.property(ratiosArb, (ratios) => {
        expect(keepsProportions(ratios, weightsFor(ratios))).toBe(true);
      }),
      RUNS,
    );
  });

  it('keeps exact proportions for ratios on the 1/1000 grid', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: 1000 }), { minLength: 1, maxLength: 40 }), (ns) => {
        const w = weightsFor(ns.map((n) => n / 1000));
        ns.forEach((ni, i) => ns.forEach((nj, j) => expect(w[i]! * nj).toBe(w[j]! * ni)));
      }),
      RUNS,
    );
  });
});
