import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  healthCheckDefaults,
  type Circuit,
  type Frontend,
  type HealthCheckSettings,
  type HealthStatus,
  type Protocol,
  type Route,
  type Worker,
} from '../../lib/model.js';
import { circuitIdOfKey, circuitKeyPrefixes } from '../../lib/traefik/names.js';
import { listedRoutes, render, RenderError } from '../../lib/traefik/render.js';
import { keysToTree } from '../../lib/traefik/tree.js';
import { weightsFor } from '../../lib/traefik/weights.js';
import { validateTraefikKeys } from '../support/traefik-schema.js';
import { storedCircuit } from '../support/circuits.js';

const RUNS = { numRuns: 500 };

// --- fixtures ------------------------------------------------------------------------------

const CID = '0b5e7c2a-9f1d-4c3e-8a6b-2d4f6e8a0c1e';
const ROOT = 'traefik/worker_worker-1';
const ROUTER = `bai_router_${CID}`;
const SERVICE = `bai_service_${CID}`;
const ALLOW = `bai_ipallowlist_${CID}`;
const HC: HealthCheckSettings = { ...healthCheckDefaults };

function worker(over: Partial<Worker> = {}): Worker {
  return { authority: 'worker-1', hostname: 'proxy.example.com', wildcardDomain: 'apps.example.com', tls: false, ...over };
}

/** Route n: host 10.0.0.n, port 30000 + n. */
function route(n: number, status: HealthStatus, trafficRatio = 1): Route {
  return {
    routeId: `00000000-0000-4000-8000-${String(n).padStart(12, '0')}`,
    sessionId: '11111111-1111-4111-8111-111111111111',
    host: `10.0.0.${n}`,
    port: 30000 + n,
    trafficRatio,
    health: { status, consecutiveSuccesses: 0, consecutiveFailures: 0, lastCheckedAt: null, lastError: null },
    createdAt: '2026-01-01T00:00:00.000Z',
  };
}

function circuit(over: Partial<Circuit> = {}): Circuit {
  return storedCircuit({
    id: CID,
    worker: 'worker-1',
    protocol: 'http',
    appMode: 'inference',
    frontend: { mode: 'port', port: 10205 },
    allowedClientIps: [],
    healthCheck: null,
    routes: [],
    ...over,
  });
}

const PORT: Frontend = { mode: 'port', port: 10205 };
const WILDCARD: Frontend = { mode: 'wildcard', subdomain: 'mymodel' };

/** Expected map from hand-written [path under ROOT, value] pairs. */
const keys = (entries: Array<[string, string]>): Map<string, string> => new Map(entries.map(([k, v]) => [`${ROOT}/${k}`, v]));

const sortedEntries = (m: ReadonlyMap<string, string>): Array<[string, string]> =>
  [...m.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));

function expectValid(root: string, m: ReadonlyMap<string, string>): void {
  const v = validateTraefikKeys(root, m);
  expect(v.errors).toBe('');
  expect(v.valid).toBe(true);
}

// --- exact output for representative rows (expected keys written by hand) -------------------

