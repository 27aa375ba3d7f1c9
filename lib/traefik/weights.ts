// trafficRatio (0, 1] -> Traefik server weights. Traefik weights are integers, and a weight of
// 0 takes a server out of rotation; the reference system truncated ratios below 1 to 0, which
// silently drained every route with a fractional ratio. Here every ratio maps to >= 1.

/** Resolution of the conversion: ratios are kept to 1/1000. */
export const WEIGHT_SCALE = 1000;

function gcd(a: number, b: number): number {
  while (b !== 0) [a, b] = [b, a % b];
  return a;
}

/**
 * w = max(1, round(ratio * 1000)), then all divided by their gcd so equal ratios give weight 1
 * (and 1 : 0.5 gives 2 : 1). Ratios below 0.0005 are clamped to 1 rather than dropped.
 * Throws RangeError for a ratio outside (0, 1] (including NaN).
 */
export function weightsFor(ratios: readonly number[]): number[] {
  const raw = ratios.map((r) => {
    if (!(r > 0 && r <= 1)) throw new RangeError(`trafficRatio must be in (0, 1], got ${r}`);
    return Math.max(1, Math.round(r * WEIGHT_SCALE));
  });
  const g = raw.reduce(gcd, 0);
  return raw.map((w) => w / g);
}
