// Whether a create request is the one that created a stored circuit (idempotent POST). Pure
// (node:crypto's hash is computation, not I/O).
import { createHash } from 'node:crypto';
import type { Circuit, CreateCircuitInput } from '../model.js';

/** What a create request asks for, and what of a stored circuit answers it: the same fields. */
function requested(x: Circuit | CreateCircuitInput) {
  return {
    worker: x.worker,
    protocol: x.protocol,
    appMode: x.appMode,
    frontend: x.frontend,
    allowedClientIps: x.allowedClientIps,
    healthCheck: x.healthCheck,
    routes: x.routes.map((r) => [r.routeId, r.sessionId, r.host, r.port, r.trafficRatio]),
  };
}

/**
 * A digest of what a create request asks for (after defaults), stored with the circuit: a retry
 * of the same request matches it even after the circuit's routes have changed since.
 */
export function creationDigest(input: CreateCircuitInput): string {
  return createHash('sha256').update(canonical(requested(input))).digest('base64url');
}

/** For circuits stored without a digest: the request matches the circuit as it is now. */
export function sameAsCreated(c: Circuit, input: CreateCircuitInput): boolean {
  return canonical(requested(c)) === canonical(requested(input));
}

/** JSON with object keys sorted, so field order does not matter. */
function canonical(v: unknown): string {
  return JSON.stringify(v, (_k, x: unknown) =>
    x !== null && typeof x === 'object' && !Array.isArray(x)
      ? Object.fromEntries(Object.entries(x as Record<string, unknown>).sort(([p], [q]) => (p < q ? -1 : p > q ? 1 : 0)))
      : x,
  );
}