describe('render: exact keys', () => {
  it('http, port frontend, no TLS, no allow-list, no health checking: all routes, weights kept', () => {
    const c = circuit({ routes: [route(1, 'unhealthy', 1), route(2, 'unknown', 0.5)] });
    const m = render(c, worker(), { traefikRoot: 'traefik' });
    expect(sortedEntries(m)).toEqual(
      sortedEntries(
        keys([
          [`http/routers/${ROUTER}/rule`, 'Host(`proxy.example.com`)'],
          [`http/routers/${ROUTER}/service`, SERVICE],
          [`http/routers/${ROUTER}/entryPoints/0`, 'portproxy_10205'],
          [`http/services/${SERVICE}/loadBalancer/servers/0/url`, 'http://10.0.0.1:30001/'],
          [`http/services/${SERVICE}/loadBalancer/servers/0/weight`, '2'],
          [`http/services/${SERVICE}/loadBalancer/servers/1/url`, 'http://10.0.0.2:30002/'],
          [`http/services/${SERVICE}/loadBalancer/servers/1/weight`, '1'],
        ]),
      ),
    );
    expectValid(ROOT, m);
  });

  it('http, wildcard frontend, TLS, allow-list + extras, one healthy route of three', () => {
    const c = circuit({
      frontend: WILDCARD,
      allowedClientIps: ['10.0.0.0/8', '192.168.1.0/24'],
      healthCheck: HC,
      routes: [route(1, 'unhealthy'), route(2, 'healthy', 0.25), route(3, 'unknown')],
    });
    const m = render(c, worker({ tls: true }), { traefikRoot: 'traefik', extraMiddlewares: ['compress@file', 'ratelimit@file'] });
    expect(sortedEntries(m)).toEqual(
      sortedEntries(
        keys([
          [`http/routers/${ROUTER}/rule`, 'Host(`mymodel.apps.example.com`)'],
          [`http/routers/${ROUTER}/service`, SERVICE],
          [`http/routers/${ROUTER}/entryPoints/0`, 'domainproxy'],
          [`http/routers/${ROUTER}/tls`, 'true'],
          [`http/routers/${ROUTER}/middlewares/0`, ALLOW],
          [`http/routers/${ROUTER}/middlewares/1`, 'compress@file'],
          [`http/routers/${ROUTER}/middlewares/2`, 'ratelimit@file'],
          [`http/middlewares/${ALLOW}/ipAllowList/sourceRange/0`, '10.0.0.0/8'],
          [`http/middlewares/${ALLOW}/ipAllowList/sourceRange/1`, '192.168.1.0/24'],
          [`http/services/${SERVICE}/loadBalancer/servers/0/url`, 'http://10.0.0.2:30002/'],
          [`http/services/${SERVICE}/loadBalancer/servers/0/weight`, '1'],
        ]),
      ),
    );
    expectValid(ROOT, m);
  });

  it('http panic mode: no healthy route -> all routes plus a Traefik healthCheck block', () => {
    const c = circuit({
      healthCheck: { ...HC, path: '/healthz', intervalSeconds: 7, timeoutMs: 1500, expectedStatus: 204 },
      routes: [route(1, 'unhealthy', 0.3), route(2, 'unknown', 0.7)],
    });
    const m = render(c, worker(), { traefikRoot: 'traefik', extraMiddlewares: ['compress@file'] });
    expect(sortedEntries(m)).toEqual(
      sortedEntries(
        keys([
          [`http/routers/${ROUTER}/rule`, 'Host(`proxy.example.com`)'],
          [`http/routers/${ROUTER}/service`, SERVICE],
          [`http/routers/${ROUTER}/entryPoints/0`, 'portproxy_10205'],
          [`http/routers/${ROUTER}/middlewares/0`, 'compress@file'],
          [`http/services/${SERVICE}/loadBalancer/servers/0/url`, 'http://10.0.0.1:30001/'],
          [`http/services/${SERVICE}/loadBalancer/servers/0/weight`, '3'],
          [`http/services/${SERVICE}/loadBalancer/servers/1/url`, 'http://10.0.0.2:30002/'],
          [`http/services/${SERVICE}/loadBalancer/servers/1/weight`, '7'],
          [`http/services/${SERVICE}/loadBalancer/healthCheck/path`, '/healthz'],
          [`http/services/${SERVICE}/loadBalancer/healthCheck/interval`, '7s'],
          [`http/services/${SERVICE}/loadBalancer/healthCheck/timeout`, '1500ms'],
          [`http/services/${SERVICE}/loadBalancer/healthCheck/status`, '204'],
          [`http/services/${SERVICE}/loadBalancer/healthCheck/followRedirects`, 'false'],
        ]),
      ),
    );
    expectValid(ROOT, m);
  });

  it('tcp, port frontend, no TLS, allow-list: HostSNI(`*`), addresses, no weights, no extras', () => {
    const c = circuit({
      protocol: 'tcp',
      allowedClientIps: ['10.1.0.0/16'],
      routes: [route(1, 'unknown', 1), route(2, 'unhealthy', 0.1)],
    });
    const m = render(c, worker(), { traefikRoot: 'traefik', extraMiddlewares: ['compress@file'] });
    expect(sortedEntries(m)).toEqual(
      sortedEntries(
        keys([
          [`tcp/routers/${ROUTER}/rule`, 'HostSNI(`*`)'],
          [`tcp/routers/${ROUTER}/service`, SERVICE],
          [`tcp/routers/${ROUTER}/entryPoints/0`, 'portproxy_10205'],
          [`tcp/routers/${ROUTER}/middlewares/0`, ALLOW],
          [`tcp/middlewares/${ALLOW}/ipAllowList/sourceRange/0`, '10.1.0.0/16'],
          [`tcp/services/${SERVICE}/loadBalancer/servers/0/address`, '10.0.0.1:30001'],
          [`tcp/services/${SERVICE}/loadBalancer/servers/1/address`, '10.0.0.2:30002'],
        ]),
      ),
    );
    expectValid(ROOT, m);
  });

  it('tcp, wildcard frontend with TLS, panic mode: SNI rule, all routes, no healthCheck block', () => {
    const c = circuit({
      protocol: 'tcp',
      frontend: WILDCARD,
      healthCheck: HC,
      routes: [route(1, 'unhealthy'), route(2, 'unhealthy')],
    });
    const m = render(c, worker({ tls: true }), { traefikRoot: 'traefik' });
    expect(sortedEntries(m)).toEqual(
      sortedEntries(
        keys([
          [`tcp/routers/${ROUTER}/rule`, 'HostSNI(`mymodel.apps.example.com`)'],
          [`tcp/routers/${ROUTER}/service`, SERVICE],
          [`tcp/routers/${ROUTER}/entryPoints/0`, 'domainproxy'],
          [`tcp/routers/${ROUTER}/tls`, 'true'],
          [`tcp/services/${SERVICE}/loadBalancer/servers/0/address`, '10.0.0.1:30001'],
          [`tcp/services/${SERVICE}/loadBalancer/servers/1/address`, '10.0.0.2:30002'],
        ]),
      ),
    );
    expectValid(ROOT, m);
  });

  it('tcp, port frontend on a TLS worker: HostSNI(`*`) with tls', () => {
    const m = render(circuit({ protocol: 'tcp', routes: [route(1, 'healthy')] }), worker({ tls: true }), { traefikRoot: 'traefik' });
    expect(m.get(`${ROOT}/tcp/routers/${ROUTER}/rule`)).toBe('HostSNI(`*`)');
    expect(m.get(`${ROOT}/tcp/routers/${ROUTER}/tls`)).toBe('true');
    expectValid(ROOT, m);
  });

  it('points the router at the staging service when asked (make-before-break)', () => {
    const staging = `bai_service_${CID}_staging`;
    const m = render(circuit({ routes: [route(1, 'healthy')] }), worker(), { traefikRoot: 'traefik', serviceName: staging });
    expect(sortedEntries(m)).toEqual(
      sortedEntries(
        keys([
          [`http/routers/${ROUTER}/rule`, 'Host(`proxy.example.com`)'],
          [`http/routers/${ROUTER}/service`, staging],
          [`http/routers/${ROUTER}/entryPoints/0`, 'portproxy_10205'],
          [`http/services/${staging}/loadBalancer/servers/0/url`, 'http://10.0.0.1:30001/'],
          [`http/services/${staging}/loadBalancer/servers/0/weight`, '1'],
        ]),
      ),
    );
    expectValid(ROOT, m);
  });

  it('uses the configured root', () => {
    const m = render(circuit({ routes: [route(1, 'healthy')] }), worker({ authority: 'worker-1' }), { traefikRoot: 'edge/proxy' });
    for (const k of m.keys()) expect(k.startsWith('edge/proxy/worker_worker-1/http/')).toBe(true);
    expectValid('edge/proxy/worker_worker-1', m);
  });

  it('renders nothing for a circuit without routes or a deleted one', () => {
    expect(render(circuit(), worker(), { traefikRoot: 'traefik' }).size).toBe(0);
    expect(render(circuit({ allowedClientIps: ['10.0.0.0/8'], healthCheck: HC }), worker(), { traefikRoot: 'traefik' }).size).toBe(0);
    const deleted = circuit({ routes: [route(1, 'healthy')], deletedAt: '2026-01-02T00:00:00.000Z' });
    expect(render(deleted, worker(), { traefikRoot: 'traefik' }).size).toBe(0);
    // a deleted circuit can always be unloaded, even if its worker lost the wildcard domain
    const deletedWildcard = { ...deleted, frontend: WILDCARD };
    expect(render(deletedWildcard, worker({ wildcardDomain: null }), { traefikRoot: 'traefik' }).size).toBe(0);
  });

  it('renders 200 routes with contiguous indices (more than one etcd transaction of 128 ops)', () => {
    const routes = Array.from({ length: 200 }, (_, i) => ({ ...route(1, 'healthy'), routeId: `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`, port: 20000 + i }));
    const m = render(circuit({ routes }), worker(), { traefikRoot: 'traefik' });
    expect(m.size).toBe(3 + 200 * 2);
    expect(m.get(`${ROOT}/http/services/${SERVICE}/loadBalancer/servers/199/url`)).toBe('http://10.0.0.1:20199/');
    expect(m.get(`${ROOT}/http/services/${SERVICE}/loadBalancer/servers/199/weight`)).toBe('1');
    expect(m.has(`${ROOT}/http/services/${SERVICE}/loadBalancer/servers/200/url`)).toBe(false);
    expectValid(ROOT, m);
  });
});

