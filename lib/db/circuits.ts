// Database access for circuits, routes and workers. Each operation is one SQL statement (one
// round trip over the Neon WebSocket): writes use data-modifying CTEs and return the rows as
// they are after the write, so the caller renders from exactly what was committed.
import type { Circuit, CreateCircuitInput, HealthCheckSettings, Route, RouteInput, Worker } from '../model.js';

export interface Queryable {
  query<R = Record<string, unknown>>(text: string, params?: unknown[]): Promise<{ rows: R[]; rowCount: number | null }>;
}

/** A circuit as read from the database, with its worker (rendering needs both). */
export interface CircuitView {
  circuit: Circuit;
  worker: Worker;
}

export class NotFoundError extends Error {
  override name = 'NotFoundError';
}
/**
 * A change under a circuit lock was refused because a newer lock holder has already written
 * (the writer's lock expired, e.g. while it was paused). Nothing was changed.
 */
export class StaleLockError extends Error {
  override name = 'StaleLockError';
}

/** The fencing token of a change made under a circuit lock: the lock key's create revision. */
export type Fence = string;

async function assertNotFenced(q: Queryable, id: string, fence: Fence | undefined): Promise<void> {
  if (fence === undefined) return;
  const r = await q.query<{ stale: boolean }>('SELECT lock_revision > $2::bigint AS stale FROM circuits WHERE id = $1', [id, fence]);
  if (r.rows[0]?.stale === true) throw new StaleLockError(`circuit ${id} was changed under a newer lock than this writer's (${fence}); nothing was changed`);
}

export class ConflictError extends Error {
  override name = 'ConflictError';
  constructor(
    message: string,
    readonly code: 'exists' | 'deleted' | 'frontend-taken' | 'generation-mismatch' | 'unknown-worker' | 'worker-in-use',
  ) {
    super(message);
  }
}

// ---- row mapping ---------------------------------------------------------------------------

interface CircuitRow {
  id: string;
  worker: string;
  protocol: 'http' | 'tcp';
  app_mode: 'inference' | 'interactive';
  frontend_mode: 'port' | 'wildcard';
  frontend_port: number | null;
  frontend_subdomain: string | null;
  allowed_client_ips: string[];
  hc_path: string | null;
  hc_interval_seconds: number | null;
  hc_timeout_ms: number | null;
  hc_expected_status: number | null;
  hc_unhealthy_threshold: number | null;
  hc_healthy_threshold: number | null;
  hc_initial_delay_seconds: number | null;
  generation: string | number;
  deleted_at: string | null;
  created_at: string;
}

interface RouteRow {
  route_id: string;
  session_id: string;
  host: string;
  port: number;
  traffic_ratio: number;
  position: number;
  health_status: 'unknown' | 'healthy' | 'unhealthy';
  consecutive_successes: number;
  consecutive_failures: number;
  last_checked_at: string | null;
  last_error: string | null;
  created_at: string;
}

interface WorkerRow {
  authority: string;
  hostname: string;
  wildcard_domain: string | null;
  tls: boolean;
}

const iso = (t: string | Date | null): string | null => (t === null ? null : new Date(t).toISOString());

function routeFromRow(r: RouteRow): Route {
  return {
    routeId: r.route_id,
    sessionId: r.session_id,
    host: r.host,
    port: r.port,
    trafficRatio: Number(r.traffic_ratio),
    health: {
      status: r.health_status,
      consecutiveSuccesses: r.consecutive_successes,
      consecutiveFailures: r.consecutive_failures,
      lastCheckedAt: iso(r.last_checked_at),
      lastError: r.last_error,
    },
    createdAt: iso(r.created_at)!,
  };
}

function healthCheckFromRow(c: CircuitRow): HealthCheckSettings | null {
  if (c.hc_path === null) return null;
  return {
    path: c.hc_path,
    intervalSeconds: c.hc_interval_seconds!,
    timeoutMs: c.hc_timeout_ms!,
    expectedStatus: c.hc_expected_status!,
    unhealthyThreshold: c.hc_unhealthy_threshold!,
    healthyThreshold: c.hc_healthy_threshold!,
    initialDelaySeconds: c.hc_initial_delay_seconds!,
  };
}

