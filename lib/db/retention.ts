// Bounded state (DESIGN I8): deleted circuits are forgotten after DELETED_RETENTION_DAYS, and
// only once their frontend was released (their keys are gone from etcd).
import type { Queryable } from './store.js';

/** Of the given circuits, those deleted at least `seconds` ago whose keys are confirmed gone. */
export async function deletedAndReleasedBefore(q: Queryable, ids: readonly string[], seconds: number): Promise<Set<string>> {
  if (ids.length === 0) return new Set();
  const r = await q.query<{ id: string }>(
    `SELECT id FROM circuits
      WHERE id = ANY($1::uuid[]) AND deleted_at <= now() - make_interval(secs => $2) AND keys_removed_at IS NOT NULL`,
    [ids, seconds],
  );
  return new Set(r.rows.map((x) => x.id));
}

/** Deletes up to `limit` circuits (their routes cascade) deleted more than `days` ago and released. */
export async function purgeDeleted(q: Queryable, days: number, limit: number): Promise<string[]> {
  const r = await q.query<{ id: string }>(
    `DELETE FROM circuits WHERE id IN (
       SELECT id FROM circuits
        WHERE deleted_at <= now() - make_interval(days => $1) AND keys_removed_at IS NOT NULL
        ORDER BY deleted_at LIMIT $2)
     RETURNING id`,
    [days, limit],
  );
  return r.rows.map((x) => x.id);
}
