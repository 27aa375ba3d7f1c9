// Health checking and the sweep's other duties (drift, pending unloads, retention).
export { runSweep, type SweepOptions } from './sweep.js';
export { runSweeps, type RunSweepsOptions, type SweepsResult } from './passes.js';
export { emptyStats, addStats, type SweepStats } from './stats.js';
export { SWEEP_DEFAULTS } from './defaults.js';
export { computeDrift, repairDrift, type DriftPlan, type OrphanCircuit } from './drift.js';
export { getProber, closeProbers } from './probers.js';
export { Prober, type ProbeResult, type ProbeTarget } from './probe.js';
export { nextHealth, inInitialDelay } from './state.js';
export { decide } from './decide.js';
export { healthEventPublisher } from './publish.js';
export { silentLog, type SweepLog } from './log.js';
export type { RouteHealthChanged, PublishHealthEvents } from './events.js';
export { PriorityLimiter } from './queue.js';
export { checkAddress, parseCidr, type Cidr } from './address.js';
export { dispatchSweepers, LATE_AFTER_SECONDS, type SweeperAssignment, type SweeperLauncher, type DispatchResult } from './dispatch.js';
export { fanOutFor, invocationsFor, FAN_OUT_DEFAULTS, type FanOut, type FanOutPolicy, type HealthLoad } from './fan-out.js';
export { eventSweeperLauncher, parseSweepEvent } from './launch.js';
