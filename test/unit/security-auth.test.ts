// Bearer-token checking (lib/http/middleware.ts): constant-time, every configured token compared on
// every request (no early exit that would tell which rotated token matched, or how many there are
// before it), fail-closed with no token configured.
import { describe, expect, it, vi, beforeEach } from 'vitest';

const compares = vi.hoisted(() => ({ n: 0, lengths: [] as number[] }));
vi.mock('node:crypto', async (importOriginal) => {
  const orig = await importOriginal<typeof import('node:crypto')>();
  return {
    ...orig,
    timingSafeEqual: (a: NodeJS.ArrayBufferView, b: NodeJS.ArrayBufferView) => {
      compares.n++;
      compares.lengths.push(a.byteLength, b.byteLength);
      return orig.timingSafeEqual(a, b);
    },
  };
});

const { authenticate, matchesAnyToken } = await import('../../lib/http/middleware.js');
const { HttpProblem } = await import('../../lib/http/problem.js');

const TOKENS = ['first-token-0123456789', 'second-token-0123456789-longer', 'third-token-0123456789'];

beforeEach(() => {
  compares.n = 0;
  compares.lengths = [];
});

function run(header: string | undefined, tokens: readonly string[] = TOKENS): unknown {
  const req = { event: { headers: header === undefined ? {} : { authorization: header } } };
  try {
    (authenticate(() => tokens).before as (r: unknown) => void)(req);
    return 'ok';
  } catch (err) {
    return err;
  }
}

describe('matchesAnyToken', () => {
  it.each([
    ['the first token', TOKENS[0]!, true],
    ['the last token', TOKENS[2]!, true],
    ['a wrong token', 'wrong-token-0123456789', false],
    ['a prefix of a token', TOKENS[1]!.slice(0, 10), false],
    ['a token with a suffix', `${TOKENS[0]}x`, false],
    ['an empty string', '', false],
  ])('compares all %#: %s', (_, given, ok) => {
    expect(matchesAnyToken(given, TOKENS)).toBe(ok);
    expect(compares.n).toBe(TOKENS.length);
    // Fixed-size digests: neither the given token's length nor a configured one's leaks.
    expect(new Set(compares.lengths)).toEqual(new Set([32]));
  });

  it('is false with no configured token (fail closed)', () => {
    expect(matchesAnyToken('anything-at-all-0123', [])).toBe(false);
  });
});

describe('authenticate', () => {
  it('accepts each of several tokens (rotation), with the scheme in any case', () => {
    expect(run(`Bearer ${TOKENS[0]}`)).toBe('ok');
    expect(run(`Bearer ${TOKENS[1]}`)).toBe('ok');
    expect(run(`bearer ${TOKENS[2]}`)).toBe('ok');
    expect(run(`BEARER ${TOKENS[2]}`)).toBe('ok');
  });

  it.each([
    [undefined, 'required'],
    ['', 'malformed'],
    ['Bearer', 'malformed'],
    ['Bearer ', 'malformed'],
    [`Bearer  ${TOKENS[0]}`, 'malformed'],
    [`Bearer ${TOKENS[0]} `, 'malformed'],
    [`Basic ${Buffer.from(`u:${TOKENS[0]}`).toString('base64')}`, 'malformed'],
    [TOKENS[0], 'malformed'],
    [`Bearer ${TOKENS[0]}é`, 'malformed'],
    [`Bearer ${TOKENS[0]!.toUpperCase()}`, 'invalid token'],
    [`Bearer ${TOKENS[0]}x`, 'invalid token'],
  ])('401 for %j', (header, message) => {
    const err = run(header) as InstanceType<typeof HttpProblem>;
    expect(err).toBeInstanceOf(HttpProblem);
    expect(err.status).toBe(401);
    expect(err.extra.errors).toEqual([{ field: 'header.authorization', message }]);
    expect(err.extra.headers?.['www-authenticate']).toMatch(/^Bearer/);
    // The problem never repeats what was sent.
    expect(JSON.stringify({ detail: err.detail, extra: err.extra })).not.toContain(TOKENS[0]!);
  });

  it('rejects everything when no token is configured', () => {
    expect((run(`Bearer ${TOKENS[0]}`, []) as InstanceType<typeof HttpProblem>).status).toBe(401);
  });
});
