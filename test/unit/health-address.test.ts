// The probe address policy (pure): ALLOWED_BACKEND_CIDRS, and the metadata / link-local ranges
// that are refused whatever the configuration says.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { checkAddress, cidrContains, parseCidr } from '../../lib/health/address.js';

const allow = (...c: string[]) => c.map(parseCidr);

describe('checkAddress', () => {
  it.each([
    ['127.0.0.1', ['127.0.0.0/8'], true],
    ['127.255.255.254', ['127.0.0.0/8'], true],
    ['128.0.0.1', ['127.0.0.0/8'], false],
    ['10.1.2.3', ['127.0.0.0/8'], false],
    ['10.1.2.3', ['10.0.0.0/8', '192.168.0.0/16'], true],
    ['192.168.10.1', ['10.0.0.0/8', '192.168.0.0/16'], true],
    ['172.16.0.1', ['172.16.0.0/12'], true],
    ['172.32.0.1', ['172.16.0.0/12'], false],
    ['10.0.0.5', ['10.0.0.5/32'], true],
    ['10.0.0.6', ['10.0.0.5/32'], false],
    ['8.8.8.8', ['0.0.0.0/0'], true],
    // Always refused, even when configured:
    ['169.254.169.254', ['0.0.0.0/0'], false],
    ['169.254.169.254', ['169.254.0.0/16'], false],
    ['169.254.0.1', ['169.254.169.254/32', '169.254.0.0/16'], false],
    ['0.0.0.0', ['0.0.0.0/0'], false],
    ['::ffff:169.254.169.254', ['0.0.0.0/0'], false],
    ['::ffff:a9fe:a9fe', ['0.0.0.0/0'], false],
    ['fd00:ec2::254', ['0.0.0.0/0'], false],
    ['fd00:ec2:0:0:0:0:0:254', ['0.0.0.0/0'], false],
    ['fe80::1', ['0.0.0.0/0'], false],
    // IPv6 is outside any IPv4 CIDR; IPv4-mapped IPv6 is checked as IPv4.
    ['::1', ['0.0.0.0/0'], false],
    ['2001:db8::1', ['0.0.0.0/0'], false],
    ['::ffff:127.0.0.1', ['127.0.0.0/8'], true],
    ['::ffff:7f00:1', ['127.0.0.0/8'], true],
    // Not addresses at all.
    ['localhost', ['0.0.0.0/0'], false],
    ['127.0.0.1.nip.io', ['0.0.0.0/0'], false],
  ])('%s with %j -> %s', (ip, cidrs, expected) => {
    const v = checkAddress(ip, allow(...cidrs));
    expect(v.allowed).toBe(expected);
  });

  it('names the reason and the address to connect to', () => {
    expect(checkAddress('169.254.169.254', allow('0.0.0.0/0'))).toMatchObject({ allowed: false, reason: expect.stringMatching(/metadata/) });
    expect(checkAddress('10.0.0.1', allow('127.0.0.0/8'))).toMatchObject({ allowed: false, reason: expect.stringMatching(/ALLOWED_BACKEND_CIDRS/) });
    expect(checkAddress('::ffff:7f00:1', allow('127.0.0.0/8'))).toEqual({ allowed: true, address: '127.0.0.1', family: 4 });
  });

  it('parseCidr rejects garbage and normalises the base', () => {
    expect(() => parseCidr('10.0.0.0/33')).toThrow();
    expect(() => parseCidr('10.0.0/8')).toThrow();
    expect(() => parseCidr('fd00::/8')).toThrow();
    expect(parseCidr('10.1.2.3/8').base).toBe(parseCidr('10.0.0.0/8').base);
  });

  it('property: containment agrees with a bit-string reference', () => {
    const octets = fc.tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255));
    const bitsOf = (o: number[]) => o.map((x) => x.toString(2).padStart(8, '0')).join('');
    fc.assert(
      fc.property(octets, octets, fc.integer({ min: 0, max: 32 }), (ip, base, bits) => {
        const c = parseCidr(`${base.join('.')}/${bits}`);
        const n = parseInt(bitsOf(ip), 2);
        expect(cidrContains(c, n)).toBe(bitsOf(ip).slice(0, bits) === bitsOf(base).slice(0, bits));
      }),
      { numRuns: 3000 },
    );
  });

  it('property: nothing in 169.254.0.0/16 is ever allowed', () => {
    fc.assert(
      fc.property(fc.nat(255), fc.nat(255), (a, b) => {
        expect(checkAddress(`169.254.${a}.${b}`, allow('0.0.0.0/0', '169.254.0.0/16')).allowed).toBe(false);
      }),
    );
  });
});
