// What operators ask about the whole fleet (`circuitry status`, GET /v2/status): circuits by the
// facts their status derives from, pending unloads, workers. One statement each.
import type { Queryable } from './store.js';

export interface CircuitFacts {
  id: string;
  worker: string;
  generation: number;
  healthChecked: boolean;
  routes: number;
  healthy: number;
  unhealthy: number;
  unloadRequestedAt: string | null;
}

/** The facts of every circuit not yet deleted, in id order, a page at a time. */
export async function circuitFactsPage(q: Queryable, afterId: string | null, limit: number): Promise<CircuitFacts[]> {
  const r = await q.query<{ id: string; worker: string; generation: string; hc: boolean; routes: string; healthy: string; unhealthy: string; unload_requested_at: string | null }>(
    `SELECT c.id, c.worker, c.generation, c.hc_path IS NOT NULL AS hc, c.unload_requested_at,
            count(r.route_id) AS routes,
            count(r.route_id) FILTER (WHERE r.health_status = 'healthy') AS healthy,
            count(r.route_id) FILTER (WHERE r.health_status = 'unhealthy') AS unhealthy
       FROM circuits c LEFT JOIN routes r ON r.circuit_id = c.id
      WHERE c.deleted_at IS NULL AND ($1::uuid IS NULL OR c.id > $1::uuid)
      GROUP BY c.id ORDER BY c.id LIMIT $2`,
    [afterId, limit],
  );
  return r.rows.map((x) => ({
    id: x.id,
    worker: x.worker,
    generation: Number(x.generation),
    healthChecked: x.hc,
    routes: Number(x.routes),
    healthy: Number(x.healthy),
    unhealthy: Number(x.unhealthy),
    unloadRequestedAt: x.unload_requested_at === null ? null : new Date(x.unload_requested_at).toISOString(),
  }));
}

export interface FleetCounts {
  workers: number;
  pendingUnloads: number;
  oldestPendingUnloadAt: string | null;
  deletedAwaitingRelease: number;
}

export async function fleetCounts(q: Queryable): Promise<FleetCounts> {
  const r = await q.query<{ workers: string; pending: string; oldest: string | null; unreleased: string }>(
    `SELECT (SELECT count(*) FROM workers) AS workers,
            count(*) FILTER (WHERE deleted_at IS NULL AND unload_requested_at IS NOT NULL) AS pending,
            min(unload_requested_at) FILTER (WHERE deleted_at IS NULL) AS oldest,
            count(*) FILTER (WHERE deleted_at IS NOT NULL AND keys_removed_at IS NULL) AS unreleased
       FROM circuits`,
  );
  const x = r.rows[0]!;
  return {
    workers: Number(x.workers),
    pendingUnloads: Number(x.pending),
    oldestPendingUnloadAt: x.oldest === null ? null : new Date(x.oldest).toISOString(),
    deletedAwaitingRelease: Number(x.unreleased),
  };
}
