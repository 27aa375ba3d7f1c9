// Strict validation of every input, through the real handlers: every rejection
// is a 4xx application/problem+json that names the offending field, and changes nothing: the etcd
// revision and a checksum of the whole database are compared around every single request.
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { mockClient } from 'aws-sdk-client-mock';
import { EventBridgeClient, PutEventsCommand } from '@aws-sdk/client-eventbridge';

const tag = randomUUID().slice(0, 8);
const MAX_ROUTES = 8;
Object.assign(process.env, {
  TRAEFIK_ROOT: `traefik-v${tag}`,
  META_PREFIX: `circuitry-v${tag}`,
  MAX_ROUTES_PER_CIRCUIT: String(MAX_ROUTES),
  AWS_REGION: 'us-east-1',
  AWS_ACCESS_KEY_ID: 'test',
  AWS_SECRET_ACCESS_KEY: 'test',
  POWERTOOLS_LOG_LEVEL: 'ERROR',
  POWERTOOLS_METRICS_DISABLED: 'true',
});

const { handler: circuitsApi } = await import('../../functions/circuits-api.js');
const { handler: updateRoutesFn } = await import('../../functions/update-routes.js');
const { getRuntime, closeRuntime } = await import('../../lib/runtime.js');
const { workerRoot } = await import('../../lib/traefik/names.js');
const { enc } = await import('../../lib/etcd/keys.js');
const { keysUnder, route } = await import('../support/rt.js');
const { call } = await import('../support/lambda.js');
const { quiesceEtcd } = await import('../../harness/fuzz/run.js');
type Req = import('../support/lambda.js').ApiRequest;

const eb = mockClient(EventBridgeClient);
beforeEach(() => {
  eb.reset();
  eb.on(PutEventsCommand).callsFake((input: { Entries: unknown[] }) => ({ FailedEntryCount: 0, Entries: input.Entries.map(() => ({ EventId: randomUUID() })) }));
});
afterAll(async () => {
  eb.restore();
  await closeRuntime(getRuntime());
});

const rt = () => getRuntime();
const worker = `w-v${tag}`;
let circuitId: string;
let portSeq = 30000 + Math.floor(Math.random() * 20000);

/** Everything a request could change: the etcd revision and the database, whole. */
async function snapshot(): Promise<string> {
  const db = rt().db as unknown as { query: (q: string) => Promise<{ rows: unknown[] }> };
  const [r, d] = await Promise.all([
    rt().etcd.kv.range({ key: enc('\0'), limit: 1 }),
    db.query(`SELECT
        (SELECT count(*) FROM circuits) AS circuits,
        (SELECT coalesce(max(generation), 0) FROM circuits) AS max_generation,
        (SELECT count(*) FROM routes) AS routes,
        (SELECT md5(coalesce(string_agg(c::text, '|' ORDER BY c.id), '')) FROM circuits c) AS circuits_md5,
        (SELECT md5(coalesce(string_agg(r::text, '|' ORDER BY r.circuit_id, r.route_id), '')) FROM routes r) AS routes_md5,
        (SELECT md5(coalesce(string_agg(w::text, '|' ORDER BY w.authority), '')) FROM workers w) AS workers_md5`),
  ]);
  return `etcd@${r.header.revision} ${JSON.stringify(d.rows[0])}`;
}

beforeAll(async () => {
  const w = await call(circuitsApi, { method: 'PUT', path: `/v2/workers/${worker}`, pathParameters: { authority: worker }, body: { hostname: 'proxy.example.com', wildcardDomain: 'apps.example.com', tls: true } });
  expect(w.statusCode).toBe(201);
  const c = await call(circuitsApi, { method: 'POST', path: '/v2/circuits', body: createBody() });
  expect(c.statusCode).toBe(201);
  circuitId = c.json.id as string;
  // Leases left by earlier test files delete their keys when they expire (a revision bump that
  // is not ours): wait until no lease holds a key.
  await quiesceEtcd(rt().etcd);
}, 60_000);

