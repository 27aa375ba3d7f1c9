// The API's JSON shapes (DESIGN §5): the circuit as created, plus generation, route health and
// sync state (database generation vs the generation applied in etcd).
import type { PropagateResult } from '../circuits/propagate.js';
import { circuitStatus } from '../circuits/status.js';
import type { CircuitView, Worker } from '../model.js';
import type { CircuitJson } from './contract.js';

export function circuitJson(v: CircuitView, appliedGeneration: number | null): CircuitJson {
  const c = v.circuit;
  return {
    id: c.id,
    worker: c.worker,
    protocol: c.protocol,
    appMode: c.appMode,
    frontend: c.frontend,
    allowedClientIps: c.allowedClientIps,
    healthCheck: c.healthCheck,
    routes: c.routes.map((r) => ({
      routeId: r.routeId,
      sessionId: r.sessionId,
      host: r.host,
      port: r.port,
      trafficRatio: r.trafficRatio,
      createdAt: r.createdAt,
      health: r.health,
    })),
    generation: c.generation,
    status: circuitStatus(c),
    createdAt: c.createdAt,
    deletedAt: c.deletedAt,
    unloadRequestedAt: c.unloadRequestedAt,
    sync: { generation: c.generation, appliedGeneration },
  };
}

/**
 * Transport errors carry internal addresses ("connect ECONNREFUSED 10.1.2.3:2379"): the caller
 * gets the category, the log (recordPropagate) keeps the detail.
 */
const publicReason = (reason: string): string => (/^etcd unavailable/i.test(reason) ? 'etcd unavailable' : reason);

export function syncJson(r: PropagateResult) {
  return {
    applied: r.applied,
    ...(r.notAppliedReason !== undefined
      ? { notAppliedReason: `${publicReason(r.notAppliedReason)}; the database is committed and the next sweep will converge etcd` }
      : {}),
  };
}

export const workerJson = (w: Worker) => ({ authority: w.authority, hostname: w.hostname, wildcardDomain: w.wildcardDomain, tls: w.tls });
