// Fencing epochs (DESIGN I3: the fence is bound to the etcd cluster's identity and history). One
// row per etcd history circuitry has written to; fences taken in a later epoch win over every
// fence of an earlier one, whatever their revisions.
import type { Queryable } from './store.js';
import { pgError } from './rows.js';

export interface EpochRecord {
  epoch: number;
  clusterId: string;
  marker: string;
  /** The etcd revision when the epoch started. */
  startedRevision: string;
  reason: string;
  startedAt: string;
}

export async function latestEpoch(q: Queryable): Promise<EpochRecord | null> {
  const r = await q.query<{ epoch: string; cluster_id: string; marker: string; started_revision: string; reason: string; started_at: string }>(
    'SELECT epoch, cluster_id, marker, started_revision, reason, started_at FROM etcd_epochs ORDER BY epoch DESC LIMIT 1',
  );
  const x = r.rows[0];
  return x === undefined
    ? null
    : { epoch: Number(x.epoch), clusterId: x.cluster_id, marker: x.marker, startedRevision: String(x.started_revision), reason: x.reason, startedAt: new Date(x.started_at).toISOString() };
}

/** Records epoch `next` if every recorded epoch is older; false when another process recorded it (or a newer one) first. */
export async function startEpoch(q: Queryable, e: { next: number; clusterId: string; marker: string; revision: string; reason: string }): Promise<boolean> {
  try {
    const r = await q.query(
      `INSERT INTO etcd_epochs (epoch, cluster_id, marker, started_revision, reason)
       SELECT $1, $2, $3, $4, $5
        WHERE (SELECT coalesce(max(epoch), 0) FROM etcd_epochs) < $1::bigint`,
      [e.next, e.clusterId, e.marker, e.revision, e.reason],
    );
    return (r.rowCount ?? 0) > 0;
  } catch (err) {
    if (pgError(err).code === '23505') return false;
    throw err;
  }
}

/** The highest lock revision recorded in `epoch` (0 when none). */
export async function maxFenceRevision(q: Queryable, epoch: number): Promise<bigint> {
  const r = await q.query<{ max: string | null }>('SELECT max(lock_revision) AS max FROM circuits WHERE lock_epoch = $1', [epoch]);
  return BigInt(r.rows[0]?.max ?? 0);
}