function createBody(over: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    worker,
    protocol: 'http',
    appMode: 'inference',
    frontend: { mode: 'port', port: portSeq++ },
    allowedClientIps: ['10.0.0.0/8'],
    healthCheck: { path: '/health', intervalSeconds: 10 },
    routes: [route(1), route(2)],
    ...over,
  };
}
const withRoute = (over: Record<string, unknown>) => createBody({ routes: [{ ...route(1), ...over }] });

/** A JSON text with members given as entries (duplicates and "__proto__" allowed). */
const rawObject = (entries: Array<[string, unknown]>, extra = ''): string =>
  `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${JSON.stringify(v)}`).join(',')}${extra}}`;

interface Case {
  name: string;
  fn?: 'update-routes';
  req: () => Req;
  status: number;
  field: string;
}

const post = (body: unknown): (() => Req) => () => ({ method: 'POST', path: '/v2/circuits', body });
const postRaw = (rawBody: string): (() => Req) => () => ({ method: 'POST', path: '/v2/circuits', rawBody });
const putWorker = (authority: string, body: unknown): (() => Req) => () => ({ method: 'PUT', path: `/v2/workers/${authority}`, pathParameters: { authority }, body });
const putRoutes = (body: unknown, headers: Record<string, string> = {}, id?: string): (() => Req) => () => ({
  method: 'PUT',
  path: `/v2/circuits/${id ?? circuitId}/routes`,
  pathParameters: { id: id ?? circuitId },
  body,
  headers,
});

const CASES: Case[] = [
  // unknown fields, at every level, including prototype pollution attempts
  { name: 'an unknown top-level field', req: post(createBody({ extra: 1 })), status: 400, field: 'extra' },
  { name: 'an unknown field in frontend', req: post(createBody({ frontend: { mode: 'port', port: 1, x: 1 } })), status: 400, field: 'frontend.x' },
  { name: 'an unknown field in a route', req: post(withRoute({ foo: 'bar' })), status: 400, field: 'routes.0.foo' },
  { name: 'an unknown field in healthCheck', req: post(createBody({ healthCheck: { path: '/h', bar: 1 } })), status: 400, field: 'healthCheck.bar' },
  { name: '"__proto__" at the top', req: postRaw(JSON.stringify(createBody()).replace(/^\{/, '{"__proto__":{"polluted":true},')), status: 400, field: '__proto__' },
  { name: '"constructor" in a route', req: postRaw(JSON.stringify(withRoute({})).replace('"routeId"', '"constructor":{"prototype":{"polluted":true}},"routeId"')), status: 400, field: 'routes.0.constructor' },
  { name: '"__proto__" in a worker body', req: putWorker(worker, JSON.parse('{"hostname":"a.com","__proto__":{"tls":true}}')), status: 400, field: '__proto__' },
  // duplicated keys (JSON.parse would keep the last one)
  { name: 'a duplicated top-level key', req: postRaw(rawObject(Object.entries(createBody()), `,"worker":"w-other"`)), status: 400, field: 'worker' },
  { name: 'a duplicated key spelled with escapes', req: postRaw(rawObject(Object.entries(createBody()), `,"\\u0077orker":"w-other"`)), status: 400, field: 'worker' },
  { name: 'a duplicated key in a route', req: postRaw(JSON.stringify(withRoute({})).replace('"sessionId":', '"host":"10.9.9.9","sessionId":')), status: 400, field: 'routes.0.host' },
  // ids
  { name: 'a non-UUID id', req: post(createBody({ id: 'not-a-uuid' })), status: 400, field: 'id' },
  { name: 'a UUID with a trailing space', req: post(createBody({ id: `${randomUUID()} ` })), status: 400, field: 'id' },
  { name: 'a UUID in braces', req: post(createBody({ id: `{${randomUUID()}}` })), status: 400, field: 'id' },
  { name: 'a non-UUID routeId', req: post(withRoute({ routeId: 'r1' })), status: 400, field: 'routes.0.routeId' },
  { name: 'a non-UUID sessionId', req: post(withRoute({ sessionId: 12 })), status: 400, field: 'routes.0.sessionId' },
  // worker authority
  { name: 'an uppercase worker', req: post(createBody({ worker: 'Worker-1' })), status: 400, field: 'worker' },
  { name: 'a worker with an underscore', req: post(createBody({ worker: 'w_1' })), status: 400, field: 'worker' },
  { name: 'a 64-character worker', req: post(createBody({ worker: 'a'.repeat(64) })), status: 400, field: 'worker' },
  { name: 'a worker with a slash', req: post(createBody({ worker: 'w/../x' })), status: 400, field: 'worker' },
  // enums, frontend
  { name: 'an unknown protocol', req: post(createBody({ protocol: 'udp' })), status: 400, field: 'protocol' },
  { name: 'an unknown appMode', req: post(createBody({ appMode: 'batch' })), status: 400, field: 'appMode' },
  { name: 'an unknown frontend mode', req: post(createBody({ frontend: { mode: 'both' } })), status: 400, field: 'frontend.mode' },
  { name: 'frontend port 0', req: post(createBody({ frontend: { mode: 'port', port: 0 } })), status: 400, field: 'frontend.port' },
  { name: 'frontend port 65536', req: post(createBody({ frontend: { mode: 'port', port: 65536 } })), status: 400, field: 'frontend.port' },
  { name: 'a fractional frontend port', req: post(createBody({ frontend: { mode: 'port', port: 80.5 } })), status: 400, field: 'frontend.port' },
  { name: 'a string frontend port', req: post(createBody({ frontend: { mode: 'port', port: '80' } })), status: 400, field: 'frontend.port' },
  ...['a.b', 'A', 'a`b', 'a b', 'a,b', 'a(b)', '-a', 'a-', 'a'.repeat(64), '\u212Aelvin', ''].map((subdomain) => ({
    name: `subdomain ${JSON.stringify(subdomain.slice(0, 12))}`,
    req: post(createBody({ frontend: { mode: 'wildcard', subdomain } })),
    status: 400,
    field: 'frontend.subdomain',
  })),
  // allowed client IPs
  ...[['10.0.0.0'], ['10.0.0.0/33'], ['::/0'], ['010.0.0.0/8'], ['10.0.0.0/8 '], ['10.0.0.0/8,1.2.3.4/32'], [42]].map((ips) => ({
    name: `allowedClientIps ${JSON.stringify(ips)}`,
    req: post(createBody({ allowedClientIps: ips })),
    status: 400,
    field: 'allowedClientIps.0',
  })),
  { name: '65 allowed client IPs', req: post(createBody({ allowedClientIps: Array.from({ length: 65 }, (_, i) => `10.0.${i}.0/24`) })), status: 400, field: 'allowedClientIps' },
  // health check
  ...['health', '/a b', '/é', '/\x7f', '/\0', `/${'a'.repeat(512)}`, ''].map((path) => ({
    name: `health path ${JSON.stringify(path.slice(0, 12))}`,
    req: post(createBody({ healthCheck: { path } })),
    status: 400,
    field: 'healthCheck.path',
  })),
  { name: 'a zero health interval', req: post(createBody({ healthCheck: { intervalSeconds: 0 } })), status: 400, field: 'healthCheck.intervalSeconds' },
  { name: 'an expected status of 600', req: post(createBody({ healthCheck: { expectedStatus: 600 } })), status: 400, field: 'healthCheck.expectedStatus' },
  // routes
  { name: `${MAX_ROUTES + 1} routes (MAX_ROUTES_PER_CIRCUIT is ${MAX_ROUTES})`, req: post(createBody({ routes: Array.from({ length: MAX_ROUTES + 1 }, (_, i) => route(i)) })), status: 400, field: 'routes' },
  { name: 'a duplicated routeId', req: () => { const r = route(1); return post(createBody({ routes: [r, { ...r, port: 1 }] }))(); }, status: 400, field: 'routes.1.routeId' },
  { name: 'a duplicated routeId in another case', req: () => { const r = route(1); return post(createBody({ routes: [r, { ...r, routeId: r.routeId.toUpperCase(), port: 1 }] }))(); }, status: 400, field: 'routes.1.routeId' },
  ...['a`b', '10.0.0.1/8', 'a b', 'a,b', 'LOCALHOST', 'a..b', '-a', 'http://127.0.0.1', '127.0.0.1:80', '::1', '[::1]', '2130706433', '0x7f.1', '127.1', '0177.0.0.1', 'a.0', '256.1.1.1', ''].map((host) => ({
    name: `route host ${JSON.stringify(host)}`,
    req: post(withRoute({ host })),
    status: 400,
    field: 'routes.0.host',
  })),
  ...['169.254.169.254', '169.254.170.2', '0.0.0.0', '10.0.0.1', '8.8.8.8'].map((host) => ({
    name: `route host ${host} (outside ALLOWED_BACKEND_CIDRS or metadata)`,
    req: post(withRoute({ host })),
    status: 422,
    field: 'routes.0.host',
  })),
  ...[0, 65536, -1, 1.5].map((port) => ({ name: `route port ${port}`, req: post(withRoute({ port })), status: 400, field: 'routes.0.port' })),
  ...[0, -1, 1.0001, 2, '1', null].map((trafficRatio) => ({ name: `trafficRatio ${JSON.stringify(trafficRatio)}`, req: post(withRoute({ trafficRatio })), status: 400, field: 'routes.0.trafficRatio' })),
  { name: 'trafficRatio -0', req: postRaw(JSON.stringify(withRoute({ trafficRatio: 12345 })).replace('12345', '-0')), status: 400, field: 'routes.0.trafficRatio' },
  { name: 'trafficRatio 1e-400 (parses to 0)', req: postRaw(JSON.stringify(withRoute({ trafficRatio: 12345 })).replace('12345', '1e-400')), status: 400, field: 'routes.0.trafficRatio' },
  { name: 'port 1e400 (parses to Infinity)', req: postRaw(JSON.stringify(withRoute({ port: 12345 })).replace('12345', '1e400')), status: 400, field: 'routes.0.port' },
  // bodies
  { name: 'no body', req: () => ({ method: 'POST', path: '/v2/circuits' }), status: 400, field: 'body' },
  { name: 'malformed JSON', req: postRaw('{"worker":'), status: 400, field: 'body' },
  ...['null', '[]', '"x"', '1', 'true'].map((raw) => ({ name: `the body ${raw}`, req: postRaw(raw), status: 400, field: 'body' })),
  { name: 'nesting deeper than any schema', req: postRaw(`{"worker":${'['.repeat(100)}${']'.repeat(100)}}`), status: 400, field: `worker${'.0'.repeat(15)}` },
  { name: 'a body over 1 MiB', req: postRaw(`{"worker":"${'a'.repeat(1024 * 1024)}"}`), status: 413, field: 'body' },
  { name: 'a text/plain body', req: () => ({ ...post(createBody())(), headers: { 'content-type': 'text/plain' } }), status: 415, field: 'header.content-type' },
  { name: 'a body without a content type', req: () => ({ ...post(createBody())(), headers: { 'content-type': '' } }), status: 415, field: 'header.content-type' },
  // workers
  ...['Bad_Name', 'a'.repeat(64), 'a.b', 'é'].map((a) => ({ name: `worker authority ${JSON.stringify(a.slice(0, 12))}`, req: putWorker(a, { hostname: 'a.example.com' }), status: 400, field: 'path.authority' })),
  ...['evil.com`) || Host(`x', 'a b.com', 'a.com,b.com', 'A.COM', 'a..b', 'a.', `${'a'.repeat(63)}.`.repeat(4).slice(0, 254), 'é.com', ''].map((hostname) => ({
    name: `worker hostname ${JSON.stringify(hostname.slice(0, 16))}`,
    req: putWorker(worker, { hostname }),
    status: 400,
    field: 'hostname',
  })),
  { name: 'a wildcard in wildcardDomain', req: putWorker(worker, { hostname: 'a.com', wildcardDomain: '*.a.com' }), status: 400, field: 'wildcardDomain' },
  { name: 'tls as a string', req: putWorker(worker, { hostname: 'a.com', tls: 'true' }), status: 400, field: 'tls' },
  { name: 'an unknown worker field', req: putWorker(worker, { hostname: 'a.com', foo: 1 }), status: 400, field: 'foo' },
  { name: 'a worker without hostname', req: putWorker(worker, {}), status: 400, field: 'hostname' },
  // update-routes
  { name: 'a non-UUID circuit id in the path', fn: 'update-routes', req: putRoutes({ routes: [] }, {}, 'nope'), status: 400, field: 'path.id' },
  { name: 'a malformed If-Match', fn: 'update-routes', req: putRoutes({ routes: [route(7)] }, { 'if-match': 'abc' }), status: 400, field: 'header.if-match' },
  { name: 'If-Match *', fn: 'update-routes', req: putRoutes({ routes: [route(7)] }, { 'if-match': '*' }), status: 400, field: 'header.if-match' },
  { name: 'routes not an array', fn: 'update-routes', req: putRoutes({ routes: {} }), status: 400, field: 'routes' },
  { name: 'no routes member', fn: 'update-routes', req: putRoutes({}), status: 400, field: 'routes' },
  { name: 'an unknown member next to routes', fn: 'update-routes', req: putRoutes({ routes: [], x: 1 }), status: 400, field: 'x' },
  { name: `${MAX_ROUTES + 1} routes in an update`, fn: 'update-routes', req: putRoutes({ routes: Array.from({ length: MAX_ROUTES + 1 }, (_, i) => route(i)) }), status: 400, field: 'routes' },
  { name: 'a metadata address in an update', fn: 'update-routes', req: putRoutes({ routes: [route(1), { ...route(2), host: '169.254.169.254' }] }), status: 422, field: 'routes.1.host' },
  { name: 'a POST to update-routes', fn: 'update-routes', req: () => ({ ...putRoutes({ routes: [route(7)] })(), method: 'POST' }), status: 405, field: '' },
  // reads and deletes
  { name: 'a body on GET', req: () => ({ method: 'GET', path: '/v2/circuits', body: { limit: 1 } }), status: 400, field: 'body' },
  { name: 'a body on DELETE', req: () => ({ method: 'DELETE', path: `/v2/circuits/${circuitId}`, pathParameters: { id: circuitId }, body: {} }), status: 400, field: 'body' },
  { name: 'GET a non-UUID id', req: () => ({ method: 'GET', path: '/v2/circuits/nope', pathParameters: { id: 'nope' } }), status: 400, field: 'path.id' },
  { name: 'DELETE a non-UUID id', req: () => ({ method: 'DELETE', path: '/v2/circuits/..', pathParameters: { id: '..' } }), status: 400, field: 'path.id' },
  ...['0', '501', '1e2', 'abc', ' 5', '5.0'].map((limit) => ({ name: `limit ${JSON.stringify(limit)}`, req: () => ({ method: 'GET', path: '/v2/circuits', query: { limit } }), status: 400, field: 'query.limit' })),
  { name: 'an unknown query parameter', req: () => ({ method: 'GET', path: '/v2/circuits', query: { offset: '1' } }), status: 400, field: 'query.offset' },
  { name: 'a garbage cursor', req: () => ({ method: 'GET', path: '/v2/circuits', query: { cursor: 'AAAA' } }), status: 400, field: 'query.cursor' },
  { name: 'a forged cursor', req: () => ({ method: 'GET', path: '/v2/circuits', query: { cursor: Buffer.from(JSON.stringify({ createdAt: "2026-01-01 00:00:00+00'; --", id: randomUUID() })).toString('base64url') } }), status: 400, field: 'query.cursor.createdAt' },
  { name: 'a bad worker filter', req: () => ({ method: 'GET', path: '/v2/circuits', query: { worker: 'Bad' } }), status: 400, field: 'query.worker' },
];

