import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  circuitIdOfKey,
  circuitKeyPrefixes,
  circuitNames,
  isCircuitId,
  stagingServiceName,
  workerRoot,
} from '../../lib/traefik/names.js';

const RUNS = { numRuns: 1000 };
const CID = '0b5e7c2a-9f1d-4c3e-8a6b-2d4f6e8a0c1e';
const OTHER = '0b5e7c2a-9f1d-4c3e-8a6b-2d4f6e8a0c1f';
const ROOT = 'traefik/worker_worker-1';

describe('names', () => {
  it('builds the worker root and the reference system names', () => {
    expect(workerRoot('traefik', 'worker-1')).toBe('traefik/worker_worker-1');
    expect(workerRoot('a/b', 'w')).toBe('a/b/worker_w');
    expect(circuitNames(CID)).toEqual({
      router: 'bai_router_0b5e7c2a-9f1d-4c3e-8a6b-2d4f6e8a0c1e',
      service: 'bai_service_0b5e7c2a-9f1d-4c3e-8a6b-2d4f6e8a0c1e',
      allowList: 'bai_ipallowlist_0b5e7c2a-9f1d-4c3e-8a6b-2d4f6e8a0c1e',
    });
    expect(stagingServiceName(CID)).toBe('bai_service_0b5e7c2a-9f1d-4c3e-8a6b-2d4f6e8a0c1e_staging');
  });

  it('lists every prefix a key of the circuit can live under, each ending with /', () => {
    const c = CID;
    expect(new Set(circuitKeyPrefixes(ROOT, CID))).toEqual(
      new Set([
        `traefik/worker_worker-1/http/routers/bai_router_${c}/`,
        `traefik/worker_worker-1/http/services/bai_service_${c}/`,
        `traefik/worker_worker-1/http/services/bai_service_${c}_staging/`,
        `traefik/worker_worker-1/http/middlewares/bai_ipallowlist_${c}/`,
        `traefik/worker_worker-1/tcp/routers/bai_router_${c}/`,
        `traefik/worker_worker-1/tcp/services/bai_service_${c}/`,
        `traefik/worker_worker-1/tcp/services/bai_service_${c}_staging/`,
        `traefik/worker_worker-1/tcp/middlewares/bai_ipallowlist_${c}/`,
      ]),
    );
    expect(circuitKeyPrefixes(ROOT, CID)).toHaveLength(8);
  });

  it('maps keys back to their circuit', () => {
    const c = CID;
    for (const key of [
      `${ROOT}/http/routers/bai_router_${c}/rule`,
      `${ROOT}/http/routers/bai_router_${c}/entryPoints/0`,
      `${ROOT}/http/services/bai_service_${c}/loadBalancer/servers/0/url`,
      `${ROOT}/http/services/bai_service_${c}_staging/loadBalancer/servers/3/weight`,
      `${ROOT}/http/middlewares/bai_ipallowlist_${c}/ipAllowList/sourceRange/0`,
      `${ROOT}/tcp/routers/bai_router_${c}/tls`,
      `${ROOT}/tcp/services/bai_service_${c}/loadBalancer/servers/0/address`,
      `${ROOT}/tcp/services/bai_service_${c}_staging/loadBalancer/servers/0/address`,
      `${ROOT}/tcp/middlewares/bai_ipallowlist_${c}/ipAllowList/sourceRange/1`,
    ]) {
      expect(circuitIdOfKey(ROOT, key), key).toBe(CID);
    }
  });

  it('returns null for keys that are not under a name we write', () => {
    const c = CID;
    for (const key of [
      `${ROOT}/udp/routers/bai_router_${c}/rule`, // we never write udp
      `${ROOT}/http/routers/other_router/rule`,
      `${ROOT}/http/routers/bai_router_${c}`, // the name itself, not a key under it
      `${ROOT}/http/routers/bai_router_${c}x/rule`,
      `${ROOT}/http/routers/bai_router_not-a-uuid/rule`,
      `${ROOT}/http/routers/bai_router_${c.toUpperCase()}/rule`, // we always write lowercase
      `${ROOT}/http/routers/bai_service_${c}/rule`, // a service name under routers
      `${ROOT}/http/services/bai_router_${c}/loadBalancer/servers/0/url`,
      `${ROOT}/http/services/bai_service_${c}_staging2/loadBalancer/servers/0/url`,
      `${ROOT}/http/services/bai_service_${c}_stagingx/loadBalancer/servers/0/url`,
      `${ROOT}/http/middlewares/bai_router_${c}/ipAllowList/sourceRange/0`,
      `${ROOT}/http/serversTransports/bai_service_${c}/x`,
      `${ROOT}/http/constructor/bai_router_${c}/x`,
      `${ROOT}/http`,
      ROOT,
      `${ROOT}/`,
      `traefik/worker_worker-10/http/routers/bai_router_${c}/rule`, // a root that merely starts like ours
      `traefik/worker_worker-/http/routers/bai_router_${c}/rule`,
      `circuitry/meta/${c}`,
    ]) {
      expect(circuitIdOfKey(ROOT, key), key).toBeNull();
    }
  });

  it("never lets one circuit's prefix match another circuit's keys", () => {
    const mine = circuitKeyPrefixes(ROOT, CID);
    const theirs = circuitKeyPrefixes(ROOT, OTHER);
    for (const p of mine) for (const q of theirs) expect(q.startsWith(p) || p.startsWith(q)).toBe(false);
    // without the trailing slash, the service prefix would match the staging service
    expect(`${ROOT}/http/services/bai_service_${CID}_staging/x`.startsWith(`${ROOT}/http/services/bai_service_${CID}/`)).toBe(false);
  });
});

