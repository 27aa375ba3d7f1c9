// The store's public surface: the database handle, and one module per concern.
export { createPool, createClient, type CreatePoolOptions } from './neon.js';
export { databaseOf, databaseFailure, pingDatabase, type Database, type Queryable } from './store.js';
export { migrate } from './migrate.js';
export { circuitFromRows, workerFromRow, type CircuitRow, type RouteRow, type ViewRow } from './rows.js';
export { LOCKED_STATEMENT, readForHolder, replaceRoutes, explainRoutesMiss, markDeleted, type DbFence } from './locked.js';
export {
  createCircuit,
  readCircuit,
  readCircuits,
  listCircuits,
  circuitStates,
  pageLiveCircuits,
  FRONTEND_RELEASE_RETRY_SECONDS,
  type ListPage,
  type CircuitState,
} from './circuits.js';
export { readWorker, registerWorker, listWorkers, type WorkerRegistration } from './workers.js';
export {
  claimDueCircuits,
  persistCounters,
  applyHealthChanges,
  nextDue,
  budgetedTimeoutMs,
  healthLoad,
  type ProbeBudget,
  type ClaimedCircuit,
  type ClaimedRoute,
  type CounterWrite,
  type RouteHealthWrite,
  type AppliedHealth,
  recentTransitions,
  purgeTransitions,
  type HealthTransition,
} from './health.js';
export { recordUnloadRequest, pendingUnloads, markKeysRemoved, unreleasedDeletions, type PendingUnload } from './unloads.js';
export { deletedAndReleasedBefore, purgeDeleted, retiredCircuits } from './retention.js';
export { latestEpoch, startEpoch, maxFenceRevision, type EpochRecord } from './epochs.js';
export { circuitFactsPage, fleetCounts, type CircuitFacts, type FleetCounts } from './fleet.js';
export { recordIntent, withdrawIntent, intentOutcome, replaceRoutesCombined, purgeIntents, type IntentOutcome, type CombinedChange } from './intents.js';
