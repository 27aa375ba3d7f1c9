// The static configuration of a worker's Traefik agrees with what render() publishes: the
// provider reads exactly the root the keys are written under, and every entry point a rendered
// router names exists (for any port in the range, and for wildcard circuits).
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { Circuit, Worker } from '../../lib/model.js';
import { render } from '../../lib/traefik/render.js';
import { StaticConfigError, traefikStaticConfig, type TraefikStaticOptions } from '../../lib/traefik/static-config.js';
import { storedCircuit } from '../support/circuits.js';

const worker: Worker = { authority: 'proxy-1', hostname: 'proxy.example.com', wildcardDomain: 'apps.example.com', tls: false };
const circuit = (frontend: Circuit['frontend'], protocol: Circuit['protocol'] = 'http'): Circuit =>
  storedCircuit({
  id: '0b5e7c2a-9f1d-4c3e-8a6b-2d4f6e8a0c1e',
  worker: 'proxy-1',
  protocol,
  appMode: 'inference',
  frontend,
  allowedClientIps: [],
  healthCheck: null,
  routes: [
    {
      routeId: '00000000-0000-4000-8000-000000000001',
      sessionId: '11111111-1111-4111-8111-111111111111',
      host: '10.0.0.1',
      port: 30001,
      trafficRatio: 1,
      health: { status: 'unknown', consecutiveSuccesses: 0, consecutiveFailures: 0, lastCheckedAt: null, lastError: null },
      createdAt: '2026-01-01T00:00:00.000Z',
    },
  ],
});
const base: TraefikStaticOptions = { traefikRoot: 'traefik', authority: 'proxy-1', etcdEndpoints: ['http://127.0.0.1:2379'], ports: { from: 10200, to: 10299 }, domainPort: 443, pingPort: 8082 };

interface Static {
  entryPoints: Record<string, { address: string }>;
  providers: { etcd: { endpoints: string[]; rootKey: string; username?: string; tls?: Record<string, string> } };
  ping: { entryPoint: string };
}
const config = (over: Partial<TraefikStaticOptions> = {}): Static => traefikStaticConfig({ ...base, ...over }) as unknown as Static;

describe('traefikStaticConfig', () => {
  it('declares an entry point for every port circuit in the range, listening on that port, and the root its keys are under', () => {
    const c = config();
    fc.assert(
      fc.property(fc.integer({ min: 10200, max: 10299 }), fc.constantFrom('http' as const, 'tcp' as const), (port, protocol) => {
        const keys = render(circuit({ mode: 'port', port }, protocol), worker, { traefikRoot: 'traefik' });
        const entry = [...keys].find(([k]) => k.endsWith('/entryPoints/0'))![1];
        expect(c.entryPoints[entry]).toEqual({ address: `:${port}` });
        for (const k of keys.keys()) expect(k.startsWith(`${c.providers.etcd.rootKey}/`)).toBe(true);
      }),
      { numRuns: 200 },
    );
    expect(c.providers.etcd.rootKey).toBe('traefik/worker_proxy-1');
    expect(Object.keys(c.entryPoints).filter((e) => e.startsWith('portproxy_'))).toHaveLength(100);
  });

  it('serves wildcard circuits on the domain port, and has no wildcard entry point without one', () => {
    const keys = render(circuit({ mode: 'wildcard', subdomain: 'model' }), worker, { traefikRoot: 'traefik' });
    const entry = [...keys].find(([k]) => k.endsWith('/entryPoints/0'))![1];
    expect(config().entryPoints[entry]).toEqual({ address: ':443' });
    expect(config({ domainPort: undefined }).entryPoints[entry]).toBeUndefined();
  });

  it('answers ping on its own entry point', () => {
    const c = config({ pingPort: 9000 });
    expect(c.ping.entryPoint).toBe('traefik');
    expect(c.entryPoints.traefik).toEqual({ address: ':9000' });
  });

  it('speaks to etcd as Traefik expects: host:port endpoints, TLS when they are https, files and user as given', () => {
    expect(config({ etcdEndpoints: ['http://10.0.0.5:2379', 'http://10.0.0.6'] }).providers.etcd).toEqual({ endpoints: ['10.0.0.5:2379', '10.0.0.6:2379'], rootKey: 'traefik/worker_proxy-1' });
    expect(config({ etcdEndpoints: ['https://etcd.internal:2379'] }).providers.etcd.tls).toEqual({});
    expect(config({ etcdEndpoints: ['https://etcd.internal:2379'], etcdUsername: 'traefik', etcdTls: { ca: '/ca.pem', cert: '/c.pem', key: '/k.pem' } }).providers.etcd).toEqual({
      endpoints: ['etcd.internal:2379'],
      rootKey: 'traefik/worker_proxy-1',
      username: 'traefik',
      tls: { ca: '/ca.pem', cert: '/c.pem', key: '/k.pem' },
    });
    expect(config({ traefikRoot: 'edge/prod' }).providers.etcd.rootKey).toBe('edge/prod/worker_proxy-1');
  });

  it.each<[string, Partial<TraefikStaticOptions>, RegExp]>([
    ['a reversed range', { ports: { from: 10300, to: 10200 } }, /not a range of ports/],
    ['port 0', { ports: { from: 0, to: 10 } }, /not a range of ports/],
    ['too many listeners', { ports: { from: 1000, to: 9000 } }, /8001 listeners; at most 4096/],
    ['the domain port inside the range', { domainPort: 10250 }, /port 10250 is inside the frontend range/],
    ['the ping port inside the range', { pingPort: 10200 }, /port 10200 is inside/],
    ['ping and domain on one port', { domainPort: 8082 }, /cannot share port 8082/],
    ['no endpoint', { etcdEndpoints: [] }, /no etcd endpoint/],
    ['an endpoint that is not a URL', { etcdEndpoints: ['etcd:2379:x'] }, /is not a URL|must be http/],
    ['mixed schemes', { etcdEndpoints: ['https://a:2379', 'http://b:2379'] }, /mix http:\/\/ and https:\/\//],
    ['TLS files with http', { etcdTls: { ca: '/ca.pem' } }, /TLS files given for http/],
    ['a certificate without its key', { etcdEndpoints: ['https://a:2379'], etcdTls: { ca: '/ca.pem', cert: '/c.pem' } }, /needs its key/],
  ])('refuses %s, naming it', (_name, over, message) => {
    expect(() => traefikStaticConfig({ ...base, ...over })).toThrow(StaticConfigError);
    expect(() => traefikStaticConfig({ ...base, ...over })).toThrow(message);
  });
});
