// EventBridge rule on detail-type HealthSweepRequested, detail { dispatchedAt, index, of }: one of
// the extra sweepers scheduled-health starts when the probing work needs more than one
// invocation. It only probes (claims with SKIP LOCKED, so sweepers share the due circuits) and
// writes status changes through the fenced path; the dispatcher does everything else.
import { eventHandler } from '../lib/event-handler.js';
import { runSweeps } from '../lib/health/passes.js';
import { parseSweepEvent } from '../lib/health/launch.js';
import { healthEventPublisher } from '../lib/health/publish.js';
import { recordSweep } from '../lib/health/report.js';
import { getPublisher } from '../lib/events.js';
import { logger, metrics, MetricUnit, sweepLog } from '../lib/observability.js';

/** A request older than this belongs to a tick whose work the next dispatcher has re-sized. */
const STALE_AFTER_MS = 50_000;

export const handler = eventHandler(async (event: unknown, context) => {
  const parsed = parseSweepEvent(event);
  if ('problem' in parsed) {
    logger.error('malformed HealthSweepRequested event dropped', { problem: parsed.problem });
    metrics.addMetric('MalformedEvents', MetricUnit.Count, 1);
    return { status: 'malformed', problem: parsed.problem };
  }
  const ageMs = Date.now() - Date.parse(parsed.dispatchedAt);
  logger.appendKeys({ sweeper: `${parsed.index}/${parsed.of}` });
  if (ageMs > STALE_AFTER_MS) {
    logger.warn('sweep request arrived too late: skipped', { ageMs });
    return { status: 'stale', ageMs };
  }
  const { passes, total } = await runSweeps(context.inv, {
    publish: healthEventPublisher(getPublisher(context.inv.rt.config)),
    log: sweepLog,
    maintenance: false,
    remainingMs: () => context.getRemainingTimeInMillis(),
  });
  recordSweep(total, passes.length);
  return { status: 'swept', passes: passes.length, ...total, errors: total.errors.slice(0, 5) };
});
