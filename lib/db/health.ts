// Database statements of scheduled-health. Each is ONE statement (one round trip):
//   claimDueCircuits   atomically claims due circuits for one interval and returns their routes
//   persistCounters    the unlocked write of counters for routes whose status did not change
//   applyHealthChanges the locked write (propagate's `change`) of status changes
//   nextDue            when the sweep loop has work next
//   healthLoad         the work the fan-out is sized for (routes per second, late routes)
//
// Route writes are fenced twice:
//   - by identity (circuit id, route id, host, port): a route whose address changed while it was
//     probed is a new backend, and the result about the old address is discarded;
//   - by the health state the result was computed from (status, both counters, last_checked_at
//     exactly as stored): a result computed from a state somebody else has since overwritten (a
//     slower overlapping sweep) is discarded rather than double-counted.
// Rows are locked in key order so that overlapping writers cannot deadlock.
import type { CircuitView, ClaimedCircuit, CounterWrite, HealthStatus, Protocol, RouteHealthWrite } from '../model.js';

export type { ClaimedCircuit, ClaimedRoute, CounterWrite, RouteHealthWrite } from '../model.js';
import { ConflictError } from '../errors.js';
import type { Queryable } from './store.js';
import { toView, type ViewRow } from './rows.js';
import { ADVANCE_FENCE, FENCE_HOLDS, fenceParams, LOCKED_STATEMENT, readForHolder, type DbFence } from './locked.js';

type ClaimRow = {
  id: string;
  worker: string;
  protocol: Protocol;
  generation: string | number;
  hc_path: string;
  hc_interval_seconds: number;
  hc_timeout_ms: number;
  hc_expected_status: number;
  hc_unhealthy_threshold: number;
  hc_healthy_threshold: number;
  hc_initial_delay_seconds: number;
  /** [route_id, host, port, status, successes, failures, last_checked_at, created_at] */
  routes: Array<[string, string, number, HealthStatus, number, number, string | null, string]>;
};

/**
 * How long a claimer can wait for a circuit's probes. `maxTimeoutMs`: the longest probe timeout
 * that still fits before its deadline; `clampMs`: timeouts longer than this are probed with this
 * (a timeout no invocation could wait for out).
 */
export interface ProbeBudget {
  maxTimeoutMs: number;
  clampMs: number;
}

/** The probe timeout a budget allows a circuit; the SQL twin is `fitsBudget`. */
export const budgetedTimeoutMs = (timeoutMs: number, budget?: ProbeBudget): number =>
  budget === undefined ? timeoutMs : Math.min(timeoutMs, budget.clampMs);

const fitsBudget = (c: string, max: string, clamp: string) =>
  `(${max}::int IS NULL OR least(${c}.hc_timeout_ms, ${clamp}::int) <= ${max}::int)`;

/**
 * Claims up to `limit` due circuits (live, with health checking, next_probe_at <= dueBy) and
 * pushes their next_probe_at to now + interval, committed at once: a concurrent or overlapping
 * claim skips them (SKIP LOCKED while this statement runs, then the new next_probe_at). A sweep
 * passes its start time as dueBy, so a pass slower than an interval still ends. With a budget,
 * only circuits whose (clamped) timeout fits are claimed: the others stay due for a claimer with
 * more time, instead of being claimed and abandoned when the invocation ends.
 */