describe('render: errors', () => {
  const opts = { traefikRoot: 'traefik' };
  const one = [route(1, 'healthy')];

  it.each<[string, Circuit, Worker, object?]>([
    ['a circuit of another worker', circuit({ worker: 'worker-2', routes: one }), worker()],
    ['a deleted circuit of another worker', circuit({ worker: 'worker-2', deletedAt: '2026-01-02T00:00:00.000Z' }), worker()],
    ['a wildcard frontend on a worker without wildcardDomain', circuit({ frontend: WILDCARD, routes: one }), worker({ wildcardDomain: null })],
    ['... even with no routes', circuit({ frontend: WILDCARD }), worker({ wildcardDomain: null })],
    ['a tcp wildcard frontend on a worker without TLS', circuit({ protocol: 'tcp', frontend: WILDCARD, routes: one }), worker()],
    ['a foreign serviceName', circuit({ routes: one }), worker(), { serviceName: 'bai_service_other' }],
    ['a serviceName with a slash', circuit({ routes: one }), worker(), { serviceName: `bai_service_${CID}/x` }],
    ['a blank extra middleware', circuit({ routes: one }), worker(), { extraMiddlewares: [''] }],
    ['a non-UUID circuit id (would escape its names)', circuit({ id: 'x/../y', routes: one }), worker()],
    ['an uppercase circuit id (not what we write)', circuit({ id: CID.toUpperCase(), routes: one }), worker()],
    ['a backtick in the subdomain (rule injection)', circuit({ frontend: { mode: 'wildcard', subdomain: 'a`)||Host(`b' }, routes: one }), worker()],
    ['a backtick in the worker hostname', circuit({ routes: one }), worker({ hostname: 'a`)||Host(`b' })],
    ['a route with ratio 0', circuit({ routes: [route(1, 'healthy', 0)] }), worker()],
    ['a route with ratio > 1', circuit({ routes: [route(1, 'healthy', 1.5)] }), worker()],
    ['a route with a host containing /', circuit({ routes: [{ ...route(1, 'healthy'), host: '10.0.0.1/evil' }] }), worker()],
    ['a route with port 0', circuit({ routes: [{ ...route(1, 'healthy'), port: 0 }] }), worker()],
    ['an invalid CIDR', circuit({ allowedClientIps: ['10.0.0.0/33'], routes: one }), worker()],
    ['an empty traefikRoot', circuit({ routes: one }), worker(), { traefikRoot: '' }],
    ['a traefikRoot with a trailing slash', circuit({ routes: one }), worker(), { traefikRoot: 'traefik/' }],
  ])('throws RenderError for %s', (_, c, w, extra) => {
    expect(() => render(c, w, { ...opts, ...extra })).toThrow(RenderError);
  });
});

