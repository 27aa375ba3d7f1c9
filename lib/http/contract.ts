// The API's contract in one place: every route, what it accepts and what it answers, as zod
// schemas. The request schemas are the ones the handlers parse with (lib/model.ts); the answers'
// types are the views' (lib/http/views.ts). docs/openapi.json is generated from this table
// (`npm run openapi`), and test/integration/contract.test.ts fails when what the handlers accept
// or answer drifts from it.
import { z } from 'zod';
import {
  authoritySchema,
  createCircuitSchema,
  frontendSchema,
  healthCheckSchema,
  routesSchema,
  uuidSchema,
  workerInputSchema,
} from '../model.js';

const iso = z.string().describe('ISO 8601 time');
const status = z.enum(['unknown', 'healthy', 'unhealthy']);

export const problemSchema = z
  .object({
    type: z.string(),
    title: z.string(),
    status: z.number().int(),
    detail: z.string().optional(),
    instance: z.string().optional().describe('the request id: find the request in the logs with it'),
    errors: z.array(z.object({ field: z.string(), message: z.string() })).optional(),
  })
  .describe('RFC 9457 problem details');

export const routeJsonSchema = z
  .object({
    routeId: z.string(),
    sessionId: z.string(),
    host: z.string(),
    port: z.number().int(),
    trafficRatio: z.number(),
    createdAt: iso,
    health: z.object({
      status,
      consecutiveSuccesses: z.number().int(),
      consecutiveFailures: z.number().int(),
      lastCheckedAt: iso.nullable(),
      lastError: z.string().nullable(),
    }),
  });

export const circuitStatusSchema = z.enum(['serving', 'degraded', 'panic', 'unavailable', 'deleting']);

export const circuitJsonSchema = z
  .object({
    id: z.string(),
    worker: z.string(),
    protocol: z.enum(['http', 'tcp']),
    appMode: z.enum(['inference', 'interactive']),
    frontend: frontendSchema,
    allowedClientIps: z.array(z.string()),
    healthCheck: healthCheckSchema.nullable(),
    routes: z.array(routeJsonSchema),
    generation: z.number().int(),
    status: circuitStatusSchema,
    createdAt: iso,
    deletedAt: iso.nullable(),
    unloadRequestedAt: iso.nullable(),
    sync: z.object({ generation: z.number().int(), appliedGeneration: z.number().int().nullable() }),
  });

const syncFields = { applied: z.boolean(), notAppliedReason: z.string().optional() };
export const createdSchema = circuitJsonSchema.extend({ publish: z.object(syncFields) });
export const routesUpdatedSchema = z.object({ id: z.string(), generation: z.number().int().nullable(), ...syncFields });
export const listSchema = z.object({ items: z.array(circuitJsonSchema), nextCursor: z.string().nullable() });
export const unloadAcceptedSchema = z
  .object({ id: z.string(), status: z.enum(['unload-requested', 'deleted']), unloadRequestedAt: iso, eventPublished: z.boolean() });
export const workerJsonSchema = z
  .object({ authority: z.string(), hostname: z.string(), wildcardDomain: z.string().nullable(), tls: z.boolean(), republishedCircuits: z.number().int(), notApplied: z.number().int() });
const reach = z.object({ ok: z.boolean(), latencyMs: z.number() });
export const healthSchema = z.object({ status: z.enum(['ok', 'unavailable']), etcd: reach, database: reach });
const idAndWorker = z.object({ circuitId: z.string(), worker: z.string() });
export const fleetStatusSchema = z
  .object({
    circuits: z.object({ total: z.number().int(), byStatus: z.record(circuitStatusSchema, z.number().int()) }),
    syncLag: z.object({
      behind: z.number().int(),
      maxGenerations: z.number().int(),
      sample: z.array(z.object({ circuitId: z.string(), generation: z.number().int(), appliedGeneration: z.number().int().nullable() })),
    }),
    panic: z.array(idAndWorker),
    unavailable: z.array(idAndWorker),
    pendingUnloads: z.object({ count: z.number().int(), oldestRequestedAt: iso.nullable() }),
    deletedAwaitingRelease: z.number().int(),
    workers: z.number().int(),
    fencingEpoch: z.object({ epoch: z.number().int(), startedAt: iso, reason: z.string() }).nullable(),
  });
