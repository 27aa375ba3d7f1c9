// The Lambda handlers with API Gateway HTTP API v2 and EventBridge events, on the real etcd and
// Postgres. Only EventBridge is mocked. Every documented status code is exercised.
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { mockClient } from 'aws-sdk-client-mock';
import { EventBridgeClient, PutEventsCommand } from '@aws-sdk/client-eventbridge';

const tag = randomUUID().slice(0, 8);
Object.assign(process.env, {
  TRAEFIK_ROOT: `traefik-h${tag}`,
  META_PREFIX: `circuitry-h${tag}`,
  LOCK_WAIT_MS: '600',
  AWS_REGION: 'us-east-1',
  AWS_ACCESS_KEY_ID: 'test',
  AWS_SECRET_ACCESS_KEY: 'test',
  POWERTOOLS_LOG_LEVEL: 'ERROR',
  POWERTOOLS_METRICS_DISABLED: 'true',
});

const { handler: circuitsApi } = await import('../../functions/circuits-api.js');
const { handler: updateRoutesFn } = await import('../../functions/update-routes.js');
const { handler: unloadFn } = await import('../../functions/unload.js');
const { getRuntime, closeRuntime, Invocation } = await import('../../lib/runtime.js');
const { acquire } = await import('../../lib/etcd/index.js');
const { epochKey, lockPrefix } = await import('../../lib/etcd/index.js');
const { workerRoot } = await import('../../lib/traefik/names.js');
const { keysUnder, route } = await import('../support/rt.js');
const { call, eventBridgeEvent, lambdaContext } = await import('../support/lambda.js');

const eb = mockClient(EventBridgeClient);
beforeEach(() => {
  eb.reset();
  eb.on(PutEventsCommand).callsFake((input: { Entries: unknown[] }) => ({
    FailedEntryCount: 0,
    Entries: input.Entries.map(() => ({ EventId: randomUUID() })),
  }));
});
afterAll(async () => {
  eb.restore();
  await closeRuntime(getRuntime());
});

let worker: string;
let portSeq = 20000 + Math.floor(Math.random() * 20000);
const rt = () => getRuntime();
const rootKeys = async (w = worker) => keysUnder(rt().etcd, `${workerRoot(rt().config.traefikRoot, w)}/`);

beforeAll(async () => {
  worker = `w-${tag}`;
  const r = await call(circuitsApi, {
    method: 'PUT',
    path: `/v2/workers/${worker}`,
    pathParameters: { authority: worker },
    body: { hostname: 'proxy.example.com', wildcardDomain: 'apps.example.com', tls: false },
  });
  expect(r.statusCode).toBe(201);
});

async function createCircuit(over: Record<string, unknown> = {}) {
  const body = {
    worker,
    protocol: 'http',
    appMode: 'inference',
    frontend: { mode: 'port', port: portSeq++ },
    healthCheck: null,
    routes: [route(0), route(1)],
    ...over,
  };
  return call(circuitsApi, { method: 'POST', path: '/v2/circuits', body });
}

const putRoutes = (id: string, body: unknown, headers: Record<string, string> = {}) =>
  call(updateRoutesFn, { method: 'PUT', path: `/v2/circuits/${id}/routes`, pathParameters: { id }, body, headers });

const unloadEvent = (circuitId: unknown) => unloadFn(eventBridgeEvent('CircuitUnloadRequested', { circuitId }) as never, lambdaContext()) as Promise<{ status: string }>;

describe('authentication', () => {
  it('401 problem without a token, with a wrong one; any of several configured tokens works', async () => {
    for (const token of [null, 'wrong-token-0123456789abcdef']) {
      const r = await call(circuitsApi, { method: 'GET', path: '/v2/circuits', token });
      expect(r.statusCode).toBe(401);
      expect(r.headers['content-type']).toBe('application/problem+json');
      expect(r.json).toMatchObject({ status: 401, title: 'Unauthorized' });
    }
  });
});

