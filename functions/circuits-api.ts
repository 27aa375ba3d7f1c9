// POST /v2/circuits, GET /v2/circuits, GET|DELETE /v2/circuits/{id}, PUT /v2/workers/{authority}
import httpRouterHandler from '@middy/http-router';
import { httpHandler, json, type HttpFn } from '../lib/http/handler.js';
import { HttpProblem, badRequest } from '../lib/http/problem.js';
import { authorityParam, circuitIdParam, createCircuitBody, listQuery, workerBody } from '../lib/http/requests.js';
import { circuitJson, syncJson, workerJson } from '../lib/http/views.js';
import { createAndPublish } from '../lib/circuits/create.js';
import { readWithSync } from '../lib/circuits/read.js';
import { requestUnload } from '../lib/circuits/request-unload.js';
import { registerWorker } from '../lib/circuits/workers.js';
import { listCircuits, NotFoundError, type Queryable } from '../lib/db/circuits.js';
import { classifyFailure } from '../lib/circuits/errors.js';
import { getPublisher } from '../lib/events.js';
import { getConfig } from '../lib/config.js';
import { logger, recordPropagate } from '../lib/observability.js';

const create: HttpFn = async (event, { inv }) => {
  const input = createCircuitBody(event, getConfig());
  const started = performance.now();
  const { view, sync } = await createAndPublish(inv, input);
  logger.appendKeys({ circuitId: view.circuit.id });
  recordPropagate(sync, performance.now() - started);
  return json(
    201,
    { ...circuitJson(view, sync.applied ? sync.generation : null), publish: syncJson(sync) },
    { location: `/v2/circuits/${view.circuit.id}`, etag: `"${view.circuit.generation}"` },
  );
};

const list: HttpFn = async (event, { inv }) => {
  const q = listQuery(event);
  const page = await listCircuits(inv.rt.db as unknown as Queryable, q).catch((e: unknown) => {
    // A well-formed cursor can still name an impossible time (Feb 30): a data exception.
    if (/^22/.test(String((e as { code?: unknown }).code))) throw badRequest('query.cursor is not a valid cursor', [{ field: 'query.cursor', message: 'invalid' }]);
    throw classifyFailure(e, 'database');
  });
  return json(200, { items: page.items.map((v) => circuitJson(v, null)), nextCursor: page.nextCursor });
};

const get: HttpFn = async (event, { inv }) => {
  const id = circuitIdParam(event);
  logger.appendKeys({ circuitId: id });
  const r = await readWithSync(inv.rt, id);
  if (r === null) throw new NotFoundError(`circuit ${id} does not exist`);
  return json(200, circuitJson(r.view, r.appliedGeneration), { etag: `"${r.view.circuit.generation}"` });
};

const remove: HttpFn = async (event, { inv }) => {
  const id = circuitIdParam(event);
  logger.appendKeys({ circuitId: id });
  const r = await requestUnload(inv.rt, getPublisher(inv.rt.config), id);
  return json(202, { id, status: r.alreadyDeleted ? 'deleted' : 'unload-requested' });
};

const putWorker: HttpFn = async (event, { inv }) => {
  const authority = authorityParam(event);
  const body = workerBody(event);
  const r = await registerWorker(inv, { authority, hostname: body.hostname, wildcardDomain: body.wildcardDomain ?? null, tls: body.tls });
  return json(r.created ? 201 : 200, { ...workerJson(r.worker), republishedCircuits: r.republished, notApplied: r.notApplied });
};

const notFound = ({ method, path }: { method: string; path: string }): never => {
  throw new HttpProblem(404, 'Not Found', `no route for ${method} ${path}`);
};

const router = httpRouterHandler({
  routes: [
    { method: 'POST', path: '/v2/circuits', handler: create },
    { method: 'GET', path: '/v2/circuits', handler: list },
    { method: 'GET', path: '/v2/circuits/{id}', handler: get },
    { method: 'DELETE', path: '/v2/circuits/{id}', handler: remove },
    { method: 'PUT', path: '/v2/workers/{authority}', handler: putWorker },
  ],
  notFoundResponse: notFound,
} as never) as unknown as HttpFn;

export const handler = httpHandler(router);
