// Whether a create request is the one that created a stored circuit (idempotent POST). Pure
// (node:crypto's hash is computation, not I/O).
import { createHash } from 'node:crypto';
import type { Circuit, CreateCircuitInput } from '../model.js';

/**
 * A digest of what a create request asks for (after defaults), stored with the circuit: a retry
 * of the same request matches it even after the circuit's routes have changed since.
 */
export function creationDigest(input: CreateCircuitInput): string {
  const routes = input.routes.map((r) => [r.routeId, r.sessionId, r.host, r.port, r.trafficRatio]);
  const what = { worker: input.worker, protocol: input.protocol, appMode: input.appMode, frontend: input.frontend, allowedClientIps: input.allowedClientIps, healthCheck: input.healthCheck, routes };
  return createHash('sha256').update(canonical(what)).digest('base64url');
}

/** For circuits stored without a digest: the request matches the circuit as it is now. */
export function sameAsCreated(c: Circuit, input: CreateCircuitInput): boolean {
  const routes = (rs: ReadonlyArray<{ routeId: string; sessionId: string; host: string; port: number; trafficRatio: number }>) =>
    rs.map((r) => [r.routeId, r.sessionId, r.host, r.port, r.trafficRatio]);
  const a = {
    worker: c.worker,
    protocol: c.protocol,
    appMode: c.appMode,
    frontend: c.frontend,
    allowedClientIps: c.allowedClientIps,
    healthCheck: c.healthCheck,
    routes: routes(c.routes),
  };
  const b = {
    worker: input.worker,
    protocol: input.protocol,
    appMode: input.appMode,
    frontend: input.frontend,
    allowedClientIps: input.allowedClientIps,
    healthCheck: input.healthCheck,
    routes: routes(input.routes),
  };
  return canonical(a) === canonical(b);
}

/** JSON with object keys sorted, so field order does not matter. */
function canonical(v: unknown): string {
  return JSON.stringify(v, (_k, x: unknown) =>
    x !== null && typeof x === 'object' && !Array.isArray(x)
      ? Object.fromEntries(Object.entries(x as Record<string, unknown>).sort(([p], [q]) => (p < q ? -1 : p > q ? 1 : 0)))
      : x,
  );
}