// --- the table: protocol x frontend x TLS x allow-list x health ----------------------------

type HealthCase = 'checks off' | 'no routes' | '0 healthy' | '1 healthy' | 'many healthy';
const HEALTH: Record<HealthCase, { hc: HealthCheckSettings | null; statuses: HealthStatus[]; listed: number[]; weights: string[] }> = {
  // ratios are 0.25 · n for route n, so the weights of routes 1, 2, 3 are 1, 2, 3
  'checks off': { hc: null, statuses: ['unhealthy', 'unknown', 'healthy'], listed: [1, 2, 3], weights: ['1', '2', '3'] },
  'no routes': { hc: HC, statuses: [], listed: [], weights: [] },
  '0 healthy': { hc: HC, statuses: ['unhealthy', 'unknown', 'unhealthy'], listed: [1, 2, 3], weights: ['1', '2', '3'] },
  '1 healthy': { hc: HC, statuses: ['unhealthy', 'healthy', 'unknown'], listed: [2], weights: ['1'] },
  'many healthy': { hc: HC, statuses: ['healthy', 'unhealthy', 'healthy'], listed: [1, 3], weights: ['1', '3'] },
};

const rows = (['http', 'tcp'] as Protocol[]).flatMap((protocol) =>
  (['port', 'wildcard'] as const).flatMap((mode) =>
    [false, true].flatMap((tls) =>
      [false, true].flatMap((allow) =>
        (Object.keys(HEALTH) as HealthCase[]).map((health) => ({ protocol, mode, tls, allow, health })),
      ),
    ),
  ),
);

describe('render: table', () => {
  it.each(rows)('$protocol $mode tls=$tls allowList=$allow $health', ({ protocol, mode, tls, allow, health }) => {
    const h = HEALTH[health];
    const c = circuit({
      protocol,
      frontend: mode === 'port' ? PORT : WILDCARD,
      allowedClientIps: allow ? ['10.0.0.0/8', '172.16.0.0/12'] : [],
      healthCheck: h.hc,
      routes: h.statuses.map((s, i) => route(i + 1, s, 0.25 * (i + 1))),
    });
    const run = () => render(c, worker({ tls }), { traefikRoot: 'traefik', extraMiddlewares: ['compress@file'] });
    if (protocol === 'tcp' && mode === 'wildcard' && !tls) {
      expect(run).toThrow(RenderError);
      return;
    }
    const m = run();
    if (health === 'no routes') {
      expect(m.size).toBe(0);
      return;
    }

    // The expected keys, spelled out from DESIGN.md §4 for this row.
    const p = protocol;
    const r = `${p}/routers/${ROUTER}`;
    const lb = `${p}/services/${SERVICE}/loadBalancer`;
    const host = mode === 'port' ? 'proxy.example.com' : 'mymodel.apps.example.com';
    const expected: Array<[string, string]> = [
      [`${r}/rule`, p === 'http' ? `Host(\`${host}\`)` : mode === 'port' ? 'HostSNI(`*`)' : `HostSNI(\`${host}\`)`],
      [`${r}/service`, SERVICE],
      [`${r}/entryPoints/0`, mode === 'port' ? 'portproxy_10205' : 'domainproxy'],
    ];
    if (tls) expected.push([`${r}/tls`, 'true']);
    const middlewares = p === 'http' ? (allow ? [ALLOW, 'compress@file'] : ['compress@file']) : allow ? [ALLOW] : [];
    middlewares.forEach((mw, i) => expected.push([`${r}/middlewares/${i}`, mw]));
    if (allow) {
      expected.push([`${p}/middlewares/${ALLOW}/ipAllowList/sourceRange/0`, '10.0.0.0/8']);
      expected.push([`${p}/middlewares/${ALLOW}/ipAllowList/sourceRange/1`, '172.16.0.0/12']);
    }
    h.listed.forEach((n, i) => {
      if (p === 'http') {
        expected.push([`${lb}/servers/${i}/url`, `http://10.0.0.${n}:${30000 + n}/`]);
        expected.push([`${lb}/servers/${i}/weight`, h.weights[i]!]);
      } else {
        expected.push([`${lb}/servers/${i}/address`, `10.0.0.${n}:${30000 + n}`]);
      }
    });
    if (p === 'http' && health === '0 healthy') {
      expected.push(
        [`${lb}/healthCheck/path`, '/health'],
        [`${lb}/healthCheck/interval`, '10s'],
        [`${lb}/healthCheck/timeout`, '5000ms'],
        [`${lb}/healthCheck/status`, '200'],
        [`${lb}/healthCheck/followRedirects`, 'false'],
      );
    }

    expect(sortedEntries(m)).toEqual(sortedEntries(keys(expected)));
    expectValid(ROOT, m);
  });
});

