// The health state machine of one route (DESIGN §3 scheduled-health). Pure: no I/O,
// no clock; the sweep tells it whether the route is still inside its initial delay.
//
//   - A new route is `unknown` until it crosses a threshold, either way.
//   - Hysteresis: a route becomes `unhealthy` only after `unhealthyThreshold` consecutive
//     failures, and `healthy` (from `unknown` or `unhealthy`) only after `healthyThreshold`
//     consecutive successes. Any other outcome keeps the status.
//   - Each outcome resets the opposite counter ("consecutive" means consecutive).
//   - During the initial delay (counted from the route's creation) failures are not counted:
//     they neither increase `consecutiveFailures` nor move the status. They still break a run of
//     successes. Successes are counted, so a model that loads fast joins early.
//   - Counters saturate at MAX_COUNTER (they fit a Postgres integer forever).
import type { HealthStatus } from '../model.js';

export const MAX_COUNTER = 1_000_000_000;

export interface HealthCounters {
  status: HealthStatus;
  consecutiveSuccesses: number;
  consecutiveFailures: number;
}

export interface ProbeOutcome {
  ok: boolean;
  /** Why the probe failed (ignored when ok). */
  error?: string;
}

export interface Thresholds {
  unhealthyThreshold: number;
  healthyThreshold: number;
}

export interface Transition {
  health: HealthCounters;
  /** The status changed (the only thing that makes a circuit take its lock). */
  changed: boolean;
  /** null after a success; the probe's error (or a generic one) after a failure. */
  lastError: string | null;
  /** The failure was ignored because the route is in its initial delay. */
  ignored: boolean;
}

/** Defensive normalisation: thresholds below 1 behave as 1, counters stay within [0, MAX]. */
const threshold = (n: number): number => (Number.isFinite(n) && n >= 1 ? Math.floor(n) : 1);
const counter = (n: number): number => (Number.isFinite(n) && n > 0 ? Math.min(Math.floor(n), MAX_COUNTER) : 0);
const inc = (n: number): number => Math.min(counter(n) + 1, MAX_COUNTER);

export function nextHealth(
  current: HealthCounters,
  outcome: ProbeOutcome,
  settings: Thresholds,
  inInitialDelay: boolean,
): Transition {
  const from = current.status;
  if (outcome.ok) {
    const consecutiveSuccesses = inc(current.consecutiveSuccesses);
    const status: HealthStatus = from !== 'healthy' && consecutiveSuccesses >= threshold(settings.healthyThreshold) ? 'healthy' : from;
    return {
      health: { status, consecutiveSuccesses, consecutiveFailures: 0 },
      changed: status !== from,
      lastError: null,
      ignored: false,
    };
  }
  const lastError = outcome.error !== undefined && outcome.error !== '' ? outcome.error : 'probe failed';
  if (inInitialDelay) {
    return {
      health: { status: from, consecutiveSuccesses: 0, consecutiveFailures: counter(current.consecutiveFailures) },
      changed: false,
      lastError,
      ignored: true,
    };
  }
  const consecutiveFailures = inc(current.consecutiveFailures);
  const status: HealthStatus = from !== 'unhealthy' && consecutiveFailures >= threshold(settings.unhealthyThreshold) ? 'unhealthy' : from;
  return {
    health: { status, consecutiveSuccesses: 0, consecutiveFailures },
    changed: status !== from,
    lastError,
    ignored: false,
  };
}

/** Whether a route created at createdAt is still inside its initial delay at `now`. */
export function inInitialDelay(createdAt: Date | string, initialDelaySeconds: number, now: Date): boolean {
  const created = typeof createdAt === 'string' ? Date.parse(createdAt) : createdAt.getTime();
  if (!Number.isFinite(created)) return false;
  return now.getTime() < created + Math.max(0, initialDelaySeconds) * 1000;
}
