// Request parsing for the HTTP functions: path parameters, headers and bodies, each rejected
// with a 400 that names the offending field.
import { z } from 'zod';
import { isIPv4 } from 'node:net';
import { authoritySchema, createCircuitSchema, routesSchema, uuidSchema, workerInputSchema, type RouteInput } from '../model.js';
import type { Config } from '../config.js';
import { checkAddress, parseCidr } from '../health/address.js';
import { HttpProblem, badRequest, type FieldError } from './problem.js';
import { fieldErrors } from './errors.js';
import type { HttpEvent } from './handler.js';

function parseWith<S extends z.ZodType>(schema: S, value: unknown, root: string): z.output<S> {
  const r = schema.safeParse(value);
  if (!r.success) {
    const errors = fieldErrors(r.error, root);
    throw badRequest(`invalid ${root || 'request'}: ${errors.map((e) => `${e.field}: ${e.message}`).join('; ')}`, errors);
  }
  return r.data;
}

export const circuitIdParam = (e: HttpEvent): string => parseWith(uuidSchema, e.pathParameters?.id, 'path.id');
export const authorityParam = (e: HttpEvent): string => parseWith(authoritySchema, e.pathParameters?.authority, 'path.authority');

/** What request validation needs from the configuration. */
export type RequestPolicy = Pick<Config, 'maxRoutesPerCircuit' | 'allowedBackendCidrs'>;

const memo = <K, V>(f: (k: K) => V): ((k: K) => V) => {
  const m = new Map<K, V>();
  return (k) => {
    if (!m.has(k)) m.set(k, f(k));
    return m.get(k)!;
  };
};
const updateRoutesSchema = memo((maxRoutes: number) => z.strictObject({ routes: routesSchema(maxRoutes) }));
const createSchema = memo((maxRoutes: number) => createCircuitSchema(maxRoutes));
const parsedCidrs = memo((cidrs: readonly string[]) => cidrs.map(parseCidr));

/**
 * A route host that is an IP literal must be an address the platform may reach: inside
 * ALLOWED_BACKEND_CIDRS and never link-local / cloud metadata (169.254.0.0/16) or 0.0.0.0/8.
 * Traefik forwards customer traffic to whatever is registered, so this is checked at the API,
 * not only when probing. (DNS names are resolved by Traefik itself: they cannot be checked here.)
 */
function checkRouteHosts(routes: readonly RouteInput[], policy: RequestPolicy, root: string): void {
  const allowed = parsedCidrs(policy.allowedBackendCidrs);
  const errors: FieldError[] = [];
  routes.forEach((r, i) => {
    if (!isIPv4(r.host)) return;
    const v = checkAddress(r.host, allowed);
    if (!v.allowed) errors.push({ field: [root, 'routes', i, 'host'].filter((x) => x !== '').join('.'), message: v.reason });
  });
  if (errors.length > 0) {
    throw new HttpProblem(422, 'Unprocessable Content', `route address not allowed: ${errors.map((e) => `${e.field}: ${e.message}`).join('; ')}`, { errors });
  }
}

export function updateRoutesBody(e: HttpEvent, policy: RequestPolicy) {
  const body = parseWith(updateRoutesSchema(policy.maxRoutesPerCircuit), e.json, '');
  checkRouteHosts(body.routes, policy, '');
  return body;
}

export function createCircuitBody(e: HttpEvent, policy: RequestPolicy) {
  const body = parseWith(createSchema(policy.maxRoutesPerCircuit), e.json, '');
  checkRouteHosts(body.routes, policy, '');
  return body;
}

export const workerBody = (e: HttpEvent) => parseWith(workerInputSchema, e.json, '');

/** If-Match: <generation>, also accepted as an entity tag ("3" or W/"3"). */
export function ifMatchHeader(e: HttpEvent): number | undefined {
  const raw = e.headers?.['if-match'];
  if (raw === undefined) return undefined;
  const m = /^\s*(?:W\/)?"?(\d{1,15})"?\s*$/.exec(raw);
  if (m === null) throw badRequest('If-Match must be a circuit generation such as 3 or "3"', [{ field: 'header.if-match', message: 'not a generation' }]);
  return Number(m[1]);
}

const cursorSchema = z.strictObject({
  createdAt: z.string().regex(/^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(\.\d{1,6})?[+-]\d{2}(:\d{2})?$/, 'not a cursor issued by this API'),
  id: uuidSchema,
});

export function listQuery(e: HttpEvent): { limit: number; after?: { createdAt: string; id: string }; worker?: string } {
  const q = e.queryStringParameters ?? {};
  const known = new Set(['limit', 'cursor', 'worker']);
  const unknown = Object.keys(q).filter((k) => !known.has(k));
  if (unknown.length > 0) throw badRequest(`unknown query parameter(s): ${unknown.join(', ')}`, unknown.map((k) => ({ field: `query.${k}`, message: 'unknown parameter' })));
  const limit = q.limit === undefined ? 50 : /^\d{1,3}$/.test(q.limit) ? Number(q.limit) : NaN;
  if (!Number.isInteger(limit) || limit < 1 || limit > 500) throw badRequest('limit must be an integer from 1 to 500', [{ field: 'query.limit', message: 'out of range' }]);
  let after;
  if (q.cursor !== undefined) {
    if (q.cursor.length > 512) throw badRequest('query.cursor is not a cursor issued by this API', [{ field: 'query.cursor', message: 'too long' }]);
    let decoded: unknown;
    try {
      decoded = JSON.parse(Buffer.from(q.cursor, 'base64url').toString('utf8'));
    } catch {
      decoded = undefined;
    }
    after = parseWith(cursorSchema, decoded, 'query.cursor');
  }
  const worker = q.worker === undefined ? undefined : parseWith(authoritySchema, q.worker, 'query.worker');
  return { limit, ...(after ? { after } : {}), ...(worker ? { worker } : {}) };
}

function onlyKnownQuery(e: HttpEvent, known: readonly string[]): Record<string, string | undefined> {
  const q = e.queryStringParameters ?? {};
  const unknown = Object.keys(q).filter((k) => !known.includes(k));
  if (unknown.length > 0) throw badRequest(`unknown query parameter(s): ${unknown.join(', ')}`, unknown.map((k) => ({ field: `query.${k}`, message: 'unknown parameter' })));
  return q;
}

/** GET /v2/transitions?limit=&circuitId= */
export function transitionsQuery(e: HttpEvent): { limit: number; circuitId?: string } {
  const q = onlyKnownQuery(e, ['limit', 'circuitId']);
  const limit = q.limit === undefined ? 100 : /^\d{1,4}$/.test(q.limit) ? Number(q.limit) : NaN;
  if (!Number.isInteger(limit) || limit < 1 || limit > 1000) throw badRequest('limit must be an integer from 1 to 1000', [{ field: 'query.limit', message: 'out of range' }]);
  const circuitId = q.circuitId === undefined ? undefined : parseWith(uuidSchema, q.circuitId, 'query.circuitId');
  return { limit, ...(circuitId ? { circuitId } : {}) };
}

/** GET /v2/locks?circuitId= */
export function locksQuery(e: HttpEvent): { circuitId?: string } {
  const q = onlyKnownQuery(e, ['circuitId']);
  const circuitId = q.circuitId === undefined ? undefined : parseWith(uuidSchema, q.circuitId, 'query.circuitId');
  return circuitId ? { circuitId } : {};
}

/** A route that takes no query parameters. */
export function noQuery(e: HttpEvent): void {
  onlyKnownQuery(e, []);
}