describe('every rejection is a 4xx problem naming the field, and changes nothing', () => {
  it.each(CASES.map((c) => [c.name, c] as const))('%s', async (_, c) => {
    const before = await snapshot();
    const res = await call(c.fn === 'update-routes' ? updateRoutesFn : circuitsApi, c.req());
    const after = await snapshot();
    expect(res.statusCode, JSON.stringify(res.json)).toBe(c.status);
    expect(res.headers['content-type']).toBe('application/problem+json');
    expect(res.json).toMatchObject({ status: c.status, title: expect.any(String) });
    if (c.field !== '') expect(res.json.errors?.map((e) => e.field), JSON.stringify(res.json)).toContain(c.field);
    expect(after).toBe(before);
    expect(eb.commandCalls(PutEventsCommand)).toHaveLength(0);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });
});

describe('problem details do not echo the request', () => {
  it.each([
    `{"worker":"snippet-8d1f" x}`,
    `{"worker":"${'a'.repeat(200)}snippet-8d1f${'b'.repeat(200)}" x}`,
    `snippet-8d1f`,
  ])('malformed JSON: %#', async (rawBody) => {
    const r = await call(circuitsApi, { method: 'POST', path: '/v2/circuits', rawBody });
    expect(r.statusCode).toBe(400);
    expect(JSON.stringify(r.json)).not.toContain('snippet-8d1f');
  });
});

