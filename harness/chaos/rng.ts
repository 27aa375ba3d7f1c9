// Seeded randomness for the chaos harness: every random choice is a pure function of the run's
// seed and a path of names/indices ("ops", worker, op index), so a replay with the same seed makes
// the same choices (what actually interleaves still depends on timing: that is what is hunted).

/** 32-bit FNV-1a of a string, then a splitmix-style finaliser. */
function hash32(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

export interface Rng {
  /** Uniform in [0, 1). */
  next(): number;
  /** Integer in [min, max] (inclusive). */
  int(min: number, max: number): number;
  /** True with probability p. */
  chance(p: number): boolean;
  pick<T>(items: readonly T[]): T;
  /** A random subset of 0..n-1 of the given size, in ascending order. */
  subset(n: number, size: number): number[];
  /** Picks a key of weights with probability proportional to its weight. */
  weighted<K extends string>(weights: Readonly<Record<K, number>>): K;
}

/** mulberry32 over the hash of seed + path. */
export function rngFor(seed: string, ...path: Array<string | number>): Rng {
  let a = hash32(`${seed}\u0000${path.join('\u0000')}`);
  const next = (): number => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const rng: Rng = {
    next,
    int: (min, max) => min + Math.floor(next() * (max - min + 1)),
    chance: (p) => next() < p,
    pick: (items) => {
      if (items.length === 0) throw new RangeError('pick from an empty list');
      return items[Math.floor(next() * items.length)]!;
    },
    subset: (n, size) => {
      const all = Array.from({ length: n }, (_, i) => i);
      for (let i = all.length - 1; i > 0; i--) {
        const j = Math.floor(next() * (i + 1));
        [all[i], all[j]] = [all[j]!, all[i]!];
      }
      return all.slice(0, Math.min(size, n)).sort((x, y) => x - y);
    },
    weighted: (weights) => {
      const entries = Object.entries(weights) as Array<[string, number]>;
      const total = entries.reduce((s, [, w]) => s + w, 0);
      let x = next() * total;
      for (const [k, w] of entries) {
        x -= w;
        if (x < 0) return k as never;
      }
      return entries[entries.length - 1]![0] as never;
    },
  };
  return rng;
}

/** A version-4-shaped UUID determined by seed + path (circuit, route and event ids). */
export function uuidFor(seed: string, ...path: Array<string | number>): string {
  const r = rngFor(seed, 'uuid', ...path);
  const bytes = Array.from({ length: 16 }, () => r.int(0, 255));
  bytes[6] = (bytes[6]! & 0x0f) | 0x40;
  bytes[8] = (bytes[8]! & 0x3f) | 0x80;
  const hex = bytes.map((b) => b.toString(16).padStart(2, '0')).join('');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}