export function circuitFromRows(c: CircuitRow, routes: RouteRow[]): Circuit {
  return {
    id: c.id,
    worker: c.worker,
    protocol: c.protocol,
    appMode: c.app_mode,
    frontend:
      c.frontend_mode === 'port' ? { mode: 'port', port: c.frontend_port! } : { mode: 'wildcard', subdomain: c.frontend_subdomain! },
    allowedClientIps: c.allowed_client_ips ?? [],
    healthCheck: healthCheckFromRow(c),
    routes: [...routes].sort((a, b) => a.position - b.position).map(routeFromRow),
    generation: Number(c.generation),
    deletedAt: iso(c.deleted_at),
    createdAt: iso(c.created_at)!,
  };
}

function workerFromRow(w: WorkerRow): Worker {
  return { authority: w.authority, hostname: w.hostname, wildcardDomain: w.wildcard_domain, tls: w.tls };
}

interface ViewRow {
  circuit: CircuitRow;
  routes: RouteRow[] | null;
  worker: WorkerRow;
}

const toView = (r: ViewRow): CircuitView => ({
  circuit: circuitFromRows(r.circuit, r.routes ?? []),
  worker: workerFromRow(r.worker),
});

// ---- reads ---------------------------------------------------------------------------------

const VIEW_SELECT = `
  SELECT row_to_json(c) AS circuit,
         (SELECT json_agg(row_to_json(r) ORDER BY r.position) FROM routes r WHERE r.circuit_id = c.id) AS routes,
         row_to_json(w) AS worker
    FROM circuits c JOIN workers w ON w.authority = c.worker`;

/** The circuit (deleted ones included: callers must see deletion) or null when unknown. */
export async function readCircuit(q: Queryable, id: string): Promise<CircuitView | null> {
  const r = await q.query<ViewRow>(`${VIEW_SELECT} WHERE c.id = $1`, [id]);
  return r.rows[0] ? toView(r.rows[0]) : null;
}

export async function readCircuits(q: Queryable, ids: readonly string[]): Promise<CircuitView[]> {
  if (ids.length === 0) return [];
  const r = await q.query<ViewRow>(`${VIEW_SELECT} WHERE c.id = ANY($1::uuid[])`, [ids]);
  return r.rows.map(toView);
}

export interface ListPage {
  items: CircuitView[];
  nextCursor: string | null;
}

/** Live circuits in creation order, keyset-paginated by (created_at, id). */
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
    `${VIEW_SELECT.replace('row_to_json(w) AS worker', 'row_to_json(w) AS worker, c.created_at::text AS cursor_ts')}
      WHERE ${where} ORDER BY c.created_at, c.id LIMIT $1`,
    params,
  );
  const page = r.rows.slice(0, opts.limit);
  const last = page[page.length - 1];
  const items = page.map(toView);
  const nextCursor =
    r.rows.length > opts.limit && last !== undefined
      ? Buffer.from(JSON.stringify({ createdAt: last.cursor_ts, id: last.circuit.id })).toString('base64url')
      : null;
  return { items, nextCursor };
}

/** Generation, worker and deletion state of the given circuits, deleted ones included (the sweep checks tombstones). */
export async function generationsOf(q: Queryable, ids: readonly string[]): Promise<Map<string, { generation: number; deleted: boolean; worker: string }>> {
  if (ids.length === 0) return new Map();
  const r = await q.query<{ id: string; worker: string; generation: string; deleted: boolean }>(
    'SELECT id, worker, generation, deleted_at IS NOT NULL AS deleted FROM circuits WHERE id = ANY($1::uuid[])',
    [ids],
  );
  return new Map(r.rows.map((x) => [x.id, { worker: x.worker, generation: Number(x.generation), deleted: x.deleted }]));
}

// ---- writes --------------------------------------------------------------------------------

export async function upsertWorker(q: Queryable, w: Worker): Promise<{ worker: Worker; created: boolean }> {
  const r = await q.query<WorkerRow & { created: boolean }>(
    `INSERT INTO workers (authority, hostname, wildcard_domain, tls) VALUES ($1, $2, $3, $4)
     ON CONFLICT (authority) DO UPDATE
       SET hostname = EXCLUDED.hostname, wildcard_domain = EXCLUDED.wildcard_domain, tls = EXCLUDED.tls, updated_at = now()
     RETURNING authority, hostname, wildcard_domain, tls, (xmax = 0) AS created`,
    [w.authority, w.hostname, w.wildcardDomain, w.tls],
  );
  const row = r.rows[0]!;
  return { worker: workerFromRow(row), created: row.created };
}

