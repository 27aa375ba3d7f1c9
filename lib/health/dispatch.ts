// The fan-out of scheduled-health: measure the probing work, size it (fan-out.ts, pure) and start
// the extra sweeper invocations. They only probe (no history check, unloads, drift or retention:
// the dispatcher does those once) and claim with SKIP LOCKED, so any number can run at once.
import { healthLoad } from '../db/index.js';
import type { Invocation } from '../runtime.js';
import { FAN_OUT_DEFAULTS, fanOutFor, type FanOut } from './fan-out.js';
import type { SweepLog } from './log.js';

/** What a started sweeper receives (the health-sweeper function's event). */
export interface SweeperAssignment {
  /** When the dispatcher started it (ISO 8601): a sweeper started long ago does not run. */
  dispatchedAt: string;
  /** 1-based, of `of` sweepers (the dispatcher is 0). */
  index: number;
  of: number;
}

/** Starts sweeper invocations without waiting for them (Lambda: InvocationType Event). */
export interface SweeperLauncher {
  launch(assignments: readonly SweeperAssignment[]): Promise<{ started: number; failed: Array<{ index: number; error: string }> }>;
}

export interface DispatchResult extends FanOut {
  started: number;
  failed: number;
  load: { circuits: number; routes: number; routesPerSecond: number; lateRoutes: number };
}

/** Routes due longer ago than this count as late (the work to catch up on). */
export const LATE_AFTER_SECONDS = 10;

export async function dispatchSweepers(inv: Invocation, opts: { launcher: SweeperLauncher | null; now?: () => Date; log: SweepLog }): Promise<DispatchResult> {
  const { config, db } = inv.rt;
  const now = opts.now?.() ?? new Date();
  const load = await healthLoad(db, now, LATE_AFTER_SECONDS);
  const plan = fanOutFor(load, {
    routesPerSecondPerSweeper: config.healthSweeperRoutesPerSecond,
    // Without a launcher the dispatcher is the only sweeper.
    maxSweepers: opts.launcher === null ? 1 : config.healthMaxSweepers,
    catchUpSeconds: FAN_OUT_DEFAULTS.catchUpSeconds,
  });
  const result: DispatchResult = { ...plan, started: 0, failed: 0, load };
  if (plan.capped) {
    opts.log.warn('health work exceeds the sweepers allowed: routes will be probed late', {
      demandRoutesPerSecond: Math.round(plan.demandRoutesPerSecond),
      sweepers: plan.sweepers,
      ...(opts.launcher === null ? { hint: 'set HEALTH_SWEEPER_FUNCTION to fan out' } : { hint: 'raise HEALTH_MAX_SWEEPERS' }),
    });
  }
  if (plan.toStart === 0 || opts.launcher === null) return result;
  const assignments = Array.from({ length: plan.toStart }, (_, i) => ({ dispatchedAt: now.toISOString(), index: i + 1, of: plan.sweepers }));
  const launched = await opts.launcher.launch(assignments);
  result.started = launched.started;
  result.failed = launched.failed.length;
  if (launched.failed.length > 0) {
    opts.log.error('some sweepers could not be started: the others and the next tick cover their work', {
      failed: launched.failed.length,
      first: launched.failed[0]?.error,
    });
  }
  opts.log.info('sweepers started', { started: launched.started, sweepers: plan.sweepers, demandRoutesPerSecond: Math.round(plan.demandRoutesPerSecond) });
  return result;
}