describe('PUT /v2/workers/{authority}', () => {
  it('200 on update, 400 naming the field on a bad hostname or authority', async () => {
    const ok = await call(circuitsApi, { method: 'PUT', path: `/v2/workers/${worker}`, pathParameters: { authority: worker }, body: { hostname: 'proxy.example.com', wildcardDomain: 'apps.example.com' } });
    expect(ok.statusCode).toBe(200);
    const bad = await call(circuitsApi, { method: 'PUT', path: `/v2/workers/${worker}`, pathParameters: { authority: worker }, body: { hostname: 'evil`) || Host(`x' } });
    expect(bad.statusCode).toBe(400);
    expect(bad.json.errors?.[0]?.field).toBe('hostname');
    // A change that would strand its live wildcard circuits is refused.
    expect((await createCircuit({ frontend: { mode: 'wildcard', subdomain: `s${tag}` } })).statusCode).toBe(201);
    const strand = await call(circuitsApi, { method: 'PUT', path: `/v2/workers/${worker}`, pathParameters: { authority: worker }, body: { hostname: 'proxy.example.com' } });
    expect(strand.statusCode).toBe(409);
    expect(strand.json.detail).toMatch(/wildcardDomain/);
    const badAuth = await call(circuitsApi, { method: 'PUT', path: '/v2/workers/Bad_Name', pathParameters: { authority: 'Bad_Name' }, body: { hostname: 'a.example.com' } });
    expect(badAuth.statusCode).toBe(400);
    expect(badAuth.json.errors?.[0]?.field).toBe('path.authority');
  });
});

describe('POST /v2/circuits', () => {
  it('201 with the circuit, published to etcd', async () => {
    const r = await createCircuit();
    expect(r.statusCode).toBe(201);
    expect(r.json).toMatchObject({ generation: 1, worker, sync: { generation: 1, appliedGeneration: 1 }, publish: { applied: true } });
    const keys = await rootKeys();
    expect([...keys.keys()].some((k) => k.includes(`bai_router_${r.json.id}/rule`))).toBe(true);
  });

  it('POST is idempotent: the same id and body answers the stored circuit (200), even after its routes changed; another body is a 409', async () => {
    const id = randomUUID();
    const body = { id, frontend: { mode: 'port', port: portSeq++ }, routes: [route(7), route(8)] };
    const first = await createCircuit(body);
    expect(first.statusCode).toBe(201);
    const retry = await createCircuit(body);
    expect(retry.statusCode).toBe(200);
    expect(retry.json).toMatchObject({ id, generation: 1, publish: { applied: true } });
    expect((await putRoutes(id, { routes: [route(9)] })).statusCode).toBe(200);
    const late = await createCircuit(body); // the client's retry arrives after somebody changed the routes
    expect(late.statusCode).toBe(200);
    expect(late.json).toMatchObject({ id, generation: 2 });
    const other = await createCircuit({ ...body, routes: [route(7)] });
    expect(other.statusCode).toBe(409);
    expect(other.json.type).toBe('urn:circuitry:conflict:exists');
  });

  it('409 when the id exists, was deleted before, or the port is taken', async () => {
    const a = await createCircuit();
    const id = a.json.id as string;
    expect((await createCircuit({ id, routes: [route(3)] })).statusCode).toBe(409);
    const port = (a.json.frontend as { port: number }).port;
    const taken = await createCircuit({ frontend: { mode: 'port', port } });
    expect(taken.statusCode).toBe(409);
    expect(taken.json.detail).toMatch(/port/);
    await unloadEvent(id);
    const reused = await createCircuit({ id });
    expect(reused.statusCode).toBe(409);
    expect(reused.json.detail).toMatch(/deleted/);
    // The deleted circuit's port is free again.
    expect((await createCircuit({ frontend: { mode: 'port', port } })).statusCode).toBe(201);
  });

  it('400 naming the field for unknown fields and bad values; 422 for an unregistered worker; nothing written', async () => {
    const before = await rootKeys();
    const unknown = await createCircuit({ extra: 1 });
    expect(unknown.statusCode).toBe(400);
    const badRoute = await createCircuit({ routes: [route(0, { port: 70000 })] });
    expect(badRoute.statusCode).toBe(400);
    expect(badRoute.json.errors?.[0]?.field).toBe('routes.0.port');
    const noWorker = await createCircuit({ worker: 'nobody' });
    expect(noWorker.statusCode).toBe(422);
    expect(noWorker.json.errors?.[0]?.field).toBe('worker');
    expect([...(await rootKeys())].sort()).toEqual([...before].sort());
  });

  it('413 for an oversized body, 415 for a non-JSON content type, 400 for malformed JSON', async () => {
    const big = await call(circuitsApi, { method: 'POST', path: '/v2/circuits', rawBody: `{"x":"${'a'.repeat(1024 * 1024)}"}` });
    expect(big.statusCode).toBe(413);
    const text = await call(circuitsApi, { method: 'POST', path: '/v2/circuits', rawBody: '{}', headers: { 'content-type': 'text/plain' } });
    expect(text.statusCode).toBe(415);
    const broken = await call(circuitsApi, { method: 'POST', path: '/v2/circuits', rawBody: '{"worker":' });
    expect(broken.statusCode).toBe(400);
    expect(broken.headers['content-type']).toBe('application/problem+json');
  });
});