export const locksSchema = z
  .object({
    locks: z.array(
      z.object({
        circuitId: z.string(),
        leaseHex: z.string(),
        createRevision: z.string(),
        owner: z.boolean(),
        position: z.number().int(),
        since: iso.nullable(),
        ageSeconds: z.number().nullable(),
        holder: z.string(),
        ttlSeconds: z.number().nullable(),
      }),
    ),
  });
export const transitionsSchema = z
  .object({
    transitions: z.array(
      z.object({ circuitId: z.string(), routeId: z.string(), from: status, to: status, generation: z.number().int(), lastError: z.string().nullable(), at: iso }),
    ),
  });

/** The named schemas of docs/openapi.json (components.schemas). */
export const COMPONENTS: Readonly<Record<string, z.ZodType>> = {
  Problem: problemSchema,
  Circuit: circuitJsonSchema,
  CircuitCreated: createdSchema,
  CircuitPage: listSchema,
  RoutesUpdated: routesUpdatedSchema,
  UnloadAccepted: unloadAcceptedSchema,
  Worker: workerJsonSchema,
  DependencyHealth: healthSchema,
  FleetStatus: fleetStatusSchema,
  Locks: locksSchema,
  Transitions: transitionsSchema,
};

export type CircuitJson = z.infer<typeof circuitJsonSchema>;
export type WorkerJson = z.infer<typeof workerJsonSchema>;

// ---- the routes ------------------------------------------------------------------------------------

export type Method = 'GET' | 'POST' | 'PUT' | 'DELETE';

export interface Answer {
  description: string;
  schema?: z.ZodType;
  /** Default application/json (application/problem+json for 4xx/5xx). */
  contentType?: string;
}

export interface RouteSpec {
  method: Method;
  path: string;
  operationId: string;
  summary: string;
  /** false: no bearer token (GET /v2/health, the status page). */
  auth: boolean;
  params?: z.ZodObject;
  query?: z.ZodObject;
  headers?: z.ZodObject;
  body?: z.ZodType;
  responses: Record<number, Answer>;
}

const problem = (description: string): Answer => ({ description, schema: problemSchema, contentType: 'application/problem+json' });
function common(auth: boolean, body: boolean): Record<number, Answer> {
  const out: Record<number, Answer> = {
    400: problem('invalid request: the errors list names each offending field'),
    503: problem('a dependency is down or the circuit lock was not acquired in time; nothing was changed (see Retry-After) — except with type urn:circuitry:outcome-unknown: the change may have been applied, read the circuit before retrying'),
  };
  if (auth) out[401] = problem('missing or invalid bearer token');
  if (body) {
    out[413] = problem('body over 1 MiB');
    out[415] = problem('not application/json');
  }
  return out;
}
const idParam = z.object({ id: uuidSchema });
const circuitsQuery = z.object({
  limit: z.string().regex(/^\d{1,3}$/).optional().describe('1..500, default 50'),
  cursor: z.string().max(512).optional().describe('nextCursor of the previous page'),
  worker: authoritySchema.optional(),
});

