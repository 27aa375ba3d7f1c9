// The order-independent key-set digest the drift check compares etcd with render() by.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { KeySetDigest } from '../../lib/health/digest.js';

const entries = fc.uniqueArray(fc.tuple(fc.string({ maxLength: 30 }), fc.string({ maxLength: 20 })), {
  selector: ([k]) => k,
  maxLength: 40,
});

describe('KeySetDigest', () => {
  it('is independent of order', () => {
    fc.assert(
      fc.property(entries, fc.infiniteStream(fc.nat()), (e, rnd) => {
        const shuffled = [...e].map((x) => [rnd.next().value, x] as const).sort((a, b) => a[0] - b[0]).map(([, x]) => x);
        expect(KeySetDigest.of(e).equals(KeySetDigest.of(shuffled))).toBe(true);
      }),
    );
  });

  it('tells a missing, an extra, and an altered key apart', () => {
    fc.assert(
      fc.property(entries.filter((e) => e.length > 0), fc.string({ minLength: 1, maxLength: 5 }), (e, extra) => {
        const base = KeySetDigest.of(e);
        expect(base.equals(KeySetDigest.of(e.slice(1)))).toBe(false);
        expect(base.equals(KeySetDigest.of([...e, [`${e[0]![0]}/${extra}`, 'x']]))).toBe(false);
        const altered = e.map(([k, v], i) => [k, i === 0 ? v + extra : v] as [string, string]);
        expect(base.equals(KeySetDigest.of(altered))).toBe(false);
      }),
    );
  });

  it('a key/value boundary shift is a difference', () => {
    expect(KeySetDigest.of([['ab', 'c']]).equals(KeySetDigest.of([['a', 'bc']]))).toBe(false);
    expect(KeySetDigest.of([]).equals(new KeySetDigest())).toBe(true);
  });
});