// --- the validator itself must be able to fail ----------------------------------------------

describe('schema validator', () => {
  const base = () => render(circuit({ allowedClientIps: ['10.0.0.0/8'], routes: [route(1, 'healthy'), route(2, 'healthy')] }), worker({ tls: true }), { traefikRoot: 'traefik' });
  const tcpBase = () => render(circuit({ protocol: 'tcp', allowedClientIps: ['10.0.0.0/8'], routes: [route(1, 'healthy')] }), worker(), { traefikRoot: 'traefik' });
  const srv = `${ROOT}/http/services/${SERVICE}/loadBalancer/servers`;
  const rtr = `${ROOT}/http/routers/${ROUTER}`;

  const mutate = (m: Map<string, string>, f: (m: Map<string, string>) => void): Map<string, string> => {
    f(m);
    return m;
  };

  it('accepts the unmutated bases', () => {
    expectValid(ROOT, base());
    expectValid(ROOT, tcpBase());
  });

  it.each<[string, () => Map<string, string>, RegExp]>([
    ['a non-numeric weight', () => mutate(base(), (m) => m.set(`${srv}/0/weight`, 'abc')), /weight must be integer/],
    ['a fractional weight', () => mutate(base(), (m) => m.set(`${srv}/0/weight`, '1.5')), /weight must be integer/],
    ['a negative weight', () => mutate(base(), (m) => m.set(`${srv}/0/weight`, '-1')), /weight must be >= 0/],
    ['a server without url', () => mutate(base(), (m) => m.delete(`${srv}/1/url`)), /must have required property 'url'/],
    ['a gap in the server indices', () => mutate(base(), (m) => (m.delete(`${srv}/0/url`), m.delete(`${srv}/0/weight`))), /not 0\.\.0/],
    ['a leftover index after a shrink', () => mutate(base(), (m) => m.set(`${srv}/3/url`, 'http://10.0.0.9:1/')), /indices/],
    ['a misspelt field (wrong casing)', () => mutate(base(), (m) => (m.set(`${rtr}/entrypoints/0`, 'x'), m.delete(`${rtr}/entryPoints/0`))), /additional properties/],
    ['a router without service', () => mutate(base(), (m) => m.delete(`${rtr}/service`)), /required property 'service'/],
    ['tls set to a non-object value', () => mutate(base(), (m) => m.set(`${rtr}/tls`, 'yes')), /tls must be object/],
    ['a key both a value and a parent', () => mutate(base(), (m) => m.set(`${rtr}/tls/options`, 'x')), /both a value and a parent/],
    ['an unknown top-level kind', () => mutate(base(), (m) => m.set(`${ROOT}/http/routerz/x/rule`, 'x')), /additional properties/],
    ['an unknown allow-list field', () => mutate(base(), (m) => m.set(`${ROOT}/http/middlewares/${ALLOW}/ipAllowList/foo`, 'x')), /must match exactly one schema/],
    ['a weight on a tcp server (not in Traefik v3)', () => mutate(tcpBase(), (m) => m.set(`${ROOT}/tcp/services/${SERVICE}/loadBalancer/servers/0/weight`, '1')), /additional properties/],
    ['an unknown tcp middleware field', () => mutate(tcpBase(), (m) => m.set(`${ROOT}/tcp/middlewares/${ALLOW}/ipAllowList/foo`, 'x')), /must match exactly one schema/],
    [
      'a tcp server without address',
      () =>
        mutate(tcpBase(), (m) => {
          m.delete(`${ROOT}/tcp/services/${SERVICE}/loadBalancer/servers/0/address`);
          m.set(`${ROOT}/tcp/services/${SERVICE}/loadBalancer/servers/0/tls`, 'true');
        }),
      /must have required property 'address'/,
    ],
    // removing every key of the only server removes the service: a dangling reference
    ['a router whose service has no keys', () => mutate(tcpBase(), (m) => m.delete(`${ROOT}/tcp/services/${SERVICE}/loadBalancer/servers/0/address`)), /service .* is not defined/],
    ['a router whose allow-list has no keys', () => mutate(base(), (m) => m.delete(`${ROOT}/http/middlewares/${ALLOW}/ipAllowList/sourceRange/0`)), /middleware .* is not defined/],
    ['a router pointing at the staging service that is not there', () => mutate(base(), (m) => m.set(`${rtr}/service`, `bai_service_${CID}_staging`)), /is not defined/],
    ['a key outside the root', () => mutate(base(), (m) => m.set('traefik/worker_worker-2/http/routers/x/rule', 'x')), /not under/],
  ])('rejects %s', (_, build, message) => {
    const v = validateTraefikKeys(ROOT, build());
    expect(v.valid).toBe(false);
    expect(v.errors).toMatch(message);
  });
});

// --- panic mode and listedRoutes -----------------------------------------------------------

