// Whether a stored circuit is what a create request asked for (idempotent POST). Pure.
import type { Circuit, CreateCircuitInput } from '../model.js';

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
