// A circuit's status as operators and clients see it (GET answers, `circuitry status`). Pure.
//   deleting     its unload was requested (or it is deleted)
//   unavailable  no route, or every route is known to be down
//   panic        no route is known healthy, some not yet known: all are listed (DESIGN §4)
//   degraded     some routes are healthy, not all
//   serving      every route is listed and healthy (or the circuit is not health-checked)
import type { Circuit } from '../model.js';

export type CircuitStatus = 'serving' | 'degraded' | 'panic' | 'unavailable' | 'deleting';
export const CIRCUIT_STATUSES: readonly CircuitStatus[] = ['serving', 'degraded', 'panic', 'unavailable', 'deleting'];

export interface StatusFacts {
  deleting: boolean;
  healthChecked: boolean;
  routes: number;
  healthy: number;
  unhealthy: number;
}

export function statusOf(f: StatusFacts): CircuitStatus {
  if (f.deleting) return 'deleting';
  if (f.routes === 0) return 'unavailable';
  if (!f.healthChecked || f.healthy === f.routes) return 'serving';
  if (f.healthy > 0) return 'degraded';
  return f.unhealthy === f.routes ? 'unavailable' : 'panic';
}

export function circuitStatus(c: Pick<Circuit, 'deletedAt' | 'unloadRequestedAt' | 'routes' | 'healthCheck'>): CircuitStatus {
  return statusOf({
    deleting: c.deletedAt !== null || c.unloadRequestedAt !== null,
    healthChecked: c.healthCheck !== null,
    routes: c.routes.length,
    healthy: c.routes.filter((r) => r.health.status === 'healthy').length,
    unhealthy: c.routes.filter((r) => r.health.status === 'unhealthy').length,
  });
}