describe('listedRoutes', () => {
  it('lists every route when health checking is off, whatever their status', () => {
    const routes = [route(1, 'unhealthy'), route(2, 'unknown'), route(3, 'healthy')];
    expect(listedRoutes(circuit({ routes }))).toEqual({ routes, panic: false });
  });

  it('lists only the healthy ones when at least one is healthy (unknown and unhealthy are left out)', () => {
    const routes = [route(1, 'unknown'), route(2, 'healthy'), route(3, 'unhealthy'), route(4, 'healthy')];
    const l = listedRoutes(circuit({ healthCheck: HC, routes }));
    expect(l.panic).toBe(false);
    expect(l.routes.map((r) => r.port)).toEqual([30002, 30004]);
  });

  it('falls back to all routes in panic mode when none is healthy', () => {
    const routes = [route(1, 'unknown'), route(2, 'unhealthy')];
    expect(listedRoutes(circuit({ healthCheck: HC, routes }))).toEqual({ routes, panic: true });
  });

  it('is not in panic with no routes at all', () => {
    expect(listedRoutes(circuit({ healthCheck: HC }))).toEqual({ routes: [], panic: false });
  });

  it('does not hand out the circuit array itself', () => {
    const c = circuit({ routes: [route(1, 'healthy')] });
    expect(listedRoutes(c).routes).not.toBe(c.routes);
  });
});

// --- properties over arbitrary valid circuits ----------------------------------------------

const labelArb = fc.stringMatching(/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/);
const hostnameArb = fc
  .array(labelArb, { minLength: 1, maxLength: 4 })
  .map((ls) => ls.join('.'))
  .filter((h) => h.length <= 253);
const authorityArb = fc.stringMatching(/^[a-z0-9-]{1,63}$/);
const portArb = fc.integer({ min: 1, max: 65535 });
const ratioArb = fc.oneof(
  fc.double({ min: Number.MIN_VALUE, max: 1, noNaN: true }),
  fc.integer({ min: 1, max: 1000 }).map((n) => n / 1000),
  fc.constantFrom(1, 0.5, 0.0005, 0.0004999),
);
const statusArb = fc.constantFrom<HealthStatus>('unknown', 'healthy', 'unhealthy');
const routeArb: fc.Arbitrary<Route> = fc.record({
  routeId: fc.uuid(),
  sessionId: fc.uuid(),
  host: fc.oneof(fc.ipV4(), hostnameArb),
  port: portArb,
  trafficRatio: ratioArb,
  health: fc.record({
    status: statusArb,
    consecutiveSuccesses: fc.nat(10),
    consecutiveFailures: fc.nat(10),
    lastCheckedAt: fc.constant(null),
    lastError: fc.constant(null),
  }),
  createdAt: fc.constant('2026-01-01T00:00:00.000Z'),
});
const healthCheckArb: fc.Arbitrary<HealthCheckSettings | null> = fc.option(
  fc.record({
    path: fc.stringMatching(/^\/[\x21-\x7e]{0,40}$/),
    intervalSeconds: fc.integer({ min: 1, max: 3600 }),
    timeoutMs: fc.integer({ min: 10, max: 60000 }),
    expectedStatus: fc.integer({ min: 100, max: 599 }),
    unhealthyThreshold: fc.integer({ min: 1, max: 100 }),
    healthyThreshold: fc.integer({ min: 1, max: 100 }),
    initialDelaySeconds: fc.integer({ min: 0, max: 86400 }),
  }),
  { nil: null },
);
const frontendArb: fc.Arbitrary<Frontend> = fc.oneof(
  portArb.map((port) => ({ mode: 'port' as const, port })),
  labelArb.map((subdomain) => ({ mode: 'wildcard' as const, subdomain })),
);
const cidrArb = fc.tuple(fc.ipV4(), fc.integer({ min: 0, max: 32 })).map(([ip, n]) => `${ip}/${n}`);

/** A valid (circuit, worker) pair: the worker supports the circuit's frontend. */
const caseArb = fc
  .record({
    id: fc.uuid(),
    authority: authorityArb,
    protocol: fc.constantFrom<Protocol>('http', 'tcp'),
    frontend: frontendArb,
    allowedClientIps: fc.oneof(fc.array(cidrArb, { maxLength: 64 }), fc.array(cidrArb, { maxLength: 64, size: 'max' })),
    healthCheck: healthCheckArb,
    // Small arrays make panic mode (no healthy route) likely; size 'max' covers up to 40 routes.
    routes: fc.oneof(
      fc.uniqueArray(routeArb, { maxLength: 40, selector: (r) => r.routeId }),
      fc.uniqueArray(routeArb, { maxLength: 40, selector: (r) => r.routeId, size: 'max' }),
    ),
    hostname: hostnameArb,
    wildcardDomain: fc.option(hostnameArb, { nil: null }),
    fallbackDomain: hostnameArb,
    tls: fc.boolean(),
    traefikRoot: fc.constantFrom('traefik', 'edge/proxy', 'root_1.x'),
    extraMiddlewares: fc.array(fc.stringMatching(/^[a-z][a-z0-9-]{0,20}@(file|docker)$/), { maxLength: 3 }),
  })
  .map((a) => {
    const wildcard = a.frontend.mode === 'wildcard';
    const w: Worker = {
      authority: a.authority,
      hostname: a.hostname,
      wildcardDomain: wildcard ? (a.wildcardDomain ?? a.fallbackDomain) : a.wildcardDomain,
      tls: a.tls || (wildcard && a.protocol === 'tcp'),
    };
    const c = circuit({ ...a, worker: a.authority });
    return { c, w, opts: { traefikRoot: a.traefikRoot, extraMiddlewares: a.extraMiddlewares } };
  });

