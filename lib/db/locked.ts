// The statements a circuit's lock holder runs (DESIGN I3). Every one of them advances the
// circuit's database fence in the statement it reads with:
//     SET (lock_epoch, lock_revision) = <holder's fence>  WHERE <holder's fence> >= (lock_epoch, lock_revision)
// A holder superseded by a newer one can then neither read nor commit: the newer holder has
// necessarily advanced the fence in its own first statement, whether it went on to change the
// circuit or only to read it (a drift repair, a no-op propagate). Such a holder gets a
// StaleFenceError and writes nothing to etcd.
//
// Parameters: $1 the circuit id, $2 the fence's epoch, $3 its revision. Each statement starts with
// LOCKED_STATEMENT, so tools observing the database (the chaos harness) can tell them apart.
import type { CircuitView, RouteInput } from '../model.js';
import { ConflictError, NotFoundError, StaleFenceError } from '../errors.js';
import type { Queryable } from './store.js';
import { toView, viewColumns, type ViewRow } from './rows.js';

export const LOCKED_STATEMENT = '/* circuitry:locked */';

/** A lock holder's fence: the fencing epoch and the lock key's create revision. */
export interface DbFence {
  epoch: number;
  revision: string;
}

/** SQL: the holder's fence is not older than the circuit's (alias c). */
export const FENCE_HOLDS = '(c.lock_epoch, c.lock_revision) <= ($2::bigint, $3::bigint)';
/** SQL: the SET items that advance the fence to the holder's. */
export const ADVANCE_FENCE = 'lock_epoch = $2::bigint, lock_revision = $3::bigint';

export const fenceParams = (id: string, f: DbFence): [string, number, string] => [id, f.epoch, f.revision];

/** Why a fenced statement matched no row: the circuit is unknown (null) or the fence is stale (throws). */
async function explainMiss(q: Queryable, id: string, f: DbFence): Promise<{ generation: number; deleted: boolean; unloading: boolean } | null> {
  const r = await q.query<{ generation: string; deleted: boolean; unloading: boolean; stale: boolean }>(
    `SELECT c.generation, c.deleted_at IS NOT NULL AS deleted, c.unload_requested_at IS NOT NULL AS unloading,
            NOT (${FENCE_HOLDS}) AS stale
       FROM circuits c WHERE c.id = $1`,
    fenceParams(id, f),
  );
  const row = r.rows[0];
  if (row === undefined) return null;
  if (row.stale) throw new StaleFenceError(`circuit ${id} was touched under a newer lock than this holder's (${f.epoch}:${f.revision}); nothing was changed`);
  return { generation: Number(row.generation), deleted: row.deleted, unloading: row.unloading };
}

/** The circuit as the holder must see it (deleted ones included), advancing the fence; null when unknown. */
export async function readForHolder(q: Queryable, id: string, f: DbFence): Promise<CircuitView | null> {
  const r = await q.query<ViewRow>(
    `${LOCKED_STATEMENT}
     WITH c AS (
       UPDATE circuits AS c SET ${ADVANCE_FENCE}
        WHERE c.id = $1 AND ${FENCE_HOLDS}
       RETURNING c.*)
     SELECT ${viewColumns('c')} FROM c`,
    fenceParams(id, f),
  );
  if (r.rows[0]) return toView(r.rows[0]);
  await explainMiss(q, id, f);
  return null;
}

export const routesJson = (routes: readonly RouteInput[]) => JSON.stringify(routes.map((r, position) => ({ ...r, position })));

/** jsonb_to_recordset of a routes parameter. */
export const inputRoutes = (param: string) =>
  `jsonb_to_recordset(${param}::jsonb) AS i("routeId" uuid, "sessionId" uuid, host text, port int, "trafficRatio" float8, position int)`;

/**
 * The CTEs `del` and `up` that make circuit `c`'s routes exactly the JSON array `routes` (an SQL
 * expression): routes not in it are deleted; the others are upserted, and a route that keeps its
 * id, host and port keeps its health (a new address is a new backend and starts over).
 * `keptThroughout`, a condition on the existing row `routes`, narrows that further (several changes
 * applied as one: a route some of them removed has started over, as it would one by one).
 */
export function replaceRoutesCtes(routes: string, keptThroughout = 'TRUE'): string {
  const same = `routes.host = EXCLUDED.host AND routes.port = EXCLUDED.port AND (${keptThroughout})`;
  return `del AS (
       DELETE FROM routes USING c
        WHERE routes.circuit_id = c.id
          AND routes.route_id NOT IN (SELECT (x->>'routeId')::uuid FROM jsonb_array_elements((${routes})::jsonb) x)
       RETURNING routes.route_id),
     up AS (
       INSERT INTO routes AS routes (circuit_id, route_id, session_id, host, port, traffic_ratio, position)
       SELECT c.id, i."routeId", i."sessionId", i.host, i.port, i."trafficRatio", i.position
         FROM c, ${inputRoutes(routes)}
       ON CONFLICT (circuit_id, route_id) DO UPDATE SET
         session_id = EXCLUDED.session_id,
         traffic_ratio = EXCLUDED.traffic_ratio,
         position = EXCLUDED.position,
         host = EXCLUDED.host,
         port = EXCLUDED.port,
         health_status = CASE WHEN ${same} THEN routes.health_status ELSE 'unknown' END,
         consecutive_successes = CASE WHEN ${same} THEN routes.consecutive_successes ELSE 0 END,
         consecutive_failures = CASE WHEN ${same} THEN routes.consecutive_failures ELSE 0 END,
         last_checked_at = CASE WHEN ${same} THEN routes.last_checked_at ELSE NULL END,
         last_error = CASE WHEN ${same} THEN routes.last_error ELSE NULL END,
         created_at = CASE WHEN ${same} THEN routes.created_at ELSE now() END
       RETURNING routes.*)`;
}

