// Create a circuit: insert it (generation 1) checked against its worker, then publish it. POST is
// idempotent for the same id and body: a client retrying after a timeout gets the stored circuit.
import { randomUUID } from 'node:crypto';
import { createCircuit, readCircuit } from '../db/index.js';
import type { CircuitView, CreateCircuitInput } from '../model.js';
import { ConflictError, isRetryable } from '../errors.js';
import type { Invocation } from '../runtime.js';
import { propagate, type PropagateResult } from './propagate.js';
import { creationDigest, sameAsCreated } from './same.js';

export interface Created {
  view: CircuitView;
  /** False when the same request had already created it (an idempotent retry). */
  created: boolean;
  sync: PropagateResult;
}

export async function createAndPublish(inv: Invocation, input: CreateCircuitInput): Promise<Created> {
  const id = input.id ?? randomUUID();
  const digest = creationDigest(input);
  let view: CircuitView;
  let created = true;
  try {
    view = await createCircuit(inv.rt.db, id, input, digest);
  } catch (err) {
    if (!(err instanceof ConflictError && err.code === 'exists' && input.id !== undefined)) throw err;
    const stored = await readCircuit(inv.rt.db, id);
    const same = stored !== null && (stored.circuit.createDigest !== null ? stored.circuit.createDigest === digest : sameAsCreated(stored.circuit, input));
    if (stored === null || stored.circuit.deletedAt !== null || !same) {
      throw new ConflictError(`circuit ${id} already exists, created by a different request`, 'exists');
    }
    view = stored;
    created = false;
  }
  let sync: PropagateResult;
  try {
    sync = await propagate(inv, id, { workerHint: view.circuit.worker });
  } catch (err) {
    // The circuit is committed: report it created but not yet published (DESIGN §3), never
    // "nothing was changed". The next sweep publishes it.
    if (!isRetryable(err)) throw err;
    sync = {
      circuitId: id,
      found: true,
      generation: view.circuit.generation,
      deleted: false,
      applied: false,
      unchanged: false,
      notAppliedReason: err.message,
      txns: 0,
      etcdRpcs: 0,
      dbQueries: 0,
      lockWaitMs: 0,
    };
  }
  return { view, created, sync };
}
