// The API's contract (lib/http/contract.ts, published as docs/openapi.json) against what the
// handlers really do: the committed document is what the contract generates; every answer of a
// scripted tour of the API (every route, every documented status the tour can reach) has a
// documented status, content type and a body valid against the documented schema; and every
// documented answer is reached, or named below as reached elsewhere.
import fs from 'node:fs';
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { mockClient } from 'aws-sdk-client-mock';
import { EventBridgeClient, PutEventsCommand } from '@aws-sdk/client-eventbridge';
import { generateOpenApi, OPENAPI_FILE, render } from '../../harness/docs/openapi.js';

const tag = randomUUID().slice(0, 8);
Object.assign(process.env, {
  TRAEFIK_ROOT: `traefik-c${tag}`,
  META_PREFIX: `circuitry-c${tag}`,
  LOCK_WAIT_MS: '300',
  AWS_REGION: 'us-east-1',
  AWS_ACCESS_KEY_ID: 'test',
  AWS_SECRET_ACCESS_KEY: 'test',
  POWERTOOLS_LOG_LEVEL: 'CRITICAL',
  POWERTOOLS_METRICS_DISABLED: 'true',
});
const { handler: circuitsApi } = await import('../../functions/circuits-api.js');
const { handler: updateRoutesFn } = await import('../../functions/update-routes.js');
const { getRuntime, closeRuntime, Invocation } = await import('../../lib/runtime.js');
const { acquire, epochKey, lockPrefix } = await import('../../lib/etcd/index.js');
const { API, UNROUTED } = await import('../../lib/http/index.js');
const { route } = await import('../support/rt.js');
const { apiEvent, lambdaContext } = await import('../support/lambda.js');
type ApiRequest = Parameters<typeof apiEvent>[0];

/** Documented answers reached by other test files (they need a dependency stopped). */
const ELSEWHERE: Record<string, string> = {
  'POST /v2/circuits 503': 'dependency-failures.test.ts (PostgreSQL down)',
  'GET /v2/circuits 503': 'dependency-failures.test.ts (PostgreSQL down)',
  'GET /v2/circuits/{id} 503': 'dependency-failures.test.ts (etcd and PostgreSQL down)',
  'DELETE /v2/circuits/{id} 503': 'dependency-failures.test.ts (PostgreSQL down)',
  'PUT /v2/workers/{authority} 503': 'dependency-failures.test.ts (PostgreSQL down)',
  'GET /v2/health 503': 'dependency-failures.test.ts (etcd down, PostgreSQL down)',
  'GET /v2/status 503': 'the same dependency paths as GET /v2/circuits',
  'GET /v2/locks 503': 'the same dependency path as every etcd read (dependency-failures.test.ts)',
  'GET /v2/transitions 503': 'the same dependency path as every database read (dependency-failures.test.ts)',
};

const eb = mockClient(EventBridgeClient);
eb.on(PutEventsCommand).callsFake((input: { Entries: unknown[] }) => ({ FailedEntryCount: 0, Entries: input.Entries.map(() => ({ EventId: randomUUID() })) }));
afterAll(async () => {
  eb.restore();
  await closeRuntime(getRuntime());
});

const doc = generateOpenApi('0.1.0') as {
  paths: Record<string, Record<string, { responses: Record<string, { content?: Record<string, { schema: unknown }> }> }>>;
  components: { schemas: Record<string, unknown> };
};
const ajv = new Ajv2020({ strict: false, validateFormats: false, allErrors: true });
for (const [name, schema] of Object.entries(doc.components.schemas)) ajv.addSchema(schema as object, `#/components/schemas/${name}`);

interface Seen {
  op: string;
  status: number;
  problems: string[];
}
const seen: Seen[] = [];

const templates = [...API.map((r) => ({ method: r.method, path: r.path })), { method: 'PUT', path: '/v2/circuits/{id}/routes' }];
const templateOf = (p: string): string | null => {
  for (const t of templates) if (new RegExp(`^${t.path.replace(/\{[^}]+\}/g, '[^/]+')}$`).test(p)) return t.path;
  return null;
};

