// Request parsing for the HTTP functions: path parameters, headers and bodies, each rejected
// with a 400 that names the offending field.
import { z } from 'zod';
import { authoritySchema, createCircuitSchema, routesSchema, uuidSchema, workerInputSchema } from '../model.js';
import { badRequest } from './problem.js';
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

export const updateRoutesBody = (e: HttpEvent, maxRoutes: number) =>
  parseWith(z.strictObject({ routes: routesSchema(maxRoutes) }), e.json, '');

export const createCircuitBody = (e: HttpEvent, maxRoutes: number) => parseWith(createCircuitSchema(maxRoutes), e.json, '');

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
  const limit = q.limit === undefined ? 50 : Number(q.limit);
  if (!Number.isInteger(limit) || limit < 1 || limit > 500) throw badRequest('limit must be an integer from 1 to 500', [{ field: 'query.limit', message: 'out of range' }]);
  let after;
  if (q.cursor !== undefined) {
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
