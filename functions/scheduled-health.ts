// EventBridge schedule (rate(1 minute)): probe due routes, propagate status changes through the
// fenced path, publish RouteHealthChanged, repair drift and orphans. Loops sweeps while the
// invocation's remaining time allows; with less than one interval left it runs one pass.
import { eventHandler } from '../lib/event-handler.js';
import { runSweeps } from '../lib/health/sweep.js';
import { healthEventPublisher } from '../lib/health/publish.js';
import { getPublisher } from '../lib/events.js';
import { recordSweep, sweepLog } from '../lib/observability.js';

// Tools (the demo, the local stack) can ask for exactly one pass with detail { "singlePass": true }.
const singlePass = (event: unknown): boolean =>
  (event as { detail?: { singlePass?: unknown } } | null)?.detail?.singlePass === true;

export const handler = eventHandler(async (event: unknown, context) => {
  const once = singlePass(event);
  const { passes, total } = await runSweeps(context.inv, {
    publish: healthEventPublisher(getPublisher(context.inv.rt.config)),
    log: sweepLog,
    // Less remaining time than one interval means exactly one pass (DESIGN §5).
    remainingMs: once ? () => 0 : () => context.getRemainingTimeInMillis(),
    safetyMarginMs: 5000,
  });
  recordSweep(total, passes.length);
  return { passes: passes.length, ...total, errors: total.errors.slice(0, 5) };
});
