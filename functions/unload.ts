// EventBridge rule on detail-type CircuitUnloadRequested, detail { circuitId }: unload,
// idempotently. What can succeed later throws (EventBridge retries, then the dead-letter queue;
// the request is durable in the database and sweeps complete it anyway).
import { eventHandler } from '../lib/event-handler.js';
import { parseUnloadEvent } from '../lib/circuits/unload-event.js';
import { unload } from '../lib/circuits/unload.js';
import { recordPropagate } from '../lib/circuits/report.js';
import { logger, metrics, MetricUnit } from '../lib/observability.js';

export const handler = eventHandler(async (event: unknown, context) => {
  const parsed = parseUnloadEvent(event);
  if ('problem' in parsed) {
    logger.error('malformed CircuitUnloadRequested event dropped', { problem: parsed.problem });
    metrics.addMetric('MalformedEvents', MetricUnit.Count, 1);
    return { status: 'malformed', problem: parsed.problem };
  }
  logger.appendKeys({ circuitId: parsed.circuitId });
  const started = performance.now();
  const r = await unload(context.inv, parsed.circuitId);
  if (!r.found) {
    logger.warn('unload requested for an unknown circuit: nothing to do');
    return { status: 'unknown-circuit', circuitId: parsed.circuitId };
  }
  recordPropagate(r, performance.now() - started);
  if (!r.applied) {
    // The database says deleted; etcd could not be written. Fail so EventBridge retries (the
    // sweep would also converge it, but an unload should not wait a minute).
    throw new Error(`unload of ${parsed.circuitId} committed in the database but not applied to etcd: ${r.notAppliedReason}`);
  }
  return { status: r.unchanged ? 'already-unloaded' : 'unloaded', circuitId: parsed.circuitId, generation: r.generation };
});
