// Create a circuit: check it against its worker, insert it (generation 1), publish it.
import { randomUUID } from 'node:crypto';
import { createCircuit, readWorker, type CircuitView } from '../db/circuits.js';
import type { CreateCircuitInput } from '../model.js';
import type { Invocation } from '../runtime.js';
import { propagate, type PropagateResult } from './propagate.js';
import { classifyFailure, DependencyError } from './errors.js';
import { LockLostError, LockTimeoutError } from '../etcd/mutex.js';
import { SessionLostError } from '../etcd/session.js';

/** The circuit is valid on its own but not on this worker. */
export class CircuitRejectedError extends Error {
  override name = 'CircuitRejectedError';
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(message);
  }
}

export async function createAndPublish(inv: Invocation, input: CreateCircuitInput): Promise<{ view: CircuitView; sync: PropagateResult }> {
  const db = inv.rt.db as unknown as Parameters<typeof readWorker>[0];
  const worker = await readWorker(db, input.worker).catch((e: unknown) => {
    throw classifyFailure(e, 'database');
  });
  if (worker === null) throw new CircuitRejectedError('worker', `worker ${input.worker} is not registered (PUT /v2/workers/${input.worker} first)`);
  if (input.frontend.mode === 'wildcard' && worker.wildcardDomain === null) {
    throw new CircuitRejectedError('frontend.mode', `worker ${worker.authority} has no wildcard domain`);
  }
  if (input.frontend.mode === 'wildcard' && input.protocol === 'tcp' && !worker.tls) {
    throw new CircuitRejectedError('frontend.mode', 'a tcp wildcard frontend needs TLS (SNI) on the worker');
  }
  const view = await createCircuit(db, input.id ?? randomUUID(), input).catch((e: unknown) => {
    throw classifyFailure(e, 'database');
  });
  let sync: PropagateResult;
  try {
    sync = await propagate(inv, view.circuit.id, { workerHint: view.circuit.worker });
  } catch (err) {
    // The circuit is committed: report it created but not yet published (DESIGN §3), never
    // "nothing was changed". The next sweep publishes it.
    if (!(err instanceof DependencyError || err instanceof LockTimeoutError || err instanceof LockLostError || err instanceof SessionLostError)) throw err;
    sync = {
      circuitId: view.circuit.id,
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
  return { view, sync };
}
