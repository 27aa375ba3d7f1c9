// PUT /v2/circuits/{id}/routes — replace a circuit's routes (optional If-Match: <generation>).
import { httpHandler, json } from '../lib/http/handler.js';
import { HttpProblem } from '../lib/http/problem.js';
import { circuitIdParam, ifMatchHeader, updateRoutesBody } from '../lib/http/requests.js';
import { syncJson } from '../lib/http/views.js';
import { updateRoutes } from '../lib/circuits/update-routes.js';
import { recordPropagate } from '../lib/circuits/report.js';
import { getConfig } from '../lib/config.js';
import { logger } from '../lib/observability.js';

export const handler = httpHandler(async (event, context) => {
  // API Gateway only routes PUT here; anything else is not this function's business.
  const method = event.requestContext?.http?.method;
  if (method !== 'PUT') throw new HttpProblem(405, 'Method Not Allowed', `${String(method)} is not allowed here; use PUT`, { headers: { allow: 'PUT' } });
  const id = circuitIdParam(event);
  logger.appendKeys({ circuitId: id });
  const { routes } = updateRoutesBody(event, getConfig());
  const ifMatch = ifMatchHeader(event);
  const started = performance.now();
  const r = await updateRoutes(context.inv, id, routes, ifMatch);
  recordPropagate(r, performance.now() - started);
  return json(200, { id, generation: r.generation, ...syncJson(r) }, { etag: `"${r.generation}"` });
});