/** Calls the function API Gateway would route to, and checks the answer against the document. */
async function tour(r: ApiRequest): Promise<{ statusCode: number; json: Record<string, unknown> }> {
  const isRoutes = r.method === 'PUT' && /^\/v2\/circuits\/[^/]+\/routes$/.test(r.path);
  const fn = isRoutes ? updateRoutesFn : circuitsApi;
  const res = (await fn(apiEvent(r) as never, lambdaContext() as never)) as { statusCode: number; headers?: Record<string, string>; body?: string };
  const tpl = templateOf(r.path);
  const op = `${r.method} ${tpl ?? r.path}`;
  const problems: string[] = [];
  const documented = tpl === null ? undefined : doc.paths[tpl]?.[r.method.toLowerCase()];
  const answer = documented?.responses[String(res.statusCode)] ?? (documented === undefined || res.statusCode === 405 ? (UNROUTED[res.statusCode] ? { content: { 'application/problem+json': { schema: { $ref: '#/components/schemas/Problem' } } } } : undefined) : undefined);
  if (answer === undefined) problems.push(`status ${res.statusCode} is not documented`);
  const type = (res.headers?.['content-type'] ?? '').split(';')[0]!;
  const content = answer?.content;
  if (content !== undefined) {
    if (!(type in content)) problems.push(`content type ${type} is not documented (${Object.keys(content).join(', ')})`);
    else if (type === 'text/html') {
      if (!/^<!doctype html>/i.test(res.body ?? '')) problems.push('body is not an HTML document');
    } else {
      const validate = ajv.compile(content[type]!.schema as object);
      if (!validate(JSON.parse(res.body ?? 'null'))) problems.push(`body does not match the schema: ${ajv.errorsText(validate.errors)}`);
    }
  }
  seen.push({ op: documented === undefined && tpl === null ? `unrouted ${res.statusCode}` : op, status: res.statusCode, problems });
  return { statusCode: res.statusCode, json: res.body && type !== 'text/html' ? (JSON.parse(res.body) as Record<string, unknown>) : {} };
}