/**
 * Replaces a live circuit's routes and bumps its generation, in one statement. A route that keeps
 * its id, host and port keeps its health; a new address is a new backend and starts over. With
 * ifMatch, applies only at that generation. A circuit whose unload was requested is not changed.
 *
 * The statement only applies if no other generation of the circuit committed after its snapshot
 * was taken (the `snap` guard): otherwise the UPDATE, having waited for the other writer's row
 * lock, would be re-evaluated on the new row while `del` still scanned the routes of the old
 * snapshot, and the routes that writer inserted would survive the replacement. Without ifMatch
 * the statement is then re-run on a fresh snapshot; with it, it is a mismatch.
 */
export async function replaceRoutes(q: Queryable, id: string, routes: readonly RouteInput[], ifMatch: number | undefined, f: DbFence): Promise<CircuitView> {
  for (let attempt = 1; ; attempt++) {
    const view = await replaceRoutesOnce(q, id, routes, ifMatch, f);
    if (view !== null) return view;
    await explainRoutesMiss(q, id, ifMatch, f, attempt);
  }
}

/**
 * Why a route change's fenced statement matched no row, as the error to answer with: unknown or
 * deleted (404), unloading or an If-Match mismatch (409), a stale fence (StaleFenceError); returns
 * when a generation committed concurrently and the statement may run again (attempts 1 and 2).
 */
export async function explainRoutesMiss(q: Queryable, id: string, ifMatch: number | undefined, f: DbFence, attempt: number): Promise<void> {
  const row = await explainMiss(q, id, f);
  if (row === null || row.deleted) throw new NotFoundError(`circuit ${id} ${row ? 'was deleted' : 'does not exist'}`);
  if (row.unloading) throw new ConflictError(`circuit ${id} is being unloaded; its routes can no longer change`, 'unloading');
  if (ifMatch !== undefined && row.generation !== ifMatch) {
    throw new ConflictError(`circuit ${id} is at generation ${row.generation}, not ${ifMatch}`, 'generation-mismatch');
  }
  if (attempt >= 3) throw new ConflictError(`circuit ${id} kept changing concurrently (now at generation ${row.generation}); retry`, 'generation-mismatch');
}

async function replaceRoutesOnce(q: Queryable, id: string, routes: readonly RouteInput[], ifMatch: number | undefined, f: DbFence): Promise<CircuitView | null> {
  const r = await q.query<ViewRow>(
    `${LOCKED_STATEMENT}
     WITH snap AS (
       SELECT generation FROM circuits WHERE id = $1),
     c AS (
       UPDATE circuits AS c SET generation = c.generation + 1, updated_at = now(), ${ADVANCE_FENCE}
        WHERE c.id = $1 AND c.deleted_at IS NULL AND c.unload_requested_at IS NULL
          AND ($5::bigint IS NULL OR c.generation = $5::bigint)
          AND ${FENCE_HOLDS}
          AND c.generation = (SELECT generation FROM snap)
       RETURNING c.*),
     ${replaceRoutesCtes('$4')}
     SELECT row_to_json(c) AS circuit,
            (SELECT json_agg(row_to_json(up) ORDER BY up.position) FROM up) AS routes,
            (SELECT row_to_json(w) FROM workers w WHERE w.authority = c.worker) AS worker
       FROM c`,
    [...fenceParams(id, f), routesJson(routes), ifMatch ?? null],
  );
  return r.rows[0] ? toView(r.rows[0]) : null;
}

/**
 * Marks a circuit deleted (idempotent: an already deleted circuit is returned as it is, with its
 * generation unchanged — the read still advances the fence). Null when the circuit does not exist.
 */
export async function markDeleted(q: Queryable, id: string, f: DbFence): Promise<CircuitView | null> {
  const r = await q.query<ViewRow>(
    `${LOCKED_STATEMENT}
     WITH c AS (
       UPDATE circuits AS c SET
              deleted_at = coalesce(c.deleted_at, now()),
              generation = c.generation + (c.deleted_at IS NULL)::int,
              updated_at = CASE WHEN c.deleted_at IS NULL THEN now() ELSE c.updated_at END,
              ${ADVANCE_FENCE}
        WHERE c.id = $1 AND ${FENCE_HOLDS}
       RETURNING c.*)
     SELECT ${viewColumns('c')} FROM c`,
    fenceParams(id, f),
  );
  if (r.rows[0]) return toView(r.rows[0]);
  // Unknown, or the fence is stale: explainMiss tells which (and throws for a stale fence).
  await explainMiss(q, id, f);
  return null;
}
