// lib/traefik/parse.ts, the inverse of render(): what it maps renders back byte for byte, and what
// it cannot map it refuses with the reason.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { importedUuid, parseCircuitTree, ratiosFor } from '../../lib/traefik/parse.js';
import { render } from '../../lib/traefik/render.js';
import { weightsFor } from '../../lib/traefik/weights.js';
import type { Circuit, Worker } from '../../lib/model.js';
import { storedCircuit } from '../support/circuits.js';

const ID = '7d2a9c4e-1b3f-4a5d-9e8f-0a1b2c3d4e5f';
const W: Worker = { authority: 'w1', hostname: 'gpu.example.com', wildcardDomain: 'apps.example.com', tls: false };
const ROOT = 'traefik/worker_w1';
const OPTS = { traefikRoot: 'traefik', extraMiddlewares: [] as string[] };

function circuit(over: Partial<Circuit>): Circuit {
  return storedCircuit({
    id: ID,
    worker: 'w1',
    protocol: 'http',
    appMode: 'interactive',
    frontend: { mode: 'port', port: 10205 },
    allowedClientIps: [],
    healthCheck: null,
    routes: [],
    createdAt: '',
    ...over,
  });
}
const route = (i: number, ratio = 1) => ({
  routeId: importedUuid(ID, 'route', i),
  sessionId: importedUuid(ID, 'session', i),
  host: `10.0.0.${i + 1}`,
  port: 30000 + i,
  trafficRatio: ratio,
  health: { status: 'unknown' as const, consecutiveSuccesses: 0, consecutiveFailures: 0, lastCheckedAt: null, lastError: null },
  createdAt: '',
});

describe('ratiosFor', () => {
  it('finds ratios that render exactly the given weights, or none', () => {
    expect(ratiosFor([4, 2, 1])).toEqual([1, 0.5, 0.25]);
    expect(ratiosFor([3, 7])).toEqual([0.003, 0.007]);
    expect(ratiosFor([2, 2])).toBeNull(); // circuitry writes weights in lowest terms
    expect(ratiosFor([1, 0])).toBeNull(); // and never 0
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: 1000 }), { minLength: 1, maxLength: 8 }), (w) => {
        const r = ratiosFor(w);
        if (r !== null) expect(weightsFor(r)).toEqual(w);
      }),
    );
  });
});

describe('parseCircuitTree', () => {
  it('property: parse(render(c)) renders exactly render(c)', () => {
    const arb = fc.record({
      protocol: fc.constantFrom<'http' | 'tcp'>('http', 'tcp'),
      wildcard: fc.boolean(),
      ratios: fc.array(fc.constantFrom(1, 0.5, 0.25, 0.3, 0.7), { minLength: 1, maxLength: 5 }),
      allow: fc.subarray(['10.0.0.0/8', '192.168.0.0/16', '172.16.5.0/24']),
      tls: fc.boolean(),
    });
    fc.assert(
      fc.property(arb, (a) => {
        const worker = { ...W, tls: a.tls || (a.wildcard && a.protocol === 'tcp') };
        const c = circuit({
          protocol: a.protocol,
          frontend: a.wildcard ? { mode: 'wildcard', subdomain: 'm1' } : { mode: 'port', port: 10205 },
          allowedClientIps: a.allow,
          routes: a.ratios.map((r, i) => route(i, r)),
        });
        const keys = render(c, worker, OPTS);
        const parsed = parseCircuitTree(ROOT, ID, keys, worker, OPTS);
        expect('input' in parsed, 'reason' in parsed ? parsed.reason : '').toBe(true);
      }),
      { numRuns: 300 },
    );
  });

  it.each<[string, (k: Map<string, string>) => void, RegExp]>([
    ['a half-staged change', (k) => k.set(`${ROOT}/http/services/bai_service_${ID}_staging/loadBalancer/servers/0/url`, 'http://10.0.0.9:1/'), /half staged/],
    ['a weight of 0', (k) => k.set(`${ROOT}/http/services/bai_service_${ID}/loadBalancer/servers/0/weight`, '0'), /cannot be expressed/],
    ['an unknown entry point', (k) => k.set(`${ROOT}/http/routers/bai_router_${ID}/entryPoints/0`, 'websecure'), /neither portproxy/],
    ['a foreign field', (k) => k.set(`${ROOT}/http/routers/bai_router_${ID}/priority`, '10'), /would not write .*priority/],
    ['a hostname that is not the worker\'s', (k) => k.set(`${ROOT}/http/routers/bai_router_${ID}/rule`, 'Host(`other.example.com`)'), /would write .*rule/],
    ['TLS the worker does not have', (k) => k.set(`${ROOT}/http/routers/bai_router_${ID}/tls`, 'true'), /TLS/],
  ])('refuses %s, with the reason', (_, mutate, reason) => {
    const keys = render(circuit({ routes: [route(0), route(1, 0.5)] }), W, OPTS);
    mutate(keys);
    const parsed = parseCircuitTree(ROOT, ID, keys, W, OPTS);
    expect('reason' in parsed ? parsed.reason : 'mapped').toMatch(reason);
  });

  it('imports panic mode as a health-checked circuit whose routes are not yet known', () => {
    const c = circuit({ appMode: 'inference', healthCheck: { path: '/v1/health', intervalSeconds: 5, timeoutMs: 800, expectedStatus: 204, unhealthyThreshold: 3, healthyThreshold: 2, initialDelaySeconds: 60 }, routes: [route(0), route(1)] });
    const parsed = parseCircuitTree(ROOT, ID, render(c, W, OPTS), W, OPTS);
    expect('input' in parsed && parsed.input.healthCheck).toMatchObject({ path: '/v1/health', intervalSeconds: 5, timeoutMs: 800, expectedStatus: 204 });
  });

  it('makes stable, well-formed route ids', () => {
    expect(importedUuid(ID, 'route', 3)).toBe(importedUuid(ID, 'route', 3));
    expect(importedUuid(ID, 'route', 3)).not.toBe(importedUuid(ID, 'session', 3));
    expect(importedUuid(ID, 'route', 0)).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  });
});
