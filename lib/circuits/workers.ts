// Register or update a worker. A worker's hostname and wildcard domain are part of its circuits'
// router rules, so a change re-publishes its live circuits through the fenced path.
import pLimit from 'p-limit';
import { registerWorker as storeWorker } from '../db/index.js';
import type { Worker } from '../model.js';
import type { Invocation } from '../runtime.js';
import { propagate } from './propagate.js';

export async function registerWorker(inv: Invocation, w: Worker): Promise<{ worker: Worker; created: boolean; republished: number; notApplied: number }> {
  const r = await storeWorker(inv.rt.db, w);
  const limit = pLimit(8);
  const results = await Promise.all(
    r.affectedCircuits.map((id) => limit(() => propagate(inv, id, { workerHint: w.authority }).catch(() => null))),
  );
  return { worker: r.worker, created: r.created, republished: r.affectedCircuits.length, notApplied: results.filter((x) => x === null || !x.applied).length };
}