describe('the API contract', () => {
  it('docs/openapi.json is what the contract generates (npm run openapi)', () => {
    expect(fs.readFileSync(OPENAPI_FILE, 'utf8')).toBe(render(generateOpenApi(JSON.parse(fs.readFileSync('package.json', 'utf8')).version)));
  });

  describe('a tour of the API', () => {
    const worker = `w-${tag}`;
    let id: string;
    let port = 20000 + Math.floor(Math.random() * 20000);
    const big = 'x'.repeat(1024 * 1024 + 10);
    const body = (over: Record<string, unknown> = {}) => ({ worker, protocol: 'http', appMode: 'interactive', frontend: { mode: 'port', port: port++ }, routes: [route(1)], ...over });

    beforeAll(async () => {
      // workers
      expect((await tour({ method: 'PUT', path: `/v2/workers/${worker}`, pathParameters: { authority: worker }, body: { hostname: 'proxy.example.com', wildcardDomain: 'apps.example.com' } })).statusCode).toBe(201);
      await tour({ method: 'PUT', path: `/v2/workers/${worker}`, pathParameters: { authority: worker }, body: { hostname: 'proxy.example.com', wildcardDomain: 'apps.example.com' } });
      await tour({ method: 'PUT', path: `/v2/workers/${worker}`, pathParameters: { authority: worker }, body: { hostname: 'Not A Host' } });
      await tour({ method: 'PUT', path: `/v2/workers/${worker}`, pathParameters: { authority: worker }, body: { hostname: 'proxy.example.com' }, token: null });
      await tour({ method: 'PUT', path: `/v2/workers/${worker}`, pathParameters: { authority: worker }, rawBody: big, headers: { 'content-type': 'application/json' } });
      await tour({ method: 'PUT', path: `/v2/workers/${worker}`, pathParameters: { authority: worker }, rawBody: 'hostname=x', headers: { 'content-type': 'text/plain' } });
      // circuits
      const created = await tour({ method: 'POST', path: '/v2/circuits', body: body({ id: randomUUID() }) });
      id = created.json.id as string;
      await tour({ method: 'POST', path: '/v2/circuits', body: { ...created.json, publish: undefined, generation: undefined } as never }); // not the same body: 400 (unknown fields)
      const again = body({ id: randomUUID() });
      await tour({ method: 'POST', path: '/v2/circuits', body: again });
      await tour({ method: 'POST', path: '/v2/circuits', body: again }); // 200: the same request
      await tour({ method: 'POST', path: '/v2/circuits', body: { ...again, routes: [] } }); // 409
      await tour({ method: 'POST', path: '/v2/circuits', body: body({ worker: 'w-nobody' }) }); // 422
      await tour({ method: 'POST', path: '/v2/circuits', body: { nope: 1 } });
      await tour({ method: 'POST', path: '/v2/circuits', body: body(), token: null });
      await tour({ method: 'POST', path: '/v2/circuits', rawBody: big, headers: { 'content-type': 'application/json' } });
      await tour({ method: 'POST', path: '/v2/circuits', rawBody: '{}', headers: { 'content-type': 'text/plain' } });
      // with a wildcard circuit on it, removing the domain would strand it: 409
      await tour({ method: 'POST', path: '/v2/circuits', body: body({ frontend: { mode: 'wildcard', subdomain: `s${tag}` } }) });
      await tour({ method: 'PUT', path: `/v2/workers/${worker}`, pathParameters: { authority: worker }, body: { hostname: 'proxy.example.com' } });
      await tour({ method: 'GET', path: '/v2/circuits', query: { limit: '2' } });
      await tour({ method: 'GET', path: '/v2/circuits', query: { limit: '0' } });
      await tour({ method: 'GET', path: '/v2/circuits', token: null });
      await tour({ method: 'GET', path: `/v2/circuits/${id}`, pathParameters: { id } });
      await tour({ method: 'GET', path: `/v2/circuits/${randomUUID()}`, pathParameters: { id: randomUUID() } });
      await tour({ method: 'GET', path: '/v2/circuits/nope', pathParameters: { id: 'nope' } });
      await tour({ method: 'GET', path: `/v2/circuits/${id}`, pathParameters: { id }, token: null });
      // routes
      await tour({ method: 'PUT', path: `/v2/circuits/${id}/routes`, pathParameters: { id }, body: { routes: [route(2)] } });
      await tour({ method: 'PUT', path: `/v2/circuits/${id}/routes`, pathParameters: { id }, body: { routes: [route(3)] }, headers: { 'if-match': '"1"' } });
      await tour({ method: 'PUT', path: `/v2/circuits/${id}/routes`, pathParameters: { id }, body: { routes: [route(3, { host: '8.8.8.8' })] } });
      await tour({ method: 'PUT', path: `/v2/circuits/${randomUUID()}/routes`, pathParameters: { id: randomUUID() }, body: { routes: [] } });
      await tour({ method: 'PUT', path: `/v2/circuits/${id}/routes`, pathParameters: { id }, body: { routes: 'x' } });
      await tour({ method: 'PUT', path: `/v2/circuits/${id}/routes`, pathParameters: { id }, body: { routes: [] }, token: null });
      await tour({ method: 'PUT', path: `/v2/circuits/${id}/routes`, pathParameters: { id }, rawBody: big, headers: { 'content-type': 'application/json' } });
      await tour({ method: 'PUT', path: `/v2/circuits/${id}/routes`, pathParameters: { id }, rawBody: '{}', headers: { 'content-type': 'text/plain' } });
      const holder = new Invocation(getRuntime());
      try {
        const held = await acquire(await holder.session(), { prefix: lockPrefix(getRuntime().config.metaPrefix, id), epochKey: epochKey(getRuntime().config.metaPrefix), waitMs: 1000, rpcTimeoutMs: 1000 });
        await tour({ method: 'PUT', path: `/v2/circuits/${id}/routes`, pathParameters: { id }, body: { routes: [route(4)] } }); // 503: the lock is busy
        await held.lock.release(1000);
      } finally {
        await holder.close();
      }
      // the operator routes
      await tour({ method: 'GET', path: '/v2/health', token: null });
      await tour({ method: 'GET', path: '/v2/ui', token: null });
      await tour({ method: 'GET', path: '/v2/ui', token: null, query: { token: 'x' } });
      for (const p of ['/v2/status', '/v2/locks', '/v2/transitions']) {
        await tour({ method: 'GET', path: p });
        await tour({ method: 'GET', path: p, query: { bogus: '1' } });
        await tour({ method: 'GET', path: p, token: null });
      }
      // deletion
      await tour({ method: 'DELETE', path: `/v2/circuits/${id}`, pathParameters: { id } });
      await tour({ method: 'DELETE', path: `/v2/circuits/${randomUUID()}`, pathParameters: { id: randomUUID() } });
      await tour({ method: 'DELETE', path: '/v2/circuits/nope', pathParameters: { id: 'nope' } });
      await tour({ method: 'DELETE', path: `/v2/circuits/${id}`, pathParameters: { id }, token: null });
      // neither route nor method
      await tour({ method: 'GET', path: '/v2/nothing' });
      await tour({ method: 'PATCH', path: `/v2/circuits/${id}` });
    }, 60_000);

    it('every answer is documented: its status, content type and body', () => {
      expect(seen.filter((s) => s.problems.length > 0).map((s) => `${s.op} ${s.status}: ${s.problems.join('; ')}`)).toEqual([]);
    });

    it('every documented answer was reached (or is named as reached elsewhere)', () => {
      const reached = new Set(seen.map((s) => `${s.op} ${s.status}`));
      const missing: string[] = [];
      for (const r of API) {
        for (const status of Object.keys(r.responses)) {
          const k = `${r.method} ${r.path} ${status}`;
          if (!reached.has(k) && ELSEWHERE[k] === undefined) missing.push(k);
        }
      }
      for (const status of Object.keys(UNROUTED)) if (![...reached].some((k) => k.endsWith(` ${status}`))) missing.push(`unrouted ${status}`);
      expect(missing).toEqual([]);
    });
  });
});
