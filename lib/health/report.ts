// Metrics and the summary log line of one scheduled-health invocation (all its passes).
import { logger, metrics, MetricUnit } from '../observability.js';
import type { SweepStats } from './stats.js';

export function recordSweep(s: SweepStats, passes: number): void {
  metrics.addMetric('SweepPasses', MetricUnit.Count, passes);
  metrics.addMetric('Probes', MetricUnit.Count, s.probes);
  metrics.addMetric('ProbeFailures', MetricUnit.Count, s.probeFailures);
  metrics.addMetric('StatusChanges', MetricUnit.Count, s.statusChanges);
  metrics.addMetric('EtcdTxns', MetricUnit.Count, s.etcdTxns);
  metrics.addMetric('DriftRepaired', MetricUnit.Count, s.driftRepaired);
  metrics.addMetric('OrphanKeys', MetricUnit.Count, s.orphanKeys);
  metrics.addMetric('ForeignKeys', MetricUnit.Count, s.foreignKeys);
  metrics.addMetric('OrphansRemoved', MetricUnit.Count, s.orphansRemoved);
  metrics.addMetric('PendingUnloadsCompleted', MetricUnit.Count, s.pendingUnloadsCompleted);
  metrics.addMetric('TombstonesRetired', MetricUnit.Count, s.tombstonesRetired);
  metrics.addMetric('EpochsStarted', MetricUnit.Count, s.epochsStarted);
  metrics.addMetric('FencedOrUnappliedWrites', MetricUnit.Count, s.notApplied);
  logger.info('sweeps done', { passes, ...s, errors: s.errors.slice(0, 5) });
}

/** The dispatcher's sizing of the work: how many sweepers, how many it started. */
export function recordDispatch(d: { sweepers: number; started: number; failed: number; capped: boolean; demandRoutesPerSecond: number }): void {
  metrics.addMetric('Sweepers', MetricUnit.Count, d.sweepers);
  metrics.addMetric('SweepersStarted', MetricUnit.Count, d.started);
  if (d.failed > 0) metrics.addMetric('SweepersNotStarted', MetricUnit.Count, d.failed);
  if (d.capped) metrics.addMetric('SweepersCapped', MetricUnit.Count, 1);
  metrics.addMetric('HealthDemandRoutesPerSecond', MetricUnit.CountPerSecond, d.demandRoutesPerSecond);
}
