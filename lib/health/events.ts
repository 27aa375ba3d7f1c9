// The event scheduled-health emits for every committed status change of a route. The
// EventBridge publisher lives elsewhere; the sweep only takes a `publish` function.
import type { HealthStatus } from '../model.js';

export { ROUTE_HEALTH_CHANGED } from '../events.js';

/** detail of a `RouteHealthChanged` event. */
export interface RouteHealthChanged {
  circuitId: string;
  routeId: string;
  from: HealthStatus;
  to: HealthStatus;
  /** ISO time of the probe that caused the change. */
  at: string;
  /** The probe's error for a failure, null for a success. */
  lastError: string | null;
  /** The circuit generation that carries the change (the one etcd gets). */
  generation: number;
}

/** Publishes a batch of events (the publisher splits it into PutEvents calls). */
export type PublishHealthEvents = (events: RouteHealthChanged[]) => Promise<void>;