describe('names: properties', () => {
  const uuid = fc.uuid();
  const root = fc.constantFrom('traefik/worker_w1', 'traefik/worker_worker-1', 'a/b/worker_x');

  it('prefixes of two different circuits are never prefixes of one another', () => {
    fc.assert(
      fc.property(root, uuid, uuid, (r, a, b) => {
        fc.pre(a !== b);
        for (const p of circuitKeyPrefixes(r, a)) {
          expect(p.endsWith('/')).toBe(true);
          for (const q of circuitKeyPrefixes(r, b)) expect(q.startsWith(p) || p.startsWith(q)).toBe(false);
        }
      }),
      RUNS,
    );
  });

  it('every key under a prefix of the circuit maps back to it', () => {
    fc.assert(
      fc.property(root, uuid, fc.nat(7), fc.stringMatching(/^[A-Za-z0-9/_-]{0,30}$/), (r, cid, i, suffix) => {
        const key = circuitKeyPrefixes(r, cid)[i]! + suffix;
        expect(circuitIdOfKey(r, key)).toBe(cid);
      }),
      RUNS,
    );
  });

  // Keys assembled from right and wrong pieces: circuitIdOfKey agrees exactly with the prefixes,
  // so orphan cleanup (which parses) and deletion (which uses prefixes) see the same keys.
  it('circuitIdOfKey(root, k) === cid iff k starts with one of circuitKeyPrefixes(root, cid)', () => {
    const keyArb = fc.record({
      r: fc.constantFrom('traefik/worker_w1', 'traefik/worker_w10', 'traefik/worker_w'),
      proto: fc.constantFrom('http', 'tcp', 'udp', 'HTTP'),
      kind: fc.constantFrom('routers', 'services', 'middlewares', 'serversTransports', '__proto__'),
      name: fc.constantFrom('bai_router_', 'bai_service_', 'bai_ipallowlist_', 'bai_', ''),
      id: fc.oneof(uuid, fc.constantFrom('x', '', '0B5E7C2A-9F1D-4C3E-8A6B-2D4F6E8A0C1E')),
      suffix: fc.constantFrom('', '_staging', '_staging_staging', '_stag'),
      rest: fc.constantFrom('', '/', '/rule', '/loadBalancer/servers/0/url'),
    });
    fc.assert(
      fc.property(keyArb, uuid, (k, other) => {
        const key = `${k.r}/${k.proto}/${k.kind}/${k.name}${k.id}${k.suffix}${k.rest}`;
        const parsed = circuitIdOfKey('traefik/worker_w1', key);
        if (parsed !== null) expect(isCircuitId(parsed)).toBe(true);
        // Circuit ids are lowercase UUIDs (model.ts); for those the two views agree exactly.
        for (const cid of [k.id, other].filter(isCircuitId)) {
          const underPrefix = circuitKeyPrefixes('traefik/worker_w1', cid).some((p) => key.startsWith(p));
          expect(parsed === cid, key).toBe(underPrefix);
        }
      }),
      RUNS,
    );
  });
});
