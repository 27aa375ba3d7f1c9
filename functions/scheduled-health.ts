// EventBridge schedule (rate(1 minute)): probe due routes, propagate status changes through the
// fenced path, publish RouteHealthChanged, complete pending unloads, repair drift, retire old
// state. Loops sweeps while the invocation's remaining time allows; with less than one interval
// left it runs one pass.
import { eventHandler } from '../lib/event-handler.js';
import { runSweeps } from '../lib/health/passes.js';
import { healthEventPublisher } from '../lib/health/publish.js';
import { recordSweep } from '../lib/health/report.js';
import { getPublisher } from '../lib/events.js';
import { sweepLog } from '../lib/observability.js';

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
  });
  recordSweep(total, passes.length);
  return { passes: passes.length, ...total, errors: total.errors.slice(0, 5) };
});
