// The circuit services: every write goes through propagate (the fenced path).
export { propagate, type PropagateOptions, type PropagateResult } from './propagate.js';
export { createAndPublish, type Created } from './create.js';
export { getCircuit, listCircuits, type CircuitRead, type CircuitPage } from './read.js';
export { requestUnload, unload, completePendingUnloads, type UnloadRequested, type PendingUnloadsResult } from './unload.js';
export { updateRoutes } from './update-routes.js';
export { registerWorker } from './workers.js';
export { checkEtcdHistory, startNewEpoch, historyMismatch, type HistoryCheck } from './history.js';
export { checkDependencies, type DependencyHealth } from './dependencies.js';
export { circuitStatus, CIRCUIT_STATUSES, type CircuitStatus } from './status.js';
export { parseUnloadEvent } from './unload-event.js';
export { recordPropagate } from './report.js';
export { applyMigrations } from './migrations.js';
export { fleetStatus, type FleetStatus } from './fleet.js';
export { circuitLocks, healthTransitions, type LockView } from './operations.js';
export { planImport, applyImport, type ImportCandidate, type ImportPlan } from './import.js';
export { redrive, circuitIdOfDeadLetter, type DeadLetterSource, type DeadLetterMessage, type RedriveResult } from './redrive.js';