/** Every list (a level whose segments are numeric) must have exactly the indices 0..n-1. */
function expectContiguousIndices(ks: Iterable<string>): void {
  const lists = new Map<string, Set<number>>();
  for (const k of ks) {
    const segs = k.split('/');
    segs.forEach((s, i) => {
      if (!/^\d+$/.test(s)) return;
      const parent = segs.slice(0, i).join('/');
      lists.set(parent, (lists.get(parent) ?? new Set()).add(Number(s)));
    });
  }
  for (const [parent, idx] of lists) {
    expect([...idx].sort((a, b) => a - b), parent).toEqual([...Array(idx.size).keys()]);
  }
}

// Same bound as in weights.test.ts (derivation there): for listed ratios r and weights w,
// |w_i·a_j − w_j·a_i| · max(1, a_j − 0.5) ≤ (δ_i·a_j + δ_j·a_i) · w_j with a = 1000·r and
// δ = 0.5 (a ≥ 0.5) or 1 − a (clamped to weight 1).
function expectProportions(ratios: readonly number[], weights: readonly number[]): void {
  const a = ratios.map((r) => r * 1000);
  const d = a.map((x) => (x >= 0.5 ? 0.5 : 1 - x));
  a.forEach((ai, i) =>
    a.forEach((aj, j) => {
      const [wi, wj] = [weights[i]!, weights[j]!];
      const lhs = Math.abs(wi * aj - wj * ai) * Math.max(1, aj - 0.5);
      const rhs = (d[i]! * aj + d[j]! * ai) * wj;
      expect(lhs).toBeLessThanOrEqual(rhs + 1e-9 * (wi * aj + wj * ai) * Math.max(1, aj));
    }),
  );
}

describe('render: properties', () => {
  it('writes only under this worker root and this circuit\'s own names, all mapping back to it', () => {
    fc.assert(
      fc.property(caseArb, ({ c, w, opts }) => {
        const m = render(c, w, opts);
        const root = `${opts.traefikRoot}/worker_${w.authority}`;
        const own = { routers: `bai_router_${c.id}`, services: `bai_service_${c.id}`, middlewares: `bai_ipallowlist_${c.id}` };
        const prefixes = circuitKeyPrefixes(root, c.id);
        for (const k of m.keys()) {
          expect(k.startsWith(`${root}/`)).toBe(true);
          const [proto, kind, name] = k.slice(root.length + 1).split('/');
          expect(proto).toBe(c.protocol);
          expect(kind === 'routers' || kind === 'services' || kind === 'middlewares').toBe(true);
          expect(name).toBe(own[kind as keyof typeof own]);
          expect(circuitIdOfKey(root, k)).toBe(c.id);
          expect(prefixes.some((p) => k.startsWith(p))).toBe(true);
          expect(typeof m.get(k)).toBe('string');
        }
      }),
      RUNS,
    );
  });

  it('validates against the Traefik schema, with contiguous list indices', () => {
    fc.assert(
      fc.property(caseArb, ({ c, w, opts }) => {
        const m = render(c, w, opts);
        const root = `${opts.traefikRoot}/worker_${w.authority}`;
        expectContiguousIndices(m.keys());
        if (m.size > 0) expect(() => keysToTree(root, m)).not.toThrow();
        expectValid(root, m);
      }),
      RUNS,
    );
  });

  it('lists exactly the listed routes, in order, never one that is not in the circuit', () => {
    fc.assert(
      fc.property(caseArb, ({ c, w, opts }) => {
        const m = render(c, w, opts);
        const { routes, panic } = listedRoutes(c);
        // listedRoutes: healthy ones, or all of them in panic / without health checking
        const healthy = c.routes.filter((r) => r.health.status === 'healthy');
        const expectAll = c.healthCheck === null || healthy.length === 0;
        expect(routes).toEqual(expectAll ? c.routes : healthy);
        expect(panic).toBe(c.healthCheck !== null && c.routes.length > 0 && healthy.length === 0);
        for (const r of routes) expect(c.routes).toContain(r);

        const root = `${opts.traefikRoot}/worker_${w.authority}`;
        const lb = `${root}/${c.protocol}/services/bai_service_${c.id}/loadBalancer`;
        const servers = [...m.keys()].filter((k) => k.startsWith(`${lb}/servers/`));
        if (c.routes.length === 0) {
          expect(m.size).toBe(0);
          return;
        }
        const field = c.protocol === 'http' ? 'url' : 'address';
        const shown = routes.map((_, i) => m.get(`${lb}/servers/${i}/${field}`));
        expect(shown).toEqual(routes.map((r) => (c.protocol === 'http' ? `http://${r.host}:${r.port}/` : `${r.host}:${r.port}`)));
        expect(servers).toHaveLength(routes.length * (c.protocol === 'http' ? 2 : 1));
        const hcKeys = [...m.keys()].filter((k) => k.startsWith(`${lb}/healthCheck/`));
        expect(hcKeys).toHaveLength(panic && c.protocol === 'http' ? 5 : 0);
      }),
      RUNS,
    );
  });

  it('writes weights >= 1 that keep the proportions of the listed ratios', () => {
    fc.assert(
      fc.property(caseArb.filter(({ c }) => c.protocol === 'http'), ({ c, w, opts }) => {
        const m = render(c, w, opts);
        const lb = `${opts.traefikRoot}/worker_${w.authority}/http/services/bai_service_${c.id}/loadBalancer`;
        const { routes } = listedRoutes(c);
        const weights = routes.map((_, i) => m.get(`${lb}/servers/${i}/weight`));
        for (const s of weights) expect(s).toMatch(/^[1-9]\d*$/);
        const ws = weights.map(Number);
        expect(ws).toEqual(weightsFor(routes.map((r) => r.trafficRatio)));
        expectProportions(
          routes.map((r) => r.trafficRatio),
          ws,
        );
      }),
      RUNS,
    );
  });

  it('two circuits on one worker never touch each other\'s keys', () => {
    fc.assert(
      fc.property(caseArb, caseArb, ({ c, w, opts }, other) => {
        fc.pre(c.id !== other.c.id);
        const c2: Circuit = { ...other.c, worker: w.authority, frontend: c.frontend, protocol: c.protocol };
        const a = render(c, w, opts);
        const b = render(c2, w, opts);
        const root = `${opts.traefikRoot}/worker_${w.authority}`;
        const bPrefixes = circuitKeyPrefixes(root, c2.id);
        for (const k of a.keys()) {
          expect(b.has(k)).toBe(false);
          expect(bPrefixes.some((p) => k.startsWith(p))).toBe(false);
          expect(circuitIdOfKey(root, k)).not.toBe(c2.id);
        }
      }),
      RUNS,
    );
  });

  it('renders nothing for a deleted circuit', () => {
    fc.assert(
      fc.property(caseArb, ({ c, w, opts }) => {
        expect(render({ ...c, deletedAt: '2026-01-02T00:00:00.000Z' }, w, opts).size).toBe(0);
      }),
      RUNS,
    );
  });

  it('refuses wildcard frontends the worker cannot serve', () => {
    fc.assert(
      fc.property(caseArb, labelArb, ({ c, w, opts }, sub) => {
        const wc: Circuit = { ...c, frontend: { mode: 'wildcard', subdomain: sub } };
        expect(() => render(wc, { ...w, wildcardDomain: null }, opts)).toThrow(RenderError);
        if (c.protocol === 'tcp') expect(() => render(wc, { ...w, wildcardDomain: 'apps.example.com', tls: false }, opts)).toThrow(RenderError);
      }),
      RUNS,
    );
  });
});

