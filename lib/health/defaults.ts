// Every tunable of scheduled-health in one place, with the reason for its value.
export const SWEEP_DEFAULTS = {
  /** Circuits claimed per statement. */
  batchSize: 100,
  /** Circuits claimed and not yet finished, at most (bounds memory whatever the fleet size). */
  maxCircuitsInFlight: 1000,
  /** Probes queued (claimed, not started) before claiming pauses, per probe slot. */
  pendingProbesPerSlot: 4,
  /** Unchanged routes buffered before their counters are written (one statement). */
  counterFlushRoutes: 1000,
  /** Counter statements in flight at once. */
  counterFlushConcurrency: 2,
  /** Events buffered before a publish call. */
  eventFlushSize: 100,
  /** Circuits going through propagate at once (health changes, drift, pending unloads). */
  propagateConcurrency: 16,
  /** Circuits per database page in the drift check. */
  driftCircuitsPageSize: 500,
  /** Keys per etcd range request in the drift check. */
  driftKeysPageSize: 5000,
  /** Drift repair runs on the first pass of an invocation and then at most this often. */
  driftEveryMs: 60_000,
  /** Pending unloads completed per pass. */
  pendingUnloadsPerPass: 1000,
  /** Deleted rows purged per pass. */
  purgePerPass: 1000,
  /**
   * Time kept after a claimed circuit's probe timeout for writing its results (counters, a status
   * change through its lock, events): a circuit is claimed only if its timeout and this fit before
   * the pass's deadline.
   */
  probeReserveMs: 1_000,
  /** Wait before the next pass after a pass whose claim statement failed (bounded by the deadline). */
  claimRetryMs: 1_000,
  /** Time left unused at the end of an invocation. */
  safetyMarginMs: 5_000,
} as const;