export async function readWorker(q: Queryable, authority: string): Promise<Worker | null> {
  const r = await q.query<WorkerRow>('SELECT authority, hostname, wildcard_domain, tls FROM workers WHERE authority = $1', [authority]);
  return r.rows[0] ? workerFromRow(r.rows[0]) : null;
}

const routesJson = (routes: readonly RouteInput[]) =>
  JSON.stringify(routes.map((r, position) => ({ ...r, position })));

const INPUT_ROUTES = `jsonb_to_recordset($ROUTES::jsonb) AS i("routeId" uuid, "sessionId" uuid, host text, port int, "trafficRatio" float8, position int)`;

function pgCode(err: unknown): { code?: string; constraint?: string } {
  return (err ?? {}) as { code?: string; constraint?: string };
}

/** Inserts a circuit with its routes at generation 1. */
export async function createCircuit(q: Queryable, id: string, c: CreateCircuitInput): Promise<CircuitView> {
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
    routesJson(c.routes),
  ];
  try {
    const r = await q.query<ViewRow>(
      `WITH c AS (
         INSERT INTO circuits (id, worker, protocol, app_mode, frontend_mode, frontend_port, frontend_subdomain,
                               allowed_client_ips, hc_path, hc_interval_seconds, hc_timeout_ms, hc_expected_status,
                               hc_unhealthy_threshold, hc_healthy_threshold, hc_initial_delay_seconds)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
         RETURNING *),
       ins AS (
         INSERT INTO routes (circuit_id, route_id, session_id, host, port, traffic_ratio, position)
         SELECT c.id, i."routeId", i."sessionId", i.host, i.port, i."trafficRatio", i.position
           FROM c, ${INPUT_ROUTES.replace('$ROUTES', '$16')}
         RETURNING *)
       SELECT row_to_json(c) AS circuit,
              (SELECT json_agg(row_to_json(ins) ORDER BY ins.position) FROM ins) AS routes,
              row_to_json(w) AS worker
         FROM c JOIN workers w ON w.authority = c.worker`,
      params,
    );
    return toView(r.rows[0]!);
  } catch (err) {
    const e = pgCode(err);
    if (e.code === '23505' && e.constraint === 'circuits_pkey') {
      const existing = await q.query<{ deleted: boolean }>('SELECT deleted_at IS NOT NULL AS deleted FROM circuits WHERE id = $1', [id]);
      const deleted = existing.rows[0]?.deleted === true;
      throw new ConflictError(
        deleted ? `circuit ${id} was deleted; ids are never reused` : `circuit ${id} already exists`,
        deleted ? 'deleted' : 'exists',
      );
    }
    if (e.code === '23505' && (e.constraint === 'circuits_live_port' || e.constraint === 'circuits_live_subdomain')) {
      throw new ConflictError(
        c.frontend.mode === 'port'
          ? `port ${c.frontend.port} is already in use on worker ${c.worker}`
          : `subdomain ${c.frontend.subdomain} is already in use on worker ${c.worker}`,
        'frontend-taken',
      );
    }
    if (e.code === '23503') throw new ConflictError(`worker ${c.worker} is not registered`, 'unknown-worker');
    throw err;
  }
}

/**
 * Replaces a live circuit's routes and bumps its generation, in one statement. A route that
 * keeps its id, host and port keeps its health; a new address is a new backend and starts over.
 * With ifMatch, applies only at that generation.
 *
 * The statement only applies if no other generation of the circuit committed after its snapshot
 * was taken (the `snap` guard): otherwise the UPDATE, having waited for the other writer's row
 * lock, would be re-evaluated on the new row while `del` still scanned the routes of the old
 * snapshot, and the routes that writer inserted would survive the replacement (found by the chaos
 * harness: a writer whose lock had expired while it was paused, racing the lock's next owner).
 * Without ifMatch the statement is then re-run on a fresh snapshot; with it, it is a mismatch.
 */
