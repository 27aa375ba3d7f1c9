import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { diffKeys, isNoop, type KeyDiff } from '../../lib/traefik/diff.js';

const RUNS = { numRuns: 1000 };

function apply(current: ReadonlyMap<string, string>, d: KeyDiff): Map<string, string> {
  const next = new Map(current);
  for (const k of d.deletes) next.delete(k);
  for (const [k, v] of d.puts) next.set(k, v);
  return next;
}

const sorted = (m: ReadonlyMap<string, string>): Array<[string, string]> =>
  [...m.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));

const S = 'traefik/worker_w1/http/services/bai_service_x/loadBalancer/servers';

describe('diffKeys: examples', () => {
  it('puts missing and changed keys, deletes extra ones, leaves equal ones alone', () => {
    const current = new Map([
      ['a', '1'],
      ['b', '2'],
      ['c', '3'],
    ]);
    const desired = new Map([
      ['b', '2'],
      ['c', '30'],
      ['d', '4'],
    ]);
    expect(diffKeys(current, desired)).toEqual({
      puts: [
        ['c', '30'],
        ['d', '4'],
      ],
      deletes: ['a'],
    });
  });

  it('removes the stale servers/N keys after a shrink (a leftover index is a live backend)', () => {
    const current = new Map([
      [`${S}/0/url`, 'http://10.0.0.1:1/'],
      [`${S}/0/weight`, '1'],
      [`${S}/1/url`, 'http://10.0.0.2:1/'],
      [`${S}/1/weight`, '1'],
      [`${S}/2/url`, 'http://10.0.0.3:1/'],
      [`${S}/2/weight`, '1'],
    ]);
    // route 0 removed: the others shift down one index
    const desired = new Map([
      [`${S}/0/url`, 'http://10.0.0.2:1/'],
      [`${S}/0/weight`, '1'],
      [`${S}/1/url`, 'http://10.0.0.3:1/'],
      [`${S}/1/weight`, '1'],
    ]);
    expect(diffKeys(current, desired)).toEqual({
      puts: [
        [`${S}/0/url`, 'http://10.0.0.2:1/'],
        [`${S}/1/url`, 'http://10.0.0.3:1/'],
      ],
      deletes: [`${S}/2/url`, `${S}/2/weight`],
    });
  });

  it('sorts by code unit, not by locale', () => {
    const d = diffKeys(new Map([['b', ''], ['B', ''], ['a', '']]), new Map([['é', '1'], ['Z', '1'], ['e', '1']]));
    expect(d.puts.map(([k]) => k)).toEqual(['Z', 'e', 'é']);
    expect(d.deletes).toEqual(['B', 'a', 'b']);
  });

  it('isNoop', () => {
    const m = new Map([['k', 'v']]);
    expect(isNoop(diffKeys(m, new Map(m)))).toBe(true);
    expect(isNoop(diffKeys(new Map(), new Map()))).toBe(true);
    expect(isNoop(diffKeys(m, new Map()))).toBe(false);
    expect(isNoop(diffKeys(new Map(), m))).toBe(false);
    expect(isNoop(diffKeys(m, new Map([['k', 'w']])))).toBe(false);
    // an empty value is a value (it enables an object-typed field such as tls)
    expect(isNoop(diffKeys(m, new Map([['k', '']])))).toBe(false);
  });
});

describe('diffKeys: properties', () => {
  // A small key space so that current and desired overlap often.
  const mapArb = fc
    .uniqueArray(fc.tuple(fc.stringMatching(/^[ab/]{0,4}$/), fc.constantFrom('', '1', '2', 'true')), {
      selector: ([k]) => k,
      maxLength: 20,
    })
    .map((entries) => new Map(entries));

  it('never puts and deletes the same key, and applying the diff yields desired', () => {
    fc.assert(
      fc.property(mapArb, mapArb, (current, desired) => {
        const d = diffKeys(current, desired);
        const putKeys = new Set(d.puts.map(([k]) => k));
        for (const k of d.deletes) expect(putKeys.has(k)).toBe(false);
        expect(sorted(apply(current, d))).toEqual(sorted(desired));
        expect(isNoop(diffKeys(apply(current, d), desired))).toBe(true);
      }),
      RUNS,
    );
  });

  it('is minimal and deterministic: only changed keys, each once, sorted', () => {
    fc.assert(
      fc.property(mapArb, mapArb, (current, desired) => {
        const d = diffKeys(current, desired);
        for (const [k, v] of d.puts) {
          expect(desired.get(k)).toBe(v);
          expect(current.get(k)).not.toBe(v);
        }
        for (const k of d.deletes) expect(desired.has(k)).toBe(false);
        expect(d.puts.length + d.deletes.length).toBe(
          [...desired].filter(([k, v]) => current.get(k) !== v).length + [...current.keys()].filter((k) => !desired.has(k)).length,
        );
        const putKeys = d.puts.map(([k]) => k);
        expect(putKeys).toEqual([...putKeys].sort());
        expect(d.deletes).toEqual([...d.deletes].sort());
        expect(new Set(putKeys).size).toBe(putKeys.length);
        expect(new Set(d.deletes).size).toBe(d.deletes.length);
      }),
      RUNS,
    );
  });

  it('identity is a no-op', () => {
    fc.assert(
      fc.property(mapArb, (m) => {
        expect(diffKeys(m, new Map(m))).toEqual({ puts: [], deletes: [] });
      }),
      RUNS,
    );
  });
});
