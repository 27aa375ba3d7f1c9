// Replace a circuit's routes: under the lock, one database statement re-reads the circuit, checks
// If-Match, replaces the routes and bumps the generation; then the fenced apply.
import { replaceRoutes } from '../db/index.js';
import type { RouteInput } from '../model.js';
import type { Invocation } from '../runtime.js';
import { propagate, type PropagateOptions, type PropagateResult } from './propagate.js';

export function updateRoutes(
  inv: Invocation,
  circuitId: string,
  routes: readonly RouteInput[],
  ifMatch?: number,
  opts: Omit<PropagateOptions, 'change'> = {},
): Promise<PropagateResult> {
  return propagate(inv, circuitId, { ...opts, change: (db, fence) => replaceRoutes(db, circuitId, routes, ifMatch, fence) });
}