// --- keysToTree -----------------------------------------------------------------------------

describe('keysToTree', () => {
  it('nests keys, turns numeric levels into lists, keeps values as strings', () => {
    const kv = new Map([
      ['r/a/b/0', 'x'],
      ['r/a/b/1', 'y'],
      ['r/a/c', ''],
      ['r/d/0/e', '1'],
    ]);
    expect(keysToTree('r', kv)).toEqual({ a: { b: ['x', 'y'], c: '' }, d: [{ e: '1' }] });
  });

  it('orders list items by index, not by insertion', () => {
    expect(keysToTree('r', new Map([['r/l/1', 'b'], ['r/l/0', 'a'], ['r/l/10', 'k'], ...Array.from({ length: 8 }, (_, i) => [`r/l/${i + 2}`, String(i)] as [string, string])]))).toEqual({
      l: ['a', 'b', '0', '1', '2', '3', '4', '5', '6', '7', 'k'],
    });
  });

  it('returns an empty object for no keys', () => {
    expect(keysToTree('r', new Map())).toEqual({});
  });

  it.each<[string, Array<[string, string]>, RegExp]>([
    ['a gap', [['r/l/0', 'a'], ['r/l/2', 'c']], /indices/],
    ['a list not starting at 0', [['r/l/1', 'a']], /indices/],
    ['a non-canonical index', [['r/l/00', 'a']], /indices/],
    ['a key outside the root', [['s/a', 'x']], /not under/],
    ['a key equal to a sibling root', [['rr/a', 'x']], /not under/],
    ['an empty segment', [['r/a//b', 'x']], /empty segment/],
    ['a trailing slash', [['r/a/', 'x']], /empty segment/],
    ['a value that is also a parent', [['r/a', 'x'], ['r/a/b', 'y']], /both/],
    ['a parent that is also a value', [['r/a/b', 'y'], ['r/a', 'x']], /both/],
    ['a list at the top level', [['r/0', 'x']], /cannot be a list/],
  ])('throws on %s', (_, entries, message) => {
    expect(() => keysToTree('r', new Map(entries))).toThrow(message);
  });

  it('keeps a "__proto__" segment as plain data', () => {
    const t = keysToTree('r', new Map([['r/__proto__/polluted', 'yes']]));
    expect(Object.getPrototypeOf(t)).toBe(Object.prototype);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(Object.hasOwn(t, '__proto__')).toBe(true);
  });
});