export async function replaceRoutes(
  q: Queryable,
  id: string,
  routes: readonly RouteInput[],
  ifMatch?: number,
  fence?: Fence,
): Promise<CircuitView> {
  for (let attempt = 1; ; attempt++) {
    const view = await replaceRoutesOnce(q, id, routes, ifMatch, fence);
    if (view !== null) return view;
    await assertNotFenced(q, id, fence);
    const s = await q.query<{ generation: string; deleted: boolean }>(
      'SELECT generation, deleted_at IS NOT NULL AS deleted FROM circuits WHERE id = $1',
      [id],
    );
    const row = s.rows[0];
    if (row === undefined || row.deleted) throw new NotFoundError(`circuit ${id} ${row ? 'was deleted' : 'does not exist'}`);
    if (ifMatch !== undefined) throw new ConflictError(`circuit ${id} is at generation ${row.generation}, not ${ifMatch}`, 'generation-mismatch');
    if (attempt >= 3) throw new ConflictError(`circuit ${id} kept changing concurrently (now at generation ${row.generation}); retry`, 'generation-mismatch');
  }
}

async function replaceRoutesOnce(
  q: Queryable,
  id: string,
  routes: readonly RouteInput[],
  ifMatch: number | undefined,
  fence: Fence | undefined,
): Promise<CircuitView | null> {
  const same = 'routes.host = EXCLUDED.host AND routes.port = EXCLUDED.port';
  const r = await q.query<ViewRow>(
    `WITH snap AS (
       SELECT generation FROM circuits WHERE id = $1),
     c AS (
       UPDATE circuits SET generation = generation + 1, updated_at = now(), lock_revision = COALESCE($4::bigint, lock_revision)
        WHERE id = $1 AND deleted_at IS NULL AND ($3::bigint IS NULL OR generation = $3::bigint)
          AND ($4::bigint IS NULL OR lock_revision <= $4::bigint)
          AND generation = (SELECT generation FROM snap)
       RETURNING *),
     del AS (
       DELETE FROM routes USING c
        WHERE routes.circuit_id = c.id
          AND routes.route_id NOT IN (SELECT (x->>'routeId')::uuid FROM jsonb_array_elements($2::jsonb) x)
       RETURNING routes.route_id),
     up AS (
       INSERT INTO routes AS routes (circuit_id, route_id, session_id, host, port, traffic_ratio, position)
       SELECT c.id, i."routeId", i."sessionId", i.host, i.port, i."trafficRatio", i.position
         FROM c, ${INPUT_ROUTES.replace('$ROUTES', '$2')}
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
       RETURNING routes.*)
     SELECT row_to_json(c) AS circuit,
            (SELECT json_agg(row_to_json(up) ORDER BY up.position) FROM up) AS routes,
            row_to_json(w) AS worker
       FROM c JOIN workers w ON w.authority = c.worker`,
    [id, routesJson(routes), ifMatch ?? null, fence ?? null],
  );
  return r.rows[0] ? toView(r.rows[0]) : null;
}

/**
 * Marks a circuit deleted (idempotent: an already deleted circuit is returned as it is, with
 * its generation unchanged). Null when the circuit does not exist.
 */
export async function markDeleted(q: Queryable, id: string, fence?: Fence): Promise<CircuitView | null> {
  const r = await q.query<ViewRow>(
    `WITH c AS (
       UPDATE circuits SET deleted_at = now(), generation = generation + 1, updated_at = now(),
                           lock_revision = COALESCE($2::bigint, lock_revision)
        WHERE id = $1 AND deleted_at IS NULL AND ($2::bigint IS NULL OR lock_revision <= $2::bigint)
       RETURNING *)
     SELECT row_to_json(c) AS circuit,
            (SELECT json_agg(row_to_json(r) ORDER BY r.position) FROM routes r WHERE r.circuit_id = c.id) AS routes,
            row_to_json(w) AS worker
       FROM c JOIN workers w ON w.authority = c.worker`,
    [id, fence ?? null],
  );
  if (r.rows[0]) return toView(r.rows[0]);
  const current = await readCircuit(q, id);
  if (current !== null && current.circuit.deletedAt === null) await assertNotFenced(q, id, fence);
  return current;
}