export async function claimDueCircuits(q: Queryable, now: Date, limit: number, dueBy: Date = now, budget?: ProbeBudget): Promise<ClaimedCircuit[]> {
  const r = await q.query<ClaimRow>(
    `WITH due AS (
       SELECT id FROM circuits
        WHERE deleted_at IS NULL AND unload_requested_at IS NULL AND hc_path IS NOT NULL AND next_probe_at <= $3::timestamptz
          AND ${fitsBudget('circuits', '$4', '$5')}
        ORDER BY next_probe_at
        LIMIT $2
        FOR UPDATE SKIP LOCKED),
     claimed AS (
       UPDATE circuits c
          SET next_probe_at = $1::timestamptz + make_interval(secs => c.hc_interval_seconds)
         FROM due
        WHERE c.id = due.id
       RETURNING c.id, c.worker, c.protocol, c.generation, c.hc_path, c.hc_interval_seconds, c.hc_timeout_ms,
                 c.hc_expected_status, c.hc_unhealthy_threshold, c.hc_healthy_threshold, c.hc_initial_delay_seconds)
     SELECT claimed.*,
            (SELECT coalesce(json_agg(json_build_array(r.route_id, r.host, r.port, r.health_status, r.consecutive_successes,
                                                       r.consecutive_failures, r.last_checked_at, r.created_at)
                                      ORDER BY r.position), '[]'::json)
               FROM routes r WHERE r.circuit_id = claimed.id) AS routes
       FROM claimed`,
    [now.toISOString(), limit, dueBy.toISOString(), budget?.maxTimeoutMs ?? null, budget?.clampMs ?? null],
  );
  return r.rows.map((c) => ({
    id: c.id,
    worker: c.worker,
    protocol: c.protocol,
    generation: Number(c.generation),
    healthCheck: {
      path: c.hc_path,
      intervalSeconds: c.hc_interval_seconds,
      timeoutMs: budgetedTimeoutMs(c.hc_timeout_ms, budget),
      expectedStatus: c.hc_expected_status,
      unhealthyThreshold: c.hc_unhealthy_threshold,
      healthyThreshold: c.hc_healthy_threshold,
      initialDelaySeconds: c.hc_initial_delay_seconds,
    },
    routes: c.routes.map(([routeId, host, port, status, s, f, lastCheckedAt, createdAt]) => ({
      routeId,
      host,
      port,
      status,
      consecutiveSuccesses: s,
      consecutiveFailures: f,
      lastCheckedAt,
      createdAt,
    })),
  }));
}

const writeJson = (w: RouteHealthWrite, circuitId?: string) => ({
  ...(circuitId !== undefined ? { c: circuitId } : {}),
  r: w.routeId,
  h: w.host,
  p: w.port,
  st: w.expected.status,
  ps: w.expected.consecutiveSuccesses,
  pf: w.expected.consecutiveFailures,
  pc: w.expected.lastCheckedAt,
  nst: w.next.status,
  s: w.next.consecutiveSuccesses,
  f: w.next.consecutiveFailures,
  at: w.checkedAt,
  e: w.lastError,
});

const SAME_ROUTE_STATE = `r.host = u.h AND r.port = u.p
           AND r.health_status = u.st AND r.consecutive_successes = u.ps AND r.consecutive_failures = u.pf
           AND r.last_checked_at IS NOT DISTINCT FROM u.pc`;

/**
 * Writes counters, last_checked_at and last_error of routes whose status did not change, for a
 * whole batch in one statement, without the circuit lock and without touching the status or the
 * generation (nothing Traefik sees changes). Routes of deleted circuits, routes whose address
 * changed and routes whose health was written meanwhile are left alone. Returns the rows written.
 */
export async function persistCounters(q: Queryable, writes: readonly CounterWrite[]): Promise<number> {
  if (writes.length === 0) return 0;
  const r = await q.query(
    `WITH u AS (
       SELECT * FROM jsonb_to_recordset($1::jsonb)
         AS u(c uuid, r uuid, h text, p int, st text, ps int, pf int, pc timestamptz, s int, f int, at timestamptz, e text)),
     t AS (
       SELECT r.circuit_id, r.route_id
         FROM routes r
         JOIN u ON r.circuit_id = u.c AND r.route_id = u.r
         JOIN circuits c ON c.id = r.circuit_id AND c.deleted_at IS NULL
        WHERE ${SAME_ROUTE_STATE}
        ORDER BY r.circuit_id, r.route_id
        FOR UPDATE OF r)
     UPDATE routes r
        SET consecutive_successes = u.s, consecutive_failures = u.f, last_checked_at = u.at, last_error = u.e
       FROM t JOIN u ON u.c = t.circuit_id AND u.r = t.route_id
      WHERE r.circuit_id = t.circuit_id AND r.route_id = t.route_id`,
    [JSON.stringify(writes.map((w) => writeJson(w, w.circuitId)))],
  );
  return r.rowCount ?? 0;
}

/** The view propagate renders, plus which routes' status this statement actually changed. */
export interface AppliedHealth extends CircuitView {
  changed: Array<{ routeId: string; from: HealthStatus; to: HealthStatus }>;
}

const ROUTE_COLUMNS = `route_id, session_id, host, port, traffic_ratio, position, health_status, consecutive_successes,
                       consecutive_failures, last_checked_at, last_error, created_at`;

