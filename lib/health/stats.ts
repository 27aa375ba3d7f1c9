// What one sweep did, summed over passes for the invocation's metrics and log.
export interface SweepStats {
  circuitsClaimed: number;
  batches: number;
  /** Claim statements that failed (the loop waits before the next pass). */
  claimFailures: number;
  probes: number;
  probeFailures: number;
  /** Probes refused by the address policy (counted in probeFailures too). */
  probesRefused: number;
  /** Status changes committed to the database. */
  statusChanges: number;
  /** Circuits whose effective status changed (each took its lock once). */
  circuitsChanged: number;
  countersWritten: number;
  /** Results discarded because the route's address or health changed while it was probed. */
  resultsDiscarded: number;
  /** Circuits whose committed change could not be applied to etcd (the next sweep converges). */
  notApplied: number;
  eventsPublished: number;
  publishFailures: number;
  /** A new fencing epoch was started (etcd's history changed under the database). */
  epochsStarted: number;
  /** Unloads completed because their event never did (requested more than UNLOAD_GRACE_SECONDS ago). */
  pendingUnloadsCompleted: number;
  driftChecked: number;
  driftRepaired: number;
  /** Deleted circuits whose frontend was freed (their keys confirmed gone). */
  frontendsReleased: number;
  /** Keys named after circuits the database does not know (reported; deleted with ORPHAN_POLICY=delete). */
  orphanKeys: number;
  orphansRemoved: number;
  /** Keys under a worker root outside circuitry's naming: never touched. */
  foreignKeys: number;
  tombstonesRetired: number;
  rowsPurged: number;
  /** Write transactions sent to etcd (apply + orphan deletes; lock acquisitions are not writes to Traefik's keys). */
  etcdTxns: number;
  etcdRpcs: number;
  lockAcquisitions: number;
  dbRoundTrips: number;
  /** The first MAX_ERRORS errors (errorCount has them all). */
  errors: string[];
  errorCount: number;
  probeMs: number;
  driftMs: number;
  durationMs: number;
}

export const MAX_ERRORS = 100;

export function emptyStats(): SweepStats {
  return {
    circuitsClaimed: 0,
    batches: 0,
    claimFailures: 0,
    probes: 0,
    probeFailures: 0,
    probesRefused: 0,
    statusChanges: 0,
    circuitsChanged: 0,
    countersWritten: 0,
    resultsDiscarded: 0,
    notApplied: 0,
    eventsPublished: 0,
    publishFailures: 0,
    epochsStarted: 0,
    pendingUnloadsCompleted: 0,
    driftChecked: 0,
    driftRepaired: 0,
    frontendsReleased: 0,
    orphanKeys: 0,
    orphansRemoved: 0,
    foreignKeys: 0,
    tombstonesRetired: 0,
    rowsPurged: 0,
    etcdTxns: 0,
    etcdRpcs: 0,
    lockAcquisitions: 0,
    dbRoundTrips: 0,
    errors: [],
    errorCount: 0,
    probeMs: 0,
    driftMs: 0,
    durationMs: 0,
  };
}

export function addError(stats: Pick<SweepStats, 'errors' | 'errorCount'>, message: string): void {
  stats.errorCount++;
  if (stats.errors.length < MAX_ERRORS) stats.errors.push(message);
}

export function addStats(into: SweepStats, s: SweepStats): void {
  for (const k of Object.keys(into) as Array<keyof SweepStats>) {
    if (k === 'errors') into.errors.push(...s.errors.slice(0, Math.max(0, MAX_ERRORS - into.errors.length)));
    else (into[k] as number) += s[k] as number;
  }
}