export const API: readonly RouteSpec[] = [
  {
    method: 'POST',
    path: '/v2/circuits',
    operationId: 'createCircuit',
    summary: 'Create a circuit and publish it (idempotent for the same id and body)',
    auth: true,
    body: createCircuitSchema(),
    responses: {
      201: { description: 'created (Location header); publish.applied false: committed, the next sweep publishes it', schema: createdSchema },
      200: { description: 'the same request again: the stored circuit', schema: createdSchema },
      ...common(true, true),
      409: problem('the id exists with another body, was deleted before, or the frontend is taken (Retry-After while a deleted circuit releases it)'),
      422: problem('unknown worker, no wildcard domain, or a route address not allowed'),
    },
  },
  {
    method: 'GET',
    path: '/v2/circuits',
    operationId: 'listCircuits',
    summary: 'Circuits not yet deleted, in creation order (keyset pagination)',
    auth: true,
    query: circuitsQuery,
    responses: { 200: { description: 'a page', schema: listSchema }, ...common(true, false) },
  },
  {
    method: 'GET',
    path: '/v2/circuits/{id}',
    operationId: 'getCircuit',
    summary: 'A circuit with route health, status and sync state',
    auth: true,
    params: idParam,
    responses: { 200: { description: 'the circuit (ETag: its generation)', schema: circuitJsonSchema }, 404: problem('unknown circuit'), ...common(true, false) },
  },
  {
    method: 'DELETE',
    path: '/v2/circuits/{id}',
    operationId: 'unloadCircuit',
    summary: 'Request the unload (durable before the 202; CircuitUnloadRequested is the fast path)',
    auth: true,
    params: idParam,
    responses: { 202: { description: 'recorded', schema: unloadAcceptedSchema }, 404: problem('unknown circuit'), ...common(true, false) },
  },
  {
    method: 'PUT',
    path: '/v2/circuits/{id}/routes',
    operationId: 'replaceRoutes',
    summary: "Replace a circuit's routes",
    auth: true,
    params: idParam,
    headers: z.object({ 'if-match': z.string().optional().describe('the generation the change applies to') }),
    body: z.strictObject({ routes: routesSchema() }),
    responses: {
      200: { description: 'committed; applied false: the next sweep publishes it (ETag: the new generation)', schema: routesUpdatedSchema },
      404: problem('unknown or deleted circuit'),
      409: problem('If-Match mismatch, or the circuit is being unloaded'),
      422: problem('a route address not allowed'),
      ...common(true, true),
    },
  },
  {
    method: 'PUT',
    path: '/v2/workers/{authority}',
    operationId: 'registerWorker',
    summary: 'Register or update a worker (its live circuits are re-published when their rendering changes)',
    auth: true,
    params: z.object({ authority: authoritySchema }),
    body: workerInputSchema,
    responses: {
      201: { description: 'registered', schema: workerJsonSchema },
      200: { description: 'updated', schema: workerJsonSchema },
      409: problem('the change would strand live circuits'),
      ...common(true, true),
    },
  },
  {
    method: 'GET',
    path: '/v2/health',
    operationId: 'health',
    summary: 'Reachability of etcd and the database (no token)',
    auth: false,
    responses: { 200: { description: 'both reachable', schema: healthSchema }, 503: { description: 'one is not (Retry-After)', schema: healthSchema } },
  },
  {
    method: 'GET',
    path: '/v2/status',
    operationId: 'fleetStatus',
    summary: 'Circuits by status, sync lag, panic circuits, pending unloads, the fencing epoch',
    auth: true,
    responses: { 200: { description: 'the fleet', schema: fleetStatusSchema }, ...common(true, false) },
  },
  {
    method: 'GET',
    path: '/v2/locks',
    operationId: 'locks',
    summary: 'Held and queued circuit locks',
    auth: true,
    query: z.object({ circuitId: uuidSchema.optional() }),
    responses: { 200: { description: 'the locks', schema: locksSchema }, ...common(true, false) },
  },
  {
    method: 'GET',
    path: '/v2/transitions',
    operationId: 'transitions',
    summary: "Recent status changes of routes (RouteHealthChanged), newest first",
    auth: true,
    query: z.object({ limit: z.string().regex(/^\d{1,4}$/).optional().describe('1..1000, default 100'), circuitId: uuidSchema.optional() }),
    responses: { 200: { description: 'the transitions', schema: transitionsSchema }, ...common(true, false) },
  },
  {
    method: 'GET',
    path: '/v2/ui',
    operationId: 'statusPage',
    summary: "The operator's status page (HTML; it asks for the token and calls the routes above with it)",
    auth: false,
    responses: {
      200: { description: 'the page, with a Content-Security-Policy that allows only its own script and style', schema: z.string(), contentType: 'text/html' },
      400: problem('a query string (a token must never be put in the URL)'),
    },
  },
];

/** Any other method on a known path (405 with Allow) or any unknown path (404): problem+json. */
export const UNROUTED: Record<number, Answer> = { 404: problem('no such route'), 405: problem('method not allowed (Allow lists the methods)') };