/**
 * The locked half of a health update, for use as propagate's `change` (so it runs under the
 * circuit's lock, after the lock was acquired). In one statement: advances the fence, writes
 * status and counters of the routes whose identity and health state still match, bumps the
 * generation if (and only if) some status actually changed and the circuit is live, and returns
 * the circuit as committed. A deleted circuit is returned unchanged (propagate then finds its
 * tombstone and writes nothing); an unknown one is null; a stale fence throws StaleFenceError.
 */
export async function applyHealthChanges(q: Queryable, circuitId: string, writes: readonly RouteHealthWrite[], f: DbFence): Promise<AppliedHealth | null> {
  for (let attempt = 1; ; attempt++) {
    const applied = await applyHealthChangesOnce(q, circuitId, writes, f);
    if (applied !== 'retry') return applied;
    // Not applied: the circuit was deleted, a newer lock holder touched it, or another generation
    // committed after this statement's snapshot (its routes would be stale). The fenced read tells
    // which (and throws for a stale fence).
    const view = await readForHolder(q, circuitId, f);
    if (view === null) return null;
    if (view.circuit.deletedAt !== null) return { ...view, changed: [] };
    if (attempt >= 3) throw new ConflictError(`circuit ${circuitId} kept changing concurrently; health results discarded`, 'generation-mismatch');
  }
}

async function applyHealthChangesOnce(q: Queryable, circuitId: string, writes: readonly RouteHealthWrite[], f: DbFence): Promise<AppliedHealth | null | 'retry'> {
  // The snap guard: the circuit row is locked (and re-read) only if no other generation committed
  // after this statement's snapshot, so the routes returned below are the committed ones (a
  // concurrent replaceRoutes would otherwise leave a removed route in the returned view).
  const r = await q.query<ViewRow & { changed: Array<[string, HealthStatus, HealthStatus]> }>(
    `${LOCKED_STATEMENT}
     WITH u AS (
       SELECT * FROM jsonb_to_recordset($4::jsonb)
         AS u(r uuid, h text, p int, st text, ps int, pf int, pc timestamptz, nst text, s int, f int, at timestamptz, e text)),
     snap AS (
       SELECT generation FROM circuits WHERE id = $1),
     live AS (
       SELECT c.id FROM circuits c
        WHERE c.id = $1 AND c.deleted_at IS NULL AND c.generation = (SELECT generation FROM snap)
          AND ${FENCE_HOLDS}
        FOR UPDATE),
     t AS (
       SELECT r.route_id, u.st AS prev_status
         FROM routes r
         JOIN live ON r.circuit_id = live.id
         JOIN u ON r.route_id = u.r
        WHERE ${SAME_ROUTE_STATE}
        ORDER BY r.route_id
        FOR UPDATE OF r),
     upd AS (
       UPDATE routes r
          SET health_status = u.nst, consecutive_successes = u.s, consecutive_failures = u.f,
              last_checked_at = u.at, last_error = u.e
         FROM t JOIN u ON u.r = t.route_id
        WHERE r.circuit_id = $1 AND r.route_id = t.route_id
       RETURNING ${ROUTE_COLUMNS.split(',').map((c) => `r.${c.trim()}`).join(', ')}, t.prev_status),
     bump AS (
       UPDATE circuits AS c
          SET ${ADVANCE_FENCE},
              generation = c.generation + CASE WHEN EXISTS (SELECT 1 FROM upd WHERE upd.health_status <> upd.prev_status) THEN 1 ELSE 0 END,
              updated_at = now()
         FROM live
        WHERE c.id = live.id
       RETURNING c.*),
     logged AS (
       INSERT INTO health_transitions (circuit_id, route_id, from_status, to_status, generation, last_error, at)
       SELECT $1, upd.route_id, upd.prev_status, upd.health_status, bump.generation, upd.last_error, upd.last_checked_at
         FROM upd, bump WHERE upd.health_status <> upd.prev_status)
     SELECT row_to_json(bump) AS circuit,
            (SELECT json_agg(row_to_json(x) ORDER BY x.position)
               FROM (SELECT ${ROUTE_COLUMNS} FROM routes r
                      WHERE r.circuit_id = $1 AND r.route_id NOT IN (SELECT route_id FROM upd)
                     UNION ALL
                     SELECT ${ROUTE_COLUMNS} FROM upd) x) AS routes,
            (SELECT row_to_json(w) FROM workers w WHERE w.authority = bump.worker) AS worker,
            (SELECT coalesce(json_agg(json_build_array(upd.route_id, upd.prev_status, upd.health_status)), '[]'::json)
               FROM upd WHERE upd.health_status <> upd.prev_status) AS changed
       FROM bump`,
    [...fenceParams(circuitId, f), JSON.stringify(writes.map((w) => writeJson(w)))],
  );
  const row = r.rows[0];
  if (row === undefined) return 'retry';
  return { ...toView(row), changed: row.changed.map(([routeId, from, to]) => ({ routeId, from, to })) };
}

