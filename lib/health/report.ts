// Metrics and the summary log line of one scheduled-health invocation (all its passes).
import { logger, metrics, MetricUnit } from '../observability.js';
import type { SweepStats } from './stats.js';

/** The counters of a sweep published as metrics: metric name, and its field of SweepStats. */
const SWEEP_METRICS: ReadonlyArray<[string, keyof SweepStats]> = [
  ['Probes', 'probes'],
  ['ProbeFailures', 'probeFailures'],
  ['StatusChanges', 'statusChanges'],
  ['EtcdTxns', 'etcdTxns'],
  ['DriftRepaired', 'driftRepaired'],
  ['OrphanKeys', 'orphanKeys'],
  ['ForeignKeys', 'foreignKeys'],
  ['OrphansRemoved', 'orphansRemoved'],
  ['PendingUnloadsCompleted', 'pendingUnloadsCompleted'],
  ['TombstonesRetired', 'tombstonesRetired'],
  ['EpochsStarted', 'epochsStarted'],
  ['FencedOrUnappliedWrites', 'notApplied'],
];

export function recordSweep(s: SweepStats, passes: number): void {
  metrics.addMetric('SweepPasses', MetricUnit.Count, passes);
  for (const [name, field] of SWEEP_METRICS) metrics.addMetric(name, MetricUnit.Count, s[field] as number);
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
