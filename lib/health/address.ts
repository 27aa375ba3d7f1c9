// Which backend addresses the health checker may connect to. Pure.
//
// A probe only ever connects to the route's own address, and only when that address is inside
// ALLOWED_BACKEND_CIDRS (IPv4). Some addresses are refused whatever the configuration says:
// the cloud metadata endpoints and link-local ranges (169.254.0.0/16 holds 169.254.169.254;
// fd00:ec2::254 is EC2's IPv6 metadata address; fe80::/10 is IPv6 link-local) and 0.0.0.0/8
// (connecting to 0.0.0.0 reaches the local host on Linux).
import { isIPv4, isIPv6 } from 'node:net';

export interface Cidr {
  base: number;
  bits: number;
  text: string;
}

function ipv4ToInt(ip: string): number | null {
  if (!isIPv4(ip)) return null;
  const p = ip.split('.').map(Number);
  return (((p[0]! << 24) | (p[1]! << 16) | (p[2]! << 8) | p[3]!) >>> 0) as number;
}

const mask = (bits: number): number => (bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0);

export function parseCidr(text: string): Cidr {
  const m = /^([0-9.]+)\/(\d{1,2})$/.exec(text.trim());
  const base = m ? ipv4ToInt(m[1]!) : null;
  const bits = m ? Number(m[2]) : NaN;
  if (base === null || !(bits >= 0 && bits <= 32)) throw new RangeError(`not an IPv4 CIDR: ${text}`);
  return { base: (base & mask(bits)) >>> 0, bits, text };
}

export function cidrContains(c: Cidr, ipInt: number): boolean {
  return ((ipInt & mask(c.bits)) >>> 0) === c.base;
}

const ALWAYS_REFUSED_V4: readonly Cidr[] = [parseCidr('169.254.0.0/16'), parseCidr('0.0.0.0/8')];

export type AddressVerdict =
  | { allowed: true; address: string; family: 4 }
  | { allowed: false; address: string; reason: string };

/** IPv6 in canonical lowercase form (or null), via the WHATWG URL parser. */
function canonicalV6(ip: string): string | null {
  if (!isIPv6(ip)) return null;
  try {
    return new URL(`http://[${ip}]/`).hostname.slice(1, -1);
  } catch {
    return null;
  }
}

/** An IPv4-mapped IPv6 address (::ffff:a.b.c.d) as IPv4, else null. */
function mappedV4(canonical: string): string | null {
  const m = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(canonical);
  if (!m) return null;
  const hi = parseInt(m[1]!, 16);
  const lo = parseInt(m[2]!, 16);
  return `${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`;
}

/**
 * Whether `ip` (a literal address, never a name) may be probed given the allowed CIDRs.
 * The returned address is the one to connect to.
 */
export function checkAddress(ip: string, allowed: readonly Cidr[]): AddressVerdict {
  let v4 = ip;
  if (!isIPv4(ip)) {
    const c = canonicalV6(ip);
    if (c === null) return { allowed: false, address: ip, reason: `${ip} is not an IP address` };
    const mapped = mappedV4(c);
    if (mapped === null) {
      if (c === 'fd00:ec2::254' || /^fe[89ab][0-9a-f]:/.test(c)) {
        return { allowed: false, address: c, reason: `${c} is a link-local/metadata address (always refused)` };
      }
      return { allowed: false, address: c, reason: `${c} is not inside ALLOWED_BACKEND_CIDRS (IPv4 only)` };
    }
    v4 = mapped;
  }
  const n = ipv4ToInt(v4)!;
  const hard = ALWAYS_REFUSED_V4.find((c) => cidrContains(c, n));
  if (hard !== undefined) {
    return { allowed: false, address: v4, reason: `${v4} is in ${hard.text}, a link-local/metadata or unroutable range (always refused)` };
  }
  if (!allowed.some((c) => cidrContains(c, n))) {
    return { allowed: false, address: v4, reason: `${v4} is not inside ALLOWED_BACKEND_CIDRS` };
  }
  return { allowed: true, address: v4, family: 4 };
}
