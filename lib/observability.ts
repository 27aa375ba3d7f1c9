// One logger and one metrics emitter for the whole function set (Powertools). Logs are JSON on
// stdout with the request id and, where known, the circuit id; metrics are CloudWatch EMF.
import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import type { PropagateResult } from './circuits/propagate.js';
import type { SweepStats } from './health/sweep.js';
import type { SweepLog } from './health/log.js';

export const logger = new Logger({ serviceName: 'circuitry' });
export const metrics = new Metrics({
  namespace: 'circuitry',
  serviceName: 'circuitry',
  // An invocation that wrote nothing has no metrics; that is normal here, not a warning.
  logger: {
    debug: (...a: unknown[]) => logger.debug(String(a[0])),
    info: (...a: unknown[]) => logger.info(String(a[0])),
    warn: (...a: unknown[]) =>
      String(a[0]).startsWith('No application metrics') ? logger.debug(String(a[0])) : logger.warn(String(a[0])),
    error: (...a: unknown[]) => logger.error(String(a[0])),
  },
});
export { MetricUnit };

/** Metrics every write records at the edge: lock wait, latency, fenced rejections. */
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
    etcdRpcs: r.etcdRpcs,
    txns: r.txns,
    lockWaitMs: r.lockWaitMs,
    latencyMs,
  });
}

/** Metrics of one scheduled-health invocation (all its passes). */
export function recordSweep(s: SweepStats, passes: number): void {
  metrics.addMetric('SweepPasses', MetricUnit.Count, passes);
  metrics.addMetric('Probes', MetricUnit.Count, s.probes);
  metrics.addMetric('ProbeFailures', MetricUnit.Count, s.probeFailures);
  metrics.addMetric('StatusChanges', MetricUnit.Count, s.statusChanges);
  metrics.addMetric('EtcdTxns', MetricUnit.Count, s.etcdTxns);
  metrics.addMetric('DriftRepaired', MetricUnit.Count, s.driftRepaired);
  metrics.addMetric('OrphansRemoved', MetricUnit.Count, s.orphansRemoved);
  metrics.addMetric('FencedOrUnappliedWrites', MetricUnit.Count, s.notApplied);
  logger.info('sweeps done', { passes, ...s, errors: s.errors.slice(0, 5) });
}

/** The sweep's log, on the one logger. */
export const sweepLog: SweepLog = {
  debug: (m, e) => logger.debug(m, e ?? {}),
  info: (m, e) => logger.info(m, e ?? {}),
  warn: (m, e) => logger.warn(m, e ?? {}),
  error: (m, e) => logger.error(m, e ?? {}),
};
