// Bounded state (DESIGN I8): deleted circuits' rows and routes are purged after
// DELETED_RETENTION_DAYS, and only once their frontend was released (their keys are gone from
// etcd). Their ids are not forgotten (I1): each purge records the id in retired_circuits in the
// same statement, and a retired id is never created again.
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

/**
 * Deletes up to `limit` circuits (their routes cascade) deleted more than `days` ago and released,
 * recording their ids in retired_circuits in the same statement, except the ids in `keep`.
 */
export async function purgeDeleted(q: Queryable, days: number, limit: number, keep: readonly string[] = []): Promise<string[]> {
  const r = await q.query<{ id: string }>(
    `WITH gone AS (
       DELETE FROM circuits WHERE id IN (
         SELECT id FROM circuits
          WHERE deleted_at <= now() - make_interval(days => $1) AND keys_removed_at IS NOT NULL
            AND NOT (id = ANY($3::uuid[]))
          ORDER BY deleted_at LIMIT $2)
       RETURNING id, worker, deleted_at)
     INSERT INTO retired_circuits (id, worker, deleted_at)
     SELECT id, worker, deleted_at FROM gone
     ON CONFLICT (id) DO NOTHING
     RETURNING id`,
    [days, limit, keep],
  );
  return r.rows.map((x) => x.id);
}

/** Of the given ids, those of circuits purged after their deletion (never to be created again). */
export async function retiredCircuits(q: Queryable, ids: readonly string[]): Promise<Set<string>> {
  if (ids.length === 0) return new Set();
  const r = await q.query<{ id: string }>('SELECT id FROM retired_circuits WHERE id = ANY($1::uuid[])', [ids]);
  return new Set(r.rows.map((x) => x.id));
}
