// How many sweeper invocations the health work needs (pure). One invocation probes a measured
// number of routes per second; the work is the steady rate every live health-checked route asks
// for (routes / interval) plus catching up on routes already late. The dispatcher (scheduled-
// health) is one of the sweepers; it starts the others. Claims use SKIP LOCKED, so sweepers never
// probe the same circuit twice in one interval, however many run.

export interface HealthLoad {
  /** Σ routes / interval over live circuits with health checking. */
  routesPerSecond: number;
  /** Routes of circuits due longer ago than the lateness threshold. */
  lateRoutes: number;
}

export interface FanOutPolicy {
  /** Routes per second one invocation probes (HEALTH_SWEEPER_ROUTES_PER_SECOND). */
  routesPerSecondPerSweeper: number;
  /** Sweepers at most, the dispatcher included (HEALTH_MAX_SWEEPERS). */
  maxSweepers: number;
  /** Late routes are to be caught up within this many seconds. */
  catchUpSeconds: number;
}

export interface FanOut {
  /** Sweepers the work needs, the dispatcher included, capped at maxSweepers. */
  sweepers: number;
  /** Sweepers to start besides the dispatcher. */
  toStart: number;
  /** The work in routes per second the count was made for. */
  demandRoutesPerSecond: number;
  /** The work exceeds what maxSweepers can do: routes will be probed late. */
  capped: boolean;
}

export const FAN_OUT_DEFAULTS = { catchUpSeconds: 30 } as const;

export function fanOutFor(load: HealthLoad, policy: FanOutPolicy): FanOut {
  const capacity = policy.routesPerSecondPerSweeper;
  if (!(capacity > 0) || !Number.isInteger(policy.maxSweepers) || policy.maxSweepers < 1 || !(policy.catchUpSeconds > 0)) {
    throw new RangeError('fan-out policy needs a positive capacity, catch-up time and at least one sweeper');
  }
  const demand = Math.max(0, load.routesPerSecond) + Math.max(0, load.lateRoutes) / policy.catchUpSeconds;
  const needed = Math.max(1, Math.ceil(demand / capacity));
  const sweepers = Math.min(needed, policy.maxSweepers);
  return { sweepers, toStart: sweepers - 1, demandRoutesPerSecond: demand, capped: needed > policy.maxSweepers };
}

/** Invocations needed to probe `routes` routes every `intervalSeconds` (for the benchmark's report). */
export function invocationsFor(routes: number, intervalSeconds: number, routesPerSecondPerSweeper: number): number {
  return Math.max(1, Math.ceil(routes / intervalSeconds / routesPerSecondPerSweeper));
}
