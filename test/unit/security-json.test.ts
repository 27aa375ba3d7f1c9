// The duplicate-key / depth scan that runs after JSON.parse on every request body (lib/http/json.ts).
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MAX_JSON_DEPTH, scanJson } from '../../lib/http/json.js';

const scan = (text: string, maxDepth = MAX_JSON_DEPTH) => scanJson(text, { maxDepth });

describe('scanJson', () => {
  it.each([
    ['{"a":1,"a":2}', 'a'],
    ['{"a":1,"\\u0061":2}', 'a'],
    ['{"routes":[{"host":"x","port":1,"host":"y"}]}', 'routes.0.host'],
    ['{"x":{"y":[0,1,{"z":1,"z":1}]}}', 'x.y.2.z'],
    ['{"__proto__":{},"__proto__":{}}', '__proto__'],
    ['{"a\\"b":1,"a\\"b":2}', 'a"b'],
    ['{"":1,"":2}', ''],
    ['[{"k":1},{"k":1,"k":1}]', '1.k'],
  ])('finds the duplicate in %s', (text, field) => {
    expect(() => JSON.parse(text)).not.toThrow();
    expect(scan(text)).toMatchObject({ kind: 'duplicate-key', field: field === '' ? '' : field });
  });

  it.each([
    '{"a":1,"b":{"a":1}}', // the same key in different objects
    '[{"a":1},{"a":1}]',
    '{"a":"{\\"a\\":1,\\"a\\":2}"}', // keys inside string values are data
    '{"a\\\\":1,"a":2}', // "a\" and "a" differ
    '{"a":"\\\\","b":"\\\\\\""}',
    '"just a string"',
    '12',
    'null',
    '{}',
  ])('accepts %s', (text) => {
    expect(scan(text)).toBeNull();
  });

  it('bounds nesting without recursion (a 1 MiB bracket tower)', () => {
    const deep = `${'['.repeat(500_000)}${']'.repeat(500_000)}`;
    expect(scan(deep)).toMatchObject({ kind: 'too-deep' });
    expect(scan(`${'['.repeat(MAX_JSON_DEPTH)}${']'.repeat(MAX_JSON_DEPTH)}`)).toBeNull();
    expect(scan(`${'['.repeat(MAX_JSON_DEPTH + 1)}${']'.repeat(MAX_JSON_DEPTH + 1)}`)).toMatchObject({ kind: 'too-deep' });
  });

  it('property: reports a duplicate exactly when some object of the tree has one', () => {
    // Trees whose objects are entry lists, so duplicates can be generated; keys include escapes.
    type Tree = { o: Array<[string, Tree]> } | Tree[] | number | string | boolean | null;
    const tree: fc.Arbitrary<Tree> = fc.letrec((tie) => ({
      t: fc.oneof(
        { depthSize: 'small' },
        fc.integer(),
        fc.string(),
        fc.boolean(),
        fc.constant(null),
        fc.array(tie('t') as fc.Arbitrary<Tree>, { maxLength: 3 }),
        fc.array(fc.tuple(fc.constantFrom('a', 'b', 'é', '__proto__', 'a"', '\\', '\u2028'), tie('t') as fc.Arbitrary<Tree>), { maxLength: 3 }).map((o) => ({ o })),
      ),
    })).t;
    const text = (t: Tree, escape: boolean): string =>
      Array.isArray(t)
        ? `[${t.map((x) => text(x, escape)).join(',')}]`
        : t !== null && typeof t === 'object'
          ? `{${t.o.map(([k, v]) => `${escape ? `"${[...k].map((c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`).join('')}"` : JSON.stringify(k)}:${text(v, escape)}`).join(',')}}`
          : JSON.stringify(t);
    const hasDup = (t: Tree): boolean =>
      Array.isArray(t) ? t.some(hasDup) : t !== null && typeof t === 'object' ? new Set(t.o.map(([k]) => k)).size !== t.o.length || t.o.some(([, v]) => hasDup(v)) : false;
    fc.assert(
      fc.property(tree, fc.boolean(), (t, escape) => {
        const s = text(t, escape);
        expect(() => JSON.parse(s)).not.toThrow();
        expect(scan(s, 1000)?.kind === 'duplicate-key').toBe(hasDup(t));
      }),
      { numRuns: 3000 },
    );
  });
});