/** When the next circuit falls due, and the smallest interval (nulls when nothing is probed). */
/**
 * When the next circuit is due. With a budget (counted from `from`): the next one whose probe
 * still fits in it once it is due, so a caller never waits for a circuit it could not claim.
 */
export async function nextDue(q: Queryable, budget?: ProbeBudget, from: Date = new Date()): Promise<{ at: Date | null; minIntervalSeconds: number | null }> {
  const r = await q.query<{ at: string | Date | null; min_interval: number | null }>(
    `SELECT min(next_probe_at) AS at, min(hc_interval_seconds) AS min_interval
       FROM circuits WHERE deleted_at IS NULL AND unload_requested_at IS NULL AND hc_path IS NOT NULL
        AND ($1::int IS NULL
             OR least(hc_timeout_ms, $2::int) + greatest(0, extract(epoch FROM next_probe_at - $3::timestamptz) * 1000) <= $1::int)`,
    [budget?.maxTimeoutMs ?? null, budget?.clampMs ?? null, from.toISOString()],
  );
  const row = r.rows[0];
  return {
    at: row?.at == null ? null : new Date(row.at),
    minIntervalSeconds: row?.min_interval == null ? null : Number(row.min_interval),
  };
}

/**
 * The probing work: Σ routes / interval over live health-checked circuits, and the routes of
 * circuits due more than `lateSeconds` before `now` (work a single sweeper did not keep up with).
 */
export async function healthLoad(q: Queryable, now: Date, lateSeconds: number): Promise<{ routesPerSecond: number; lateRoutes: number; circuits: number; routes: number }> {
  const r = await q.query<{ rps: string | number | null; late: string | number | null; circuits: string | number; routes: string | number | null }>(
    `SELECT sum(n.routes::float8 / c.hc_interval_seconds) AS rps,
            sum(n.routes) FILTER (WHERE c.next_probe_at <= $1::timestamptz - make_interval(secs => $2)) AS late,
            count(*) AS circuits,
            sum(n.routes) AS routes
       FROM circuits c
       CROSS JOIN LATERAL (SELECT count(*) AS routes FROM routes r WHERE r.circuit_id = c.id) n
      WHERE c.deleted_at IS NULL AND c.unload_requested_at IS NULL AND c.hc_path IS NOT NULL`,
    [now.toISOString(), lateSeconds],
  );
  const row = r.rows[0];
  return { routesPerSecond: Number(row?.rps ?? 0), lateRoutes: Number(row?.late ?? 0), circuits: Number(row?.circuits ?? 0), routes: Number(row?.routes ?? 0) };
}

export interface HealthTransition {
  circuitId: string;
  routeId: string;
  from: HealthStatus;
  to: HealthStatus;
  generation: number;
  lastError: string | null;
  at: string;
}

/** The most recent status changes of routes (newest first), optionally of one circuit. */
export async function recentTransitions(q: Queryable, opts: { limit: number; circuitId?: string }): Promise<HealthTransition[]> {
  const r = await q.query<{ circuit_id: string; route_id: string; from_status: HealthStatus; to_status: HealthStatus; generation: string; last_error: string | null; at: string }>(
    `SELECT circuit_id, route_id, from_status, to_status, generation, last_error, at FROM health_transitions
      WHERE ($2::uuid IS NULL OR circuit_id = $2::uuid) ORDER BY id DESC LIMIT $1`,
    [opts.limit, opts.circuitId ?? null],
  );
  return r.rows.map((x) => ({
    circuitId: x.circuit_id,
    routeId: x.route_id,
    from: x.from_status,
    to: x.to_status,
    generation: Number(x.generation),
    lastError: x.last_error,
    at: new Date(x.at).toISOString(),
  }));
}

/** Forgets transitions older than `days` (bounded state), at most `limit` per call. */
export async function purgeTransitions(q: Queryable, days: number, limit: number): Promise<number> {
  const r = await q.query(
    `DELETE FROM health_transitions WHERE id IN (
       SELECT id FROM health_transitions WHERE at < now() - make_interval(days => $1) ORDER BY id LIMIT $2)`,
    [days, limit],
  );
  return r.rowCount ?? 0;
}
