// Rows as Postgres returns them (row_to_json) and their mapping to the model, shared by every
// statement that returns circuits.
import type { Circuit, CircuitView, HealthCheckSettings, HealthStatus, Route, Worker } from '../model.js';

export interface CircuitRow {
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
  unload_requested_at?: string | null;
  keys_removed_at?: string | null;
  create_digest?: string | null;
}

export interface RouteRow {
  route_id: string;
  session_id: string;
  host: string;
  port: number;
  traffic_ratio: number;
  position: number;
  health_status: HealthStatus;
  consecutive_successes: number;
  consecutive_failures: number;
  last_checked_at: string | null;
  last_error: string | null;
  created_at: string;
}

export interface WorkerRow {
  authority: string;
  hostname: string;
  wildcard_domain: string | null;
  tls: boolean;
}

/** A circuit with its routes and worker, as one row. */
export interface ViewRow {
  circuit: CircuitRow;
  routes: RouteRow[] | null;
  worker: WorkerRow;
}

export const iso = (t: string | Date | null | undefined): string | null => (t == null ? null : new Date(t).toISOString());

export function routeFromRow(r: RouteRow): Route {
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

export function circuitFromRows(c: CircuitRow, routes: readonly RouteRow[]): Circuit {
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
    unloadRequestedAt: iso(c.unload_requested_at),
    keysRemovedAt: iso(c.keys_removed_at),
    createDigest: c.create_digest ?? null,
  };
}

export function workerFromRow(w: WorkerRow): Worker {
  return { authority: w.authority, hostname: w.hostname, wildcardDomain: w.wildcard_domain, tls: w.tls };
}

export const toView = (r: ViewRow): CircuitView => ({
  circuit: circuitFromRows(r.circuit, r.routes ?? []),
  worker: workerFromRow(r.worker),
});

/** The select list of a view row over the circuit row(s) named `alias`. */
export const viewColumns = (alias: string): string => `
  row_to_json(${alias}) AS circuit,
  (SELECT json_agg(row_to_json(r) ORDER BY r.position) FROM routes r WHERE r.circuit_id = ${alias}.id) AS routes,
  (SELECT row_to_json(w) FROM workers w WHERE w.authority = ${alias}.worker) AS worker`;

/** Postgres' SQLSTATE and constraint of a failed statement. */
export function pgError(err: unknown): { code?: string; constraint?: string } {
  return (err ?? {}) as { code?: string; constraint?: string };
}
