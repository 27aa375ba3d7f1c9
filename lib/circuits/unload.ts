// Unload: mark the circuit deleted in the database (idempotent), then remove all of its keys
// and write the meta tombstone, under the circuit's lock. A duplicate or late delivery finds
// the tombstone at the same generation and writes nothing.
import { markDeleted } from '../db/circuits.js';
import type { Invocation } from '../runtime.js';
import { propagate, type PropagateOptions, type PropagateResult } from './propagate.js';

export function unload(inv: Invocation, circuitId: string, opts: Omit<PropagateOptions, 'change'> = {}): Promise<PropagateResult> {
  return propagate(inv, circuitId, { ...opts, change: (db, fence) => markDeleted(db, circuitId, fence) });
}