describe('GET /v2/circuits and /v2/circuits/{id}', () => {
  it('pages with a cursor; reads one with health and sync; 404 for unknown; 400 for a bad id', async () => {
    const ids = [];
    for (let i = 0; i < 3; i++) ids.push((await createCircuit()).json.id as string);
    const seen: string[] = [];
    let cursor: string | undefined;
    do {
      const r = await call(circuitsApi, { method: 'GET', path: '/v2/circuits', query: { limit: '2', worker, ...(cursor ? { cursor } : {}) } });
      expect(r.statusCode).toBe(200);
      seen.push(...(r.json.items as Array<{ id: string }>).map((x) => x.id));
      cursor = (r.json.nextCursor as string | null) ?? undefined;
    } while (cursor !== undefined);
    for (const id of ids) expect(seen).toContain(id);
    expect(new Set(seen).size).toBe(seen.length);

    const one = await call(circuitsApi, { method: 'GET', path: `/v2/circuits/${ids[0]}`, pathParameters: { id: ids[0]! } });
    expect(one.statusCode).toBe(200);
    expect(one.json.sync).toEqual({ generation: 1, appliedGeneration: 1 });
    expect((one.json.routes as Array<{ health: unknown }>)[0]!.health).toMatchObject({ status: 'unknown', consecutiveFailures: 0 });

    const missing = randomUUID();
    expect((await call(circuitsApi, { method: 'GET', path: `/v2/circuits/${missing}`, pathParameters: { id: missing } })).statusCode).toBe(404);
    expect((await call(circuitsApi, { method: 'GET', path: '/v2/circuits/nope', pathParameters: { id: 'nope' } })).statusCode).toBe(400);
    expect((await call(circuitsApi, { method: 'GET', path: '/v2/circuits', query: { limit: '0' } })).statusCode).toBe(400);
    expect((await call(circuitsApi, { method: 'GET', path: '/v2/nothing' })).statusCode).toBe(404);
  });
});

describe('DELETE /v2/circuits/{id}', () => {
  it('202 and publishes CircuitUnloadRequested; 404 for an unknown circuit; 503 when EventBridge keeps failing', async () => {
    const id = (await createCircuit()).json.id as string;
    const r = await call(circuitsApi, { method: 'DELETE', path: `/v2/circuits/${id}`, pathParameters: { id } });
    expect(r.statusCode).toBe(202);
    const sent = eb.commandCalls(PutEventsCommand);
    expect(sent).toHaveLength(1);
    const entry = sent[0]!.args[0].input.Entries![0]!;
    expect(entry).toMatchObject({ DetailType: 'CircuitUnloadRequested', Source: 'circuitry.test', EventBusName: 'test-bus' });
    expect(JSON.parse(entry.Detail!)).toEqual({ circuitId: id });
    const missing = randomUUID();
    expect((await call(circuitsApi, { method: 'DELETE', path: `/v2/circuits/${missing}`, pathParameters: { id: missing } })).statusCode).toBe(404);
  });

  it('retries failed entries and succeeds when EventBridge recovers', async () => {
    const id = (await createCircuit()).json.id as string;
    eb.on(PutEventsCommand)
      .resolvesOnce({ FailedEntryCount: 1, Entries: [{ ErrorCode: 'ThrottlingException', ErrorMessage: 'slow down' }] })
      .resolves({ FailedEntryCount: 0, Entries: [{ EventId: 'e1' }] });
    const r = await call(circuitsApi, { method: 'DELETE', path: `/v2/circuits/${id}`, pathParameters: { id } });
    expect(r.statusCode).toBe(202);
    expect(eb.commandCalls(PutEventsCommand)).toHaveLength(2);
  });
});

