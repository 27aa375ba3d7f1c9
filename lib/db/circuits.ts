// Circuits outside any lock: creation (a new circuit has no lock holder to fence against yet),
// and the plain reads of the API, the sweep and the tools.
import type { CircuitView, CreateCircuitInput } from '../model.js';
import { ConflictError, RejectedError } from '../errors.js';
import type { Queryable } from './store.js';
import { inputRoutes } from './locked.js';
import { pgError, toView, viewColumns, workerFromRow, type ViewRow, type WorkerRow } from './rows.js';

/** The seconds a client should wait before retrying a frontend whose previous owner's keys are being removed. */
export const FRONTEND_RELEASE_RETRY_SECONDS = 5;

/**
 * Inserts a circuit with its routes at generation 1. The worker row is share-locked in the same
 * statement, so a concurrent change of the worker (which locks it for update and then checks its
 * live circuits) either sees this circuit or is seen by it: a wildcard circuit never commits on a
 * worker whose wildcard domain was just removed.
 */
export async function createCircuit(q: Queryable, id: string, c: CreateCircuitInput, createDigest: string | null = null): Promise<CircuitView> {
  const hc = c.healthCheck;
  const params = [
    id,
    c.worker,
    c.protocol,
    c.appMode,
    c.frontend.mode,
    c.frontend.mode === 'port' ? c.frontend.port : null,
    c.frontend.mode === 'wildcard' ? c.frontend.subdomain : null,
    c.allowedClientIps,
    hc?.path ?? null,
    hc?.intervalSeconds ?? null,
    hc?.timeoutMs ?? null,
    hc?.expectedStatus ?? null,
    hc?.unhealthyThreshold ?? null,
    hc?.healthyThreshold ?? null,
    hc?.initialDelaySeconds ?? null,
    JSON.stringify(c.routes.map((r, position) => ({ ...r, position }))),
    createDigest,
  ];
  let rows: Array<Partial<ViewRow> & { worker_row: WorkerRow }>;
  try {
    const r = await q.query<Partial<ViewRow> & { worker_row: WorkerRow }>(
      `WITH w AS (
         SELECT * FROM workers WHERE authority = $2 FOR SHARE),
       c AS (
         INSERT INTO circuits (id, worker, protocol, app_mode, frontend_mode, frontend_port, frontend_subdomain,
                               allowed_client_ips, hc_path, hc_interval_seconds, hc_timeout_ms, hc_expected_status,
                               hc_unhealthy_threshold, hc_healthy_threshold, hc_initial_delay_seconds, create_digest)
         SELECT $1, w.authority, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $17
           FROM w
          WHERE $5 <> 'wildcard' OR (w.wildcard_domain IS NOT NULL AND ($3 <> 'tcp' OR w.tls))
         RETURNING *),
       ins AS (
         INSERT INTO routes (circuit_id, route_id, session_id, host, port, traffic_ratio, position)
         SELECT c.id, i."routeId", i."sessionId", i.host, i.port, i."trafficRatio", i.position
           FROM c, ${inputRoutes('$16')}
         RETURNING *)
       SELECT (SELECT row_to_json(c) FROM c) AS circuit,
              (SELECT json_agg(row_to_json(ins) ORDER BY ins.position) FROM ins) AS routes,
              row_to_json(w) AS worker, row_to_json(w) AS worker_row
         FROM w`,
      params,
    );
    rows = r.rows;
  } catch (err) {
    throw await createConflict(q, err, id, c);
  }
  const row = rows[0];
  if (row === undefined) throw new RejectedError('worker', `worker ${c.worker} is not registered (PUT /v2/workers/${c.worker} first)`);
  if (row.circuit == null) {
    const w = workerFromRow(row.worker_row);
    throw w.wildcardDomain === null
      ? new RejectedError('frontend.mode', `worker ${w.authority} has no wildcard domain`)
      : new RejectedError('frontend.mode', 'a tcp wildcard frontend needs TLS (SNI) on the worker');
  }
  return toView(row as ViewRow);
}

