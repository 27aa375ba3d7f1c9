// GET /v2/health: can this function reach etcd and the database, and how fast. Reveals nothing
// but reachability and latency (no endpoints, no versions, no error texts).
import { pingEtcd, epochKey } from '../etcd/index.js';
import { pingDatabase } from '../db/index.js';
import type { Runtime } from '../runtime.js';

export interface DependencyHealth {
  status: 'ok' | 'unavailable';
  etcd: { ok: boolean; latencyMs: number };
  database: { ok: boolean; latencyMs: number };
}

export async function checkDependencies(rt: Runtime): Promise<DependencyHealth> {
  const [etcd, database] = await Promise.all([pingEtcd(rt.etcd, epochKey(rt.config.metaPrefix), rt.config.etcd.timeoutMs), pingDatabase(rt.db)]);
  return { status: etcd.ok && database.ok ? 'ok' : 'unavailable', etcd, database };
}
