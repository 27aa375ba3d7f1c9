// Register or update a worker. A worker's hostname and wildcard domain are part of its
// circuits' router rules, so a change re-publishes its live circuits through the fenced path.
import pLimit from 'p-limit';
import { upsertWorker, readWorker, type Queryable } from '../db/circuits.js';
import type { Worker } from '../model.js';
import type { Invocation } from '../runtime.js';
import { propagate } from './propagate.js';
import { classifyFailure } from './errors.js';

export async function registerWorker(inv: Invocation, w: Worker): Promise<{ worker: Worker; created: boolean; republished: number; notApplied: number }> {
  const db = inv.rt.db as unknown as Queryable;
  let before: Worker | null;
  let result: { worker: Worker; created: boolean };
  let ids: string[] = [];
  try {
    before = await readWorker(db, w.authority);
    result = await upsertWorker(db, w);
    const changed = before !== null && (before.hostname !== w.hostname || before.wildcardDomain !== w.wildcardDomain || before.tls !== w.tls);
    if (changed) {
      const r = await db.query<{ id: string }>('SELECT id FROM circuits WHERE worker = $1 AND deleted_at IS NULL', [w.authority]);
      ids = r.rows.map((x) => x.id);
    }
  } catch (err) {
    throw classifyFailure(err, 'database');
  }
  const limit = pLimit(8);
  const results = await Promise.all(
    ids.map((id) => limit(() => propagate(inv, id, { workerHint: w.authority }).catch(() => null))),
  );
  return { ...result, republished: ids.length, notApplied: results.filter((r) => r === null || !r.applied).length };
}
