// Register or update a worker. A worker's hostname and wildcard domain are part of its
// circuits' router rules, so a change re-publishes its live circuits through the fenced path.
import pLimit from 'p-limit';
import { ConflictError, upsertWorker, readWorker, type Queryable } from '../db/circuits.js';
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
    if (before !== null) await assertKeepsCircuitsRenderable(db, w);
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

/**
 * A worker change must not strand its live circuits: wildcard frontends need a wildcard domain,
 * and tcp wildcard frontends need TLS (SNI). Otherwise the database would hold circuits that can
 * no longer be rendered, and etcd would never converge for them.
 */
async function assertKeepsCircuitsRenderable(db: Queryable, w: Worker): Promise<void> {
  if (w.wildcardDomain !== null && w.tls) return;
  const r = await db.query<{ wildcard: string; tcp_wildcard: string }>(
    `SELECT count(*) FILTER (WHERE frontend_mode = 'wildcard') AS wildcard,
            count(*) FILTER (WHERE frontend_mode = 'wildcard' AND protocol = 'tcp') AS tcp_wildcard
       FROM circuits WHERE worker = $1 AND deleted_at IS NULL`,
    [w.authority],
  );
  const { wildcard, tcp_wildcard } = r.rows[0] ?? { wildcard: '0', tcp_wildcard: '0' };
  if (w.wildcardDomain === null && Number(wildcard) > 0) {
    throw new ConflictError(`worker ${w.authority} has ${wildcard} live wildcard circuit(s): it needs a wildcardDomain`, 'worker-in-use');
  }
  if (!w.tls && Number(tcp_wildcard) > 0) {
    throw new ConflictError(`worker ${w.authority} has ${tcp_wildcard} live tcp wildcard circuit(s): it needs tls`, 'worker-in-use');
  }
}