async function createConflict(q: Queryable, err: unknown, id: string, c: CreateCircuitInput): Promise<unknown> {
  const e = pgError(err);
  // A purged circuit's id stays retired (migration 0007): refused exactly as a deleted row is.
  if (e.code === '23505' && (e.constraint === 'circuits_pkey' || e.constraint === 'retired_circuits_pkey')) {
    const existing = await q.query<{ deleted: boolean }>(
      `SELECT EXISTS (SELECT 1 FROM circuits WHERE id = $1 AND deleted_at IS NOT NULL)
           OR EXISTS (SELECT 1 FROM retired_circuits WHERE id = $1) AS deleted`,
      [id],
    );
    const deleted = existing.rows[0]?.deleted === true;
    return new ConflictError(deleted ? `circuit ${id} was deleted; ids are never reused` : `circuit ${id} already exists`, deleted ? 'deleted' : 'exists');
  }
  if (e.code === '23505' && (e.constraint === 'circuits_frontend_port' || e.constraint === 'circuits_frontend_subdomain')) {
    const what = c.frontend.mode === 'port' ? `port ${c.frontend.port}` : `subdomain ${c.frontend.subdomain}`;
    // Taken by a live circuit, or by a deleted one whose keys may still be in etcd (its router
    // would answer on the same frontend): the latter frees itself once its keys are gone.
    const holder = await q.query<{ id: string; deleted: boolean }>(
      `SELECT id, deleted_at IS NOT NULL AS deleted FROM circuits
        WHERE worker = $1 AND keys_removed_at IS NULL
          AND (($2::int IS NOT NULL AND frontend_mode = 'port' AND frontend_port = $2::int)
            OR ($3::text IS NOT NULL AND frontend_mode = 'wildcard' AND frontend_subdomain = $3::text))`,
      [c.worker, c.frontend.mode === 'port' ? c.frontend.port : null, c.frontend.mode === 'wildcard' ? c.frontend.subdomain : null],
    );
    const h = holder.rows[0];
    if (h?.deleted === true) {
      return new ConflictError(
        `${what} on worker ${c.worker} is being released: deleted circuit ${h.id} still has keys in etcd; retry shortly`,
        'frontend-releasing',
        FRONTEND_RELEASE_RETRY_SECONDS,
      );
    }
    return new ConflictError(`${what} is already in use on worker ${c.worker}`, 'frontend-taken');
  }
  return err;
}

/** The circuit (deleted ones included) or null when unknown. A plain read: no lock, no fence. */
export async function readCircuit(q: Queryable, id: string): Promise<CircuitView | null> {
  const r = await q.query<ViewRow>(`SELECT ${viewColumns('c')} FROM circuits c WHERE c.id = $1`, [id]);
  return r.rows[0] ? toView(r.rows[0]) : null;
}

export async function readCircuits(q: Queryable, ids: readonly string[]): Promise<CircuitView[]> {
  if (ids.length === 0) return [];
  const r = await q.query<ViewRow>(`SELECT ${viewColumns('c')} FROM circuits c WHERE c.id = ANY($1::uuid[])`, [ids]);
  return r.rows.map(toView);
}

export interface ListPage {
  items: CircuitView[];
  nextCursor: string | null;
}

/** Circuits not yet deleted (pending unloads included) in creation order, keyset-paginated by (created_at, id). */
export async function listCircuits(
  q: Queryable,
  opts: { limit: number; after?: { createdAt: string; id: string }; worker?: string },
): Promise<ListPage> {
  const params: unknown[] = [opts.limit + 1];
  let where = 'c.deleted_at IS NULL';
  if (opts.worker !== undefined) {
    params.push(opts.worker);
    where += ` AND c.worker = $${params.length}`;
  }
  if (opts.after !== undefined) {
    params.push(opts.after.createdAt, opts.after.id);
    where += ` AND (c.created_at, c.id) > ($${params.length - 1}::timestamptz, $${params.length}::uuid)`;
  }
  // The cursor carries created_at as Postgres prints it: microseconds survive the round trip.
  const r = await q.query<ViewRow & { cursor_ts: string }>(
    `SELECT ${viewColumns('c')}, c.created_at::text AS cursor_ts
       FROM circuits c WHERE ${where} ORDER BY c.created_at, c.id LIMIT $1`,
    params,
  );
  const page = r.rows.slice(0, opts.limit);
  const last = page[page.length - 1];
  const nextCursor =
    r.rows.length > opts.limit && last !== undefined
      ? Buffer.from(JSON.stringify({ createdAt: last.cursor_ts, id: last.circuit.id })).toString('base64url')
      : null;
  return { items: page.map(toView), nextCursor };
}

export interface CircuitState {
  worker: string;
  generation: number;
  deleted: boolean;
  deletedAt: string | null;
  keysRemoved: boolean;
}

/** Worker, generation and deletion state of the given circuits (deleted ones included). */
export async function circuitStates(q: Queryable, ids: readonly string[]): Promise<Map<string, CircuitState>> {
  if (ids.length === 0) return new Map();
  const r = await q.query<{ id: string; worker: string; generation: string; deleted_at: string | null; keys_removed: boolean }>(
    'SELECT id, worker, generation, deleted_at, keys_removed_at IS NOT NULL AS keys_removed FROM circuits WHERE id = ANY($1::uuid[])',
    [ids],
  );
  return new Map(
    r.rows.map((x) => [
      x.id,
      {
        worker: x.worker,
        generation: Number(x.generation),
        deleted: x.deleted_at !== null,
        deletedAt: x.deleted_at === null ? null : new Date(x.deleted_at).toISOString(),
        keysRemoved: x.keys_removed,
      },
    ]),
  );
}

/** One page of circuits not yet deleted (with routes and worker) in id order. */
export async function pageLiveCircuits(q: Queryable, afterId: string | null, limit: number): Promise<CircuitView[]> {
  const r = await q.query<ViewRow>(
    `SELECT ${viewColumns('c')} FROM circuits c
      WHERE c.deleted_at IS NULL AND ($1::uuid IS NULL OR c.id > $1::uuid)
      ORDER BY c.id LIMIT $2`,
    [afterId, limit],
  );
  return r.rows.map(toView);
}
