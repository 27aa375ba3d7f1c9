// Authentication on every API route, token rotation, and secrets kept out of the logs.
// Logs are captured at DEBUG level, with event logging requested through the
// environment (POWERTOOLS_LOGGER_LOG_EVENT=true, which the functions must override), while the
// handlers succeed and while they fail: wrong tokens, the database unreachable, the database
// refusing a password, etcd refusing credentials.
import { randomUUID } from 'node:crypto';
import { createServer } from 'node:net';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { mockClient } from 'aws-sdk-client-mock';
import { EventBridgeClient, PutEventsCommand } from '@aws-sdk/client-eventbridge';

const TOKEN_A = `rot-a-${randomUUID()}`;
const TOKEN_B = `rot-b-${randomUUID()}`;
const tag = randomUUID().slice(0, 8);
const SHARED_DB_URL = process.env.DATABASE_URL!;
const SHARED_ETCD = process.env.ETCD_ENDPOINTS!;
Object.assign(process.env, {
  API_TOKENS: `${TOKEN_A},${TOKEN_B}`,
  TRAEFIK_ROOT: `traefik-au${tag}`,
  META_PREFIX: `circuitry-au${tag}`,
  LOCK_WAIT_MS: '600',
  DATABASE_TIMEOUT_MS: '1000',
  ETCD_TIMEOUT_MS: '1000',
  AWS_REGION: 'us-east-1',
  AWS_ACCESS_KEY_ID: 'test',
  AWS_SECRET_ACCESS_KEY: 'test',
  POWERTOOLS_LOG_LEVEL: 'DEBUG',
  POWERTOOLS_LOGGER_LOG_EVENT: 'true',
  POWERTOOLS_METRICS_DISABLED: 'true',
});

const { handler: circuitsApi } = await import('../../functions/circuits-api.js');
const { handler: updateRoutesFn } = await import('../../functions/update-routes.js');
const { getRuntime, closeRuntime } = await import('../../lib/runtime.js');
const { resetConfigCache } = await import('../../lib/config.js');
const { call } = await import('../support/lambda.js');
const { route } = await import('../support/rt.js');
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

// ---- log capture ------------------------------------------------------------------------------------

const captured: string[] = [];
const originals = {
  out: process.stdout.write.bind(process.stdout),
  err: process.stderr.write.bind(process.stderr),
  console: { log: console.log, info: console.info, warn: console.warn, error: console.error, debug: console.debug },
};
function startCapture(): void {
  const grab = (chunk: unknown): boolean => {
    captured.push(typeof chunk === 'string' ? chunk : Buffer.from(chunk as Uint8Array).toString('utf8'));
    return true;
  };
  process.stdout.write = grab as typeof process.stdout.write;
  process.stderr.write = grab as typeof process.stderr.write;
  for (const k of Object.keys(originals.console) as Array<keyof typeof originals.console>) {
    console[k] = (...args: unknown[]) => void captured.push(args.map((a) => (a instanceof Error ? `${a.stack}` : typeof a === 'string' ? a : JSON.stringify(a))).join(' '));
  }
}
function stopCapture(): void {
  process.stdout.write = originals.out as typeof process.stdout.write;
  process.stderr.write = originals.err as typeof process.stderr.write;
  Object.assign(console, originals.console);
}
afterEach(stopCapture);

async function closedPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as { port: number }).port;
  await new Promise((r) => s.close(r));
  return port;
}