describe('edge values that are valid are accepted (never a 5xx)', () => {
  it('the extremes of every bounded field', async () => {
    const body = createBody({
      id: randomUUID().toUpperCase(),
      frontend: { mode: 'wildcard', subdomain: `e${'a'.repeat(61)}z` },
      allowedClientIps: Array.from({ length: 64 }, (_, i) => `10.${i}.0.0/16`).concat([]).slice(0, 63).concat(['0.0.0.0/0']),
      healthCheck: { path: `/${'~'.repeat(511)}`, intervalSeconds: 3600, timeoutMs: 60000, expectedStatus: 599, unhealthyThreshold: 100, healthyThreshold: 100, initialDelaySeconds: 86400 },
      routes: [
        { ...route(1), port: 65535, trafficRatio: 5e-324 },
        { ...route(2), port: 1, trafficRatio: 1 },
        { ...route(3), host: 'backend-1.internal.example.com', trafficRatio: 0.0004 },
        ...Array.from({ length: MAX_ROUTES - 3 }, (_, i) => route(10 + i)),
      ],
    });
    const r = await call(circuitsApi, { method: 'POST', path: '/v2/circuits', body });
    expect(r.statusCode, JSON.stringify(r.json)).toBe(201);
    expect(r.json.id).toBe((body.id as string).toLowerCase());
    expect(r.json.publish).toEqual({ applied: true });
    const keys = await keysUnder(rt().etcd, `${workerRoot(rt().config.traefikRoot, worker)}/`);
    expect([...keys.keys()].filter((k) => k.includes(r.json.id as string)).length).toBeGreaterThan(MAX_ROUTES);

    const host = `${'a'.repeat(63)}.${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(61)}`;
    expect(host.length).toBe(253);
    const w = await call(circuitsApi, { method: 'PUT', path: `/v2/workers/${'x'.repeat(63)}`, pathParameters: { authority: 'x'.repeat(63) }, body: { hostname: host, wildcardDomain: host } });
    expect([200, 201]).toContain(w.statusCode);
  });

  it('rejected requests did not pollute Object.prototype', () => {
    expect(Object.prototype).not.toHaveProperty('polluted');
    expect(Object.getOwnPropertyNames(Object.prototype).sort()).toEqual(
      ['__defineGetter__', '__defineSetter__', '__lookupGetter__', '__lookupSetter__', '__proto__', 'constructor', 'hasOwnProperty', 'isPrototypeOf', 'propertyIsEnumerable', 'toLocaleString', 'toString', 'valueOf'].sort(),
    );
  });
});
