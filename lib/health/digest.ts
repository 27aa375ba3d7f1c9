// An order-independent digest of a set of etcd key/value pairs, so the drift check can compare
// "the keys of circuit C in etcd" with "render(C)" while streaming through pages of keys,
// without holding every key in memory. Two independent 32-bit hashes per entry (each finished
// with murmur3's fmix32), summed mod 2^32, plus the entry count. Pure.

function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

export class KeySetDigest {
  count = 0;
  private a = 0;
  private b = 0;

  add(key: string, value: string): void {
    let h1 = 0x811c9dc5; // FNV-1a
    let h2 = 0x9747b28c; // murmur-style multiply-rotate
    const step = (c: number) => {
      h1 = Math.imul(h1 ^ c, 0x01000193);
      h2 = Math.imul(h2 ^ c, 0x5bd1e995);
      h2 ^= h2 >>> 15;
    };
    for (let i = 0; i < key.length; i++) step(key.charCodeAt(i));
    step(0x10000); // separator: not a UTF-16 code unit, so "ab"+"c" differs from "a"+"bc"
    for (let i = 0; i < value.length; i++) step(value.charCodeAt(i));
    this.a = (this.a + fmix32(h1)) >>> 0;
    this.b = (this.b + fmix32(h2 ^ 0x5f3759df)) >>> 0;
    this.count++;
  }

  equals(o: KeySetDigest): boolean {
    return this.count === o.count && this.a === o.a && this.b === o.b;
  }

  static of(entries: Iterable<readonly [string, string]>): KeySetDigest {
    const d = new KeySetDigest();
    for (const [k, v] of entries) d.add(k, v);
    return d;
  }
}
