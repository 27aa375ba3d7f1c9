// A circuit's status as operators and clients see it (GET answers, `circuitry status`). Pure.
//   deleting     its unload was requested (or it is deleted)
//   unavailable  no route, or every route is known to be down
//   panic        no route is known healthy, some not yet known: all are listed (DESIGN §4)
//   degraded     some routes are healthy, not all
//   serving      every route is listed and healthy (or the circuit is not health-checked)
import type { Circuit } from '../model.js';

export type CircuitStatus = 'serving' | 'degraded' | 'panic' | 'unavailable' | 'deleting';
export const CIRCUIT_STATUSES: readonly CircuitStatus[] = ['serving', 'degraded', 'panic', 'unavailable', 'deleting'];

export function circuitStatus(c: Pick<Circuit, 'deletedAt' | 'unloadRequestedAt' | 'routes' | 'healthCheck'>): CircuitStatus {
  if (c.deletedAt !== null || c.unloadRequestedAt !== null) return 'deleting';
  if (c.routes.length === 0) return 'unavailable';
  if (c.healthCheck === null) return 'serving';
  const healthy = c.routes.filter((r) => r.health.status === 'healthy').length;
  if (healthy === c.routes.length) return 'serving';
  if (healthy > 0) return 'degraded';
  return c.routes.every((r) => r.health.status === 'unhealthy') ? 'unavailable' : 'panic';
}