/** Points the process-wide runtime at another configuration (handlers read it once per cold start). */
async function coldStart(env: Record<string, string | undefined>): Promise<void> {
  await closeRuntime(getRuntime());
  for (const [k, v] of Object.entries(env)) {
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
  resetConfigCache();
}

// ---- fixtures ---------------------------------------------------------------------------------------

const worker = `w-au${tag}`;
let circuitId: string;

beforeAll(async () => {
  const w = await call(circuitsApi, { method: 'PUT', path: `/v2/workers/${worker}`, pathParameters: { authority: worker }, body: { hostname: 'proxy.example.com', wildcardDomain: 'apps.example.com' }, token: TOKEN_A });
  expect(w.statusCode).toBe(201);
  const c = await call(circuitsApi, {
    method: 'POST',
    path: '/v2/circuits',
    body: { worker, protocol: 'http', appMode: 'inference', frontend: { mode: 'port', port: 30000 + Math.floor(Math.random() * 20000) }, healthCheck: null, routes: [route(1)] },
    token: TOKEN_B,
  });
  expect(c.statusCode).toBe(201);
  circuitId = c.json.id as string;
});

type Route = { name: string; fn: typeof circuitsApi; req: () => Req };
const ROUTES: Route[] = [
  { name: 'POST /v2/circuits', fn: circuitsApi, req: () => ({ method: 'POST', path: '/v2/circuits', body: { worker, protocol: 'http', appMode: 'inference', frontend: { mode: 'port', port: 61000 }, routes: [route(2)] } }) },
  { name: 'GET /v2/circuits', fn: circuitsApi, req: () => ({ method: 'GET', path: '/v2/circuits' }) },
  { name: 'GET /v2/circuits/{id}', fn: circuitsApi, req: () => ({ method: 'GET', path: `/v2/circuits/${circuitId}`, pathParameters: { id: circuitId } }) },
  { name: 'DELETE /v2/circuits/{id}', fn: circuitsApi, req: () => ({ method: 'DELETE', path: `/v2/circuits/${circuitId}`, pathParameters: { id: circuitId } }) },
  { name: 'PUT /v2/workers/{authority}', fn: circuitsApi, req: () => ({ method: 'PUT', path: `/v2/workers/${worker}`, pathParameters: { authority: worker }, body: { hostname: 'evil.example.com' } }) },
  { name: 'PUT /v2/circuits/{id}/routes', fn: updateRoutesFn, req: () => ({ method: 'PUT', path: `/v2/circuits/${circuitId}/routes`, pathParameters: { id: circuitId }, body: { routes: [] } }) },
];

const BAD_AUTH: Array<[string, Partial<Req>]> = [
  ['no Authorization header', { token: null }],
  ['an empty header', { token: null, headers: { authorization: '' } }],
  ['a scheme without a token', { token: null, headers: { authorization: 'Bearer' } }],
  ['Basic credentials', { token: null, headers: { authorization: `Basic ${Buffer.from(`x:${TOKEN_A}`).toString('base64')}` } }],
  ['the token without a scheme', { token: null, headers: { authorization: TOKEN_A } }],
  ['two spaces', { token: null, headers: { authorization: `Bearer  ${TOKEN_A}` } }],
  ['a wrong token', { token: `wrong-${randomUUID()}` }],
  ['a truncated token', { token: TOKEN_A.slice(0, -1) }],
  ['a token with a suffix', { token: `${TOKEN_A}0` }],
  ['both tokens joined', { token: `${TOKEN_A},${TOKEN_B}` }],
  ['a token in another case', { token: TOKEN_A.toUpperCase() }],
];

describe('authentication on every route', () => {
  for (const r of ROUTES) {
    it(`${r.name}: 401 problem for missing, malformed and wrong tokens; nothing happens`, async () => {
      const before = await call(circuitsApi, { method: 'GET', path: `/v2/circuits/${circuitId}`, pathParameters: { id: circuitId }, token: TOKEN_A });
      for (const [label, over] of BAD_AUTH) {
        const res = await call(r.fn, { ...r.req(), ...over, headers: { ...over.headers } });
        expect(res.statusCode, label).toBe(401);
        expect(res.headers['content-type'], label).toBe('application/problem+json');
        expect(res.headers['www-authenticate'], label).toMatch(/^Bearer/);
        expect(res.json, label).toMatchObject({ status: 401, title: 'Unauthorized', errors: [{ field: 'header.authorization' }] });
        expect(JSON.stringify(res), label).not.toContain(TOKEN_A);
      }
      const after = await call(circuitsApi, { method: 'GET', path: `/v2/circuits/${circuitId}`, pathParameters: { id: circuitId }, token: TOKEN_A });
      expect(after.json.generation).toBe(before.json.generation);
      expect(eb.commandCalls(PutEventsCommand)).toHaveLength(0);
    });
  }

  it('authentication comes before routing and validation', async () => {
    for (const req of [
      { method: 'GET', path: '/v2/nothing-here' },
      { method: 'POST', path: '/v2/circuits', rawBody: '{"not json' },
      { method: 'PUT', path: '/v2/circuits/not-a-uuid/routes', pathParameters: { id: 'not-a-uuid' }, body: { routes: 'x' } },
    ] as Req[]) {
      const res = await call(req.path.endsWith('/routes') ? updateRoutesFn : circuitsApi, { ...req, token: 'wrong-token-0123456789abc' });
      expect(res.statusCode).toBe(401);
    }
  });

  it('rotation: both configured tokens are accepted on every route, a third is not', async () => {
    for (const token of [TOKEN_A, TOKEN_B]) {
      expect((await call(circuitsApi, { method: 'GET', path: '/v2/circuits', token })).statusCode).toBe(200);
      expect((await call(circuitsApi, { method: 'GET', path: `/v2/circuits/${circuitId}`, pathParameters: { id: circuitId }, token })).statusCode).toBe(200);
      expect((await call(updateRoutesFn, { method: 'PUT', path: `/v2/circuits/${circuitId}/routes`, pathParameters: { id: circuitId }, body: { routes: [route(3)] }, token })).statusCode).toBe(200);
      expect((await call(circuitsApi, { method: 'PUT', path: `/v2/workers/${worker}`, pathParameters: { authority: worker }, body: { hostname: 'proxy.example.com', wildcardDomain: 'apps.example.com' }, token })).statusCode).toBe(200);
    }
    expect((await call(circuitsApi, { method: 'GET', path: '/v2/circuits', token: `rot-c-${randomUUID()}` })).statusCode).toBe(401);
  });
});

describe('secrets never reach the logs', () => {
  const DB_PASSWORD = `Db-Pw-${randomUUID()}`;
  const ETCD_PASSWORD = `Etcd-Pw-${randomUUID()}`;
  const secrets = () => [TOKEN_A, TOKEN_B, DB_PASSWORD, ETCD_PASSWORD];
  const assertClean = (label: string) => {
    const text = captured.join('\n');
    expect(text.length, `${label}: something was logged`).toBeGreaterThan(0);
    if (process.env.DUMP_LOGS) process.stderr.write(`\n===== ${label}\n${text}\n`);
    for (const s of secrets()) expect(text.includes(s), `${label}: a secret was logged`).toBe(false);
    // No header map, no bearer credential (the fixed text "Bearer <token>" of a 401 detail aside).
    expect(/"authorization"\s*:/i.test(text), `${label}: an Authorization header was logged`).toBe(false);
    expect(/Bearer (?!<token>)\S/.test(text), `${label}: a bearer credential was logged`).toBe(false);
    expect(text).not.toMatch(/Lambda invocation event/);
  };

  it('while requests succeed, and while they are refused', async () => {
    captured.length = 0;
    startCapture();
    await call(circuitsApi, { method: 'GET', path: '/v2/circuits', token: TOKEN_A });
    await call(updateRoutesFn, { method: 'PUT', path: `/v2/circuits/${circuitId}/routes`, pathParameters: { id: circuitId }, body: { routes: [route(4)] }, token: TOKEN_B });
    for (const [, over] of BAD_AUTH) await call(circuitsApi, { method: 'GET', path: '/v2/circuits', ...over });
    await call(circuitsApi, { method: 'POST', path: '/v2/circuits', rawBody: `{"token":"${TOKEN_A}",`, token: TOKEN_A });
    await call(circuitsApi, { method: 'POST', path: '/v2/circuits', body: { worker: TOKEN_B }, token: TOKEN_A });
    stopCapture();
    assertClean('ordinary requests');
    expect(captured.join('\n')).toMatch(/request rejected/); // the capture did see the logger
  });

  it('while the database is unreachable (503), with a password in DATABASE_URL', async () => {
    const url = new URL(SHARED_DB_URL);
    url.password = DB_PASSWORD;
    url.port = String(await closedPort());
    await coldStart({ DATABASE_URL: url.toString() });
    captured.length = 0;
    startCapture();
    const list = await call(circuitsApi, { method: 'GET', path: '/v2/circuits', token: TOKEN_A });
    const put = await call(updateRoutesFn, { method: 'PUT', path: `/v2/circuits/${circuitId}/routes`, pathParameters: { id: circuitId }, body: { routes: [route(5)] }, token: TOKEN_A });
    stopCapture();
    expect(list.statusCode).toBe(503);
    expect(put.statusCode).toBe(503);
    expect(put.headers['retry-after']).toMatch(/^\d+$/);
    assertClean('database unreachable');
  });

  it('while the database refuses the password (500 misconfigured)', async () => {
    const url = new URL(SHARED_DB_URL);
    url.password = DB_PASSWORD;
    await coldStart({ DATABASE_URL: url.toString() });
    captured.length = 0;
    startCapture();
    const res = await call(circuitsApi, { method: 'GET', path: '/v2/circuits', token: TOKEN_A });
    stopCapture();
    expect(res.statusCode).toBe(500);
    expect(res.json.detail).toMatch(/database refused its credentials/);
    assertClean('database password refused');
    expect(captured.join('\n')).toMatch(/password authentication failed/); // the log says why
  });

  it('while etcd refuses the credentials (500 misconfigured)', async () => {
    await coldStart({ DATABASE_URL: SHARED_DB_URL, ETCD_ENDPOINTS: SHARED_ETCD, ETCD_USERNAME: 'circuitry', ETCD_PASSWORD: ETCD_PASSWORD });
    captured.length = 0;
    startCapture();
    const get = await call(circuitsApi, { method: 'GET', path: `/v2/circuits/${circuitId}`, pathParameters: { id: circuitId }, token: TOKEN_A });
    const put = await call(updateRoutesFn, { method: 'PUT', path: `/v2/circuits/${circuitId}/routes`, pathParameters: { id: circuitId }, body: { routes: [route(6)] }, token: TOKEN_A });
    stopCapture();
    // The shared etcd has authentication disabled: it refuses any username/password login
    // (FAILED_PRECONDITION "authentication is not enabled": reported as etcd unavailable).
    expect([500, 503]).toContain(get.statusCode);
    expect([500, 503]).toContain(put.statusCode);
    assertClean('etcd credentials refused');
    await coldStart({ ETCD_USERNAME: undefined, ETCD_PASSWORD: undefined });
  });
});
