// POST /v2/circuits, GET /v2/circuits, GET|DELETE /v2/circuits/{id}, PUT /v2/workers/{authority},
// GET /v2/health and GET /v2/ui (the status page; no token for either), and a problem+json answer
// for every other route.
import httpRouterHandler from '@middy/http-router';
import { httpHandler, json, type HttpFn } from '../lib/http/handler.js';
import { HttpProblem } from '../lib/http/problem.js';
import { authorityParam, circuitIdParam, createCircuitBody, listQuery, locksQuery, noQuery, transitionsQuery, workerBody } from '../lib/http/requests.js';
import { circuitJson, syncJson, workerJson } from '../lib/http/views.js';
import { statusPage } from '../lib/http/ui/page.js';
import { createAndPublish } from '../lib/circuits/create.js';
import { getCircuit, listCircuits } from '../lib/circuits/read.js';
import { requestUnload } from '../lib/circuits/unload.js';
import { registerWorker } from '../lib/circuits/workers.js';
import { checkDependencies } from '../lib/circuits/dependencies.js';
import { fleetStatus } from '../lib/circuits/fleet.js';
import { circuitLocks, healthTransitions } from '../lib/circuits/operations.js';
import { recordPropagate } from '../lib/circuits/report.js';
import { NotFoundError } from '../lib/errors.js';
import { getPublisher } from '../lib/events.js';
import { getConfig } from '../lib/config.js';
import { getRuntime } from '../lib/runtime.js';
import { logger } from '../lib/observability.js';

const create: HttpFn = async (event, { inv }) => {
  const input = createCircuitBody(event, getConfig());
  const started = performance.now();
  const { view, created, sync } = await createAndPublish(inv, input);
  logger.appendKeys({ circuitId: view.circuit.id });
  recordPropagate(sync, performance.now() - started);
  return json(
    created ? 201 : 200,
    { ...circuitJson(view, sync.applied ? sync.generation : null), publish: syncJson(sync) },
    { location: `/v2/circuits/${view.circuit.id}`, etag: `"${view.circuit.generation}"` },
  );
};

const list: HttpFn = async (event, { inv }) => {
  const page = await listCircuits(inv.rt, listQuery(event));
  return json(200, { items: page.items.map((r) => circuitJson(r.view, r.appliedGeneration)), nextCursor: page.nextCursor });
};

const get: HttpFn = async (event, { inv }) => {
  const id = circuitIdParam(event);
  logger.appendKeys({ circuitId: id });
  const r = await getCircuit(inv.rt, id);
  if (r === null) throw new NotFoundError(`circuit ${id} does not exist`);
  return json(200, circuitJson(r.view, r.appliedGeneration), { etag: `"${r.view.circuit.generation}"` });
};

const remove: HttpFn = async (event, { inv }) => {
  const id = circuitIdParam(event);
  logger.appendKeys({ circuitId: id });
  const r = await requestUnload(inv.rt, getPublisher(inv.rt.config), id, (err) =>
    logger.warn('CircuitUnloadRequested not published; the sweep completes the unload after the grace period', { error: err.message }),
  );
  return json(202, { id, status: r.alreadyDeleted ? 'deleted' : 'unload-requested', unloadRequestedAt: r.requestedAt, eventPublished: r.eventPublished });
};

const putWorker: HttpFn = async (event, { inv }) => {
  const authority = authorityParam(event);
  const body = workerBody(event);
  const r = await registerWorker(inv, { authority, hostname: body.hostname, wildcardDomain: body.wildcardDomain ?? null, tls: body.tls });
  return json(r.created ? 201 : 200, { ...workerJson(r.worker), republishedCircuits: r.republished, notApplied: r.notApplied });
};

const health: HttpFn = async () => {
  const h = await checkDependencies(getRuntime());
  return json(h.status === 'ok' ? 200 : 503, h, h.status === 'ok' ? { 'cache-control': 'no-store' } : { 'cache-control': 'no-store', 'retry-after': '5' });
};

const status: HttpFn = async (event, { inv }) => {
  noQuery(event);
  return json(200, await fleetStatus(inv.rt));
};

const locks: HttpFn = async (event, { inv }) => json(200, { locks: await circuitLocks(inv.rt, locksQuery(event)) });

const transitions: HttpFn = async (event, { inv }) => json(200, { transitions: await healthTransitions(inv.rt, transitionsQuery(event)) });

/** The operator's status page: static, so no token; a query string is refused (never put the token in a URL). */
const ui: HttpFn = async (event) => {
  noQuery(event);
  return statusPage();
};

const ROUTES = [
  { method: 'POST', path: '/v2/circuits', handler: create },
  { method: 'GET', path: '/v2/circuits', handler: list },
  { method: 'GET', path: '/v2/circuits/{id}', handler: get },
  { method: 'DELETE', path: '/v2/circuits/{id}', handler: remove },
  { method: 'PUT', path: '/v2/workers/{authority}', handler: putWorker },
  { method: 'GET', path: '/v2/health', handler: health },
  { method: 'GET', path: '/v2/status', handler: status },
  { method: 'GET', path: '/v2/locks', handler: locks },
  { method: 'GET', path: '/v2/transitions', handler: transitions },
  { method: 'GET', path: '/v2/ui', handler: ui },
] as const;

const pattern = (path: string) => new RegExp(`^${path.replace(/\{[^}]+\}/g, '[^/]+')}$`);
const KNOWN = [...ROUTES, { method: 'PUT', path: '/v2/circuits/{id}/routes' }].map((r) => ({ ...r, re: pattern(r.path) }));

/** 405 with Allow for a known path, 404 otherwise: every answer is problem+json. */
const noRoute = ({ method, path }: { method: string; path: string }): never => {
  const allowed = KNOWN.filter((r) => r.re.test(path)).map((r) => r.method);
  if (allowed.length > 0) {
    throw new HttpProblem(405, 'Method Not Allowed', `${method} is not allowed on ${path}; use ${allowed.join(', ')}`, { headers: { allow: allowed.join(', ') } });
  }
  throw new HttpProblem(404, 'Not Found', `no route for ${method} ${path}`);
};

const router = httpRouterHandler({ routes: ROUTES.map((r) => ({ ...r })), notFoundResponse: noRoute } as never) as unknown as HttpFn;

export const handler = httpHandler(router, { isPublic: (method, path) => method === 'GET' && (path === '/v2/health' || path === '/v2/ui') });
