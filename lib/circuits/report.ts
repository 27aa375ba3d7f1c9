// Metrics every write records at the edge: lock wait, latency, fenced or unapplied writes.
import { logger, metrics, MetricUnit } from '../observability.js';
import type { PropagateResult } from './propagate.js';

export function recordPropagate(r: PropagateResult, latencyMs: number): void {
  metrics.addMetric('LockWaitMs', MetricUnit.Milliseconds, r.lockWaitMs);
  metrics.addMetric('PropagateLatencyMs', MetricUnit.Milliseconds, latencyMs);
  metrics.addMetric('EtcdRpcs', MetricUnit.Count, r.etcdRpcs);
  if (!r.applied && r.found) metrics.addMetric('FencedOrUnappliedWrites', MetricUnit.Count, 1);
  logger.info('propagated', {
    circuitId: r.circuitId,
    generation: r.generation,
    deleted: r.deleted,
    applied: r.applied,
    unchanged: r.unchanged,
    notAppliedReason: r.notAppliedReason,
    frontendReleased: r.frontendReleased,
    etcdRpcs: r.etcdRpcs,
    txns: r.txns,
    lockWaitMs: r.lockWaitMs,
    latencyMs,
  });
}
