// Unload requests are durable (DESIGN I6): DELETE records them before answering 202, the
// CircuitUnloadRequested event is the fast path, and sweeps complete whatever is pending past a
// grace period. And a deleted circuit's frontend is held until etcd holds none of its keys.
import type { Queryable } from './store.js';

/** Records the request (idempotent: the first time is kept); null when the circuit is unknown. */
export async function recordUnloadRequest(q: Queryable, id: string): Promise<{ deleted: boolean; requestedAt: string } | null> {
  const r = await q.query<{ deleted: boolean; requested_at: string }>(
    `UPDATE circuits SET unload_requested_at = COALESCE(unload_requested_at, now())
      WHERE id = $1
     RETURNING deleted_at IS NOT NULL AS deleted, unload_requested_at AS requested_at`,
    [id],
  );
  const row = r.rows[0];
  return row === undefined ? null : { deleted: row.deleted, requestedAt: new Date(row.requested_at).toISOString() };
}

export interface PendingUnload {
  id: string;
  worker: string;
  requestedAt: string;
}

/** Unloads requested at least `olderThanSeconds` ago and not completed, oldest first. */
export async function pendingUnloads(q: Queryable, olderThanSeconds: number, limit: number): Promise<PendingUnload[]> {
  const r = await q.query<{ id: string; worker: string; requested_at: string }>(
    `SELECT id, worker, unload_requested_at AS requested_at FROM circuits
      WHERE deleted_at IS NULL AND unload_requested_at IS NOT NULL
        AND unload_requested_at <= now() - make_interval(secs => $1)
      ORDER BY unload_requested_at LIMIT $2`,
    [olderThanSeconds, limit],
  );
  return r.rows.map((x) => ({ id: x.id, worker: x.worker, requestedAt: new Date(x.requested_at).toISOString() }));
}

/**
 * Frees a deleted circuit's frontend: called once its tombstone is applied (all its keys deleted
 * under its lock), after which no writer can write its keys again (I1). Idempotent.
 */
export async function markKeysRemoved(q: Queryable, id: string): Promise<boolean> {
  const r = await q.query('UPDATE circuits SET keys_removed_at = now() WHERE id = $1 AND deleted_at IS NOT NULL AND keys_removed_at IS NULL', [id]);
  return (r.rowCount ?? 0) > 0;
}

/** Deleted circuits whose keys are not yet confirmed gone (the sweep converges them), in id order. */
export async function unreleasedDeletions(q: Queryable, afterId: string | null, limit: number): Promise<Array<{ id: string; worker: string }>> {
  const r = await q.query<{ id: string; worker: string }>(
    `SELECT id, worker FROM circuits
      WHERE deleted_at IS NOT NULL AND keys_removed_at IS NULL AND ($1::uuid IS NULL OR id > $1::uuid)
      ORDER BY id LIMIT $2`,
    [afterId, limit],
  );
  return r.rows;
}
