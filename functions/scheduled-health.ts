// EventBridge schedule (rate(1 minute)): the dispatcher of the health sweep. It sizes the probing
// work and starts that many extra sweepers (health-sweeper, through HealthSweepRequested events),
// then sweeps itself: probes due routes, propagates status changes through the fenced path,
// publishes RouteHealthChanged, completes pending unloads, repairs drift, retires old state.
// Loops sweeps while the invocation's remaining time allows; with less than one interval left it
// runs one pass.
import { eventHandler } from '../lib/event-handler.js';
import { runSweeps } from '../lib/health/passes.js';
import { dispatchSweepers } from '../lib/health/dispatch.js';
import { eventSweeperLauncher } from '../lib/health/launch.js';
import { healthEventPublisher } from '../lib/health/publish.js';
import { recordDispatch, recordSweep } from '../lib/health/report.js';
import { getPublisher } from '../lib/events.js';
import { sweepLog } from '../lib/observability.js';

// Tools (the demo, the local stack) can ask for exactly one pass with detail { "singlePass": true }.
const singlePass = (event: unknown): boolean =>
  (event as { detail?: { singlePass?: unknown } } | null)?.detail?.singlePass === true;

export const handler = eventHandler(async (event: unknown, context) => {
  const once = singlePass(event);
  const publisher = getPublisher(context.inv.rt.config);
  // A failed dispatch costs only the extra sweepers: this one still sweeps.
  const dispatched = await dispatchSweepers(context.inv, { launcher: eventSweeperLauncher(publisher), log: sweepLog }).catch((err: Error) => {
    sweepLog.error('sizing the health work failed: sweeping alone', { error: err.message });
    return null;
  });
  if (dispatched !== null) recordDispatch(dispatched);
  const { passes, total } = await runSweeps(context.inv, {
    publish: healthEventPublisher(publisher),
    log: sweepLog,
    // Less remaining time than one interval means exactly one pass (DESIGN §5).
    remainingMs: once ? () => 0 : () => context.getRemainingTimeInMillis(),
  });
  recordSweep(total, passes.length);
  return {
    passes: passes.length,
    ...total,
    errors: total.errors.slice(0, 5),
    sweepers: dispatched === null ? null : { total: dispatched.sweepers, started: dispatched.started, failed: dispatched.failed, capped: dispatched.capped },
  };
});