describe('PUT /v2/circuits/{id}/routes', () => {
  it('200 with the new generation and applied: true; keys follow', async () => {
    const id = (await createCircuit()).json.id as string;
    const r = await putRoutes(id, { routes: [route(5)] }, { 'if-match': '"1"' });
    expect(r.statusCode).toBe(200);
    expect(r.json).toEqual({ id, generation: 2, applied: true });
    expect(r.headers.etag).toBe('"2"');
    const urls = [...(await rootKeys()).entries()].filter(([k]) => k.includes(`bai_service_${id}/`) && k.endsWith('/url'));
    expect(urls.map(([, v]) => v)).toEqual(['http://127.0.0.6:20005/']);
  });

  it('409 on an If-Match mismatch, 404 for unknown or deleted circuits, 400 for bad input; nothing written', async () => {
    const id = (await createCircuit()).json.id as string;
    const before = await rootKeys();
    expect((await putRoutes(id, { routes: [route(5)] }, { 'if-match': '7' })).statusCode).toBe(409);
    expect((await putRoutes(id, { routes: [route(5)] }, { 'if-match': 'abc' })).statusCode).toBe(400);
    const dup = route(1);
    const dupR = await putRoutes(id, { routes: [dup, dup] });
    expect(dupR.statusCode).toBe(400);
    expect(dupR.json.errors?.[0]?.field).toBe('routes.1.routeId');
    const ratio = await putRoutes(id, { routes: [route(1, { trafficRatio: 0 })] });
    expect(ratio.json.errors?.[0]?.field).toBe('routes.0.trafficRatio');
    expect((await putRoutes(id, { routes: [route(1, { host: '10.0.0.1`)' })] })).statusCode).toBe(400);
    expect([...(await rootKeys())].sort()).toEqual([...before].sort());
    const missing = randomUUID();
    expect((await putRoutes(missing, { routes: [] })).statusCode).toBe(404);
    await unloadEvent(id);
    expect((await putRoutes(id, { routes: [route(1)] })).statusCode).toBe(404);
  });

  it('503 with Retry-After when the lock is not acquired within LOCK_WAIT_MS; nothing changed', async () => {
    const id = (await createCircuit()).json.id as string;
    const holder = new Invocation(rt());
    const held = await acquire(await holder.session(), { prefix: lockPrefix(rt().config.metaPrefix, id), epochKey: epochKey(rt().config.metaPrefix), waitMs: 100, rpcTimeoutMs: 3000 });
    try {
      const r = await putRoutes(id, { routes: [route(9)] });
      expect(r.statusCode).toBe(503);
      expect(r.headers['retry-after']).toMatch(/^\d+$/);
      expect(r.headers['content-type']).toBe('application/problem+json');
    } finally {
      await held.lock.release(3000);
      await holder.close();
    }
    const after = await call(circuitsApi, { method: 'GET', path: `/v2/circuits/${id}`, pathParameters: { id } });
    expect(after.json.generation).toBe(1);
  });
});

describe('unload (EventBridge)', () => {
  it('unloads; a duplicate, an unknown circuit and a malformed event are no-ops that do not throw', async () => {
    const id = (await createCircuit()).json.id as string;
    expect((await unloadEvent(id)).status).toBe('unloaded');
    expect((await unloadEvent(id)).status).toBe('already-unloaded');
    expect((await unloadEvent(randomUUID())).status).toBe('unknown-circuit');
    expect((await unloadEvent('not-a-uuid')).status).toBe('malformed');
    expect([...(await rootKeys()).keys()].filter((k) => k.includes(id))).toEqual([]);
  });

  it('an unload racing update-routes leaves no key of the circuit, whatever the order', async () => {
    for (let i = 0; i < 5; i++) {
      const id = (await createCircuit()).json.id as string;
      const results = await Promise.all([
        putRoutes(id, { routes: [route(10 + i), route(11 + i)] }),
        unloadEvent(id),
        unloadEvent(id),
        putRoutes(id, { routes: [route(12 + i)] }),
      ]);
      expect(results[1]).toMatchObject({ status: expect.stringMatching(/unloaded/) });
      for (const r of [results[0], results[3]] as Array<{ statusCode: number }>) expect([200, 404]).toContain(r.statusCode);
      expect([...(await rootKeys()).keys()].filter((k) => k.includes(id))).toEqual([]);
    }
  });
});
