// Workers: one Traefik per worker reads its own root. A worker's hostname, wildcard domain and
// TLS are part of its circuits' router rules.
import type { Worker } from '../model.js';
import { ConflictError } from '../errors.js';
import { failpoint } from '../failpoints.js';
import type { Database, Queryable } from './store.js';
import { workerFromRow, type WorkerRow } from './rows.js';

export async function readWorker(q: Queryable, authority: string): Promise<Worker | null> {
  const r = await q.query<WorkerRow>('SELECT authority, hostname, wildcard_domain, tls FROM workers WHERE authority = $1', [authority]);
  return r.rows[0] ? workerFromRow(r.rows[0]) : null;
}

export interface WorkerRegistration {
  worker: Worker;
  created: boolean;
  /** Live circuits whose rendering changed with the worker (to re-publish). */
  affectedCircuits: string[];
}

/**
 * Creates or updates a worker, refusing a change that would strand its live circuits (wildcard
 * frontends need a wildcard domain, tcp wildcard frontends need TLS). One transaction: the worker
 * row is locked for update BEFORE its circuits are counted, and circuit creation share-locks it,
 * so a create either commits before the count (and is counted) or waits and then sees the new
 * worker.
 */
export function registerWorker(db: Database, w: Worker): Promise<WorkerRegistration> {
  return db.transaction(async (q) => {
    const locked = await q.query<WorkerRow>('SELECT authority, hostname, wildcard_domain, tls FROM workers WHERE authority = $1 FOR UPDATE', [w.authority]);
    const before = locked.rows[0] ? workerFromRow(locked.rows[0]) : null;
    await failpoint('db.registerWorker.locked');
    if (before !== null && (w.wildcardDomain === null || !w.tls)) {
      const r = await q.query<{ wildcard: string; tcp_wildcard: string }>(
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
    const r = await q.query<WorkerRow & { created: boolean }>(
      `INSERT INTO workers (authority, hostname, wildcard_domain, tls) VALUES ($1, $2, $3, $4)
       ON CONFLICT (authority) DO UPDATE
         SET hostname = EXCLUDED.hostname, wildcard_domain = EXCLUDED.wildcard_domain, tls = EXCLUDED.tls, updated_at = now()
       RETURNING authority, hostname, wildcard_domain, tls, (xmax = 0) AS created`,
      [w.authority, w.hostname, w.wildcardDomain, w.tls],
    );
    const row = r.rows[0]!;
    const changed = before !== null && (before.hostname !== w.hostname || before.wildcardDomain !== w.wildcardDomain || before.tls !== w.tls);
    let affectedCircuits: string[] = [];
    if (changed) {
      const ids = await q.query<{ id: string }>('SELECT id FROM circuits WHERE worker = $1 AND deleted_at IS NULL', [w.authority]);
      affectedCircuits = ids.rows.map((x) => x.id);
    }
    return { worker: workerFromRow(row), created: row.created, affectedCircuits };
  });
}

export async function listWorkers(q: Queryable): Promise<Worker[]> {
  const r = await q.query<WorkerRow>('SELECT authority, hostname, wildcard_domain, tls FROM workers ORDER BY authority');
  return r.rows.map(workerFromRow);
}
