// The fleet at a glance (`circuitry status`, GET /v2/status): circuits by status, how far etcd
// lags behind the database, the circuits in panic mode, pending unloads, the fencing epoch.
import { circuitFactsPage, fleetCounts, latestEpoch } from '../db/index.js';
import { circuitOfMetaKey, decodeMeta, metaCircuitsPrefix, scanPrefix } from '../etcd/index.js';
import type { Runtime } from '../runtime.js';
import { CIRCUIT_STATUSES, statusOf, type CircuitStatus } from './status.js';

const SAMPLE = 20;

export interface FleetStatus {
  circuits: { total: number; byStatus: Record<CircuitStatus, number> };
  /** Circuits whose generation etcd does not hold yet (the next sweep converges them). */
  syncLag: { behind: number; maxGenerations: number; sample: Array<{ circuitId: string; generation: number; appliedGeneration: number | null }> };
  panic: Array<{ circuitId: string; worker: string }>;
  unavailable: Array<{ circuitId: string; worker: string }>;
  pendingUnloads: { count: number; oldestRequestedAt: string | null };
  deletedAwaitingRelease: number;
  workers: number;
  fencingEpoch: { epoch: number; startedAt: string; reason: string } | null;
}

export async function fleetStatus(rt: Runtime, onProgress: (circuitsRead: number) => void = () => {}): Promise<FleetStatus> {
  const applied = new Map<string, number>();
  await scanPrefix(rt.etcd, metaCircuitsPrefix(rt.config.metaPrefix), {
    pageSize: 5000,
    timeoutMs: rt.config.etcd.timeoutMs,
    onRestart: () => applied.clear(),
    onKv: (kv) => {
      const id = circuitOfMetaKey(rt.config.metaPrefix, kv.key.toString('utf8'));
      const m = id === null ? null : decodeMeta(kv.value.toString('utf8'));
      if (id !== null && m !== null && !m.deleted) applied.set(id, m.generation);
    },
  });
  const out: FleetStatus = {
    circuits: { total: 0, byStatus: Object.fromEntries(CIRCUIT_STATUSES.map((s) => [s, 0])) as Record<CircuitStatus, number> },
    syncLag: { behind: 0, maxGenerations: 0, sample: [] },
    panic: [],
    unavailable: [],
    pendingUnloads: { count: 0, oldestRequestedAt: null },
    deletedAwaitingRelease: 0,
    workers: 0,
    fencingEpoch: null,
  };
  for (let after: string | null = null; ; ) {
    const page = await circuitFactsPage(rt.db, after, 1000);
    for (const f of page) {
      const status = statusOf({ deleting: f.unloadRequestedAt !== null, healthChecked: f.healthChecked, routes: f.routes, healthy: f.healthy, unhealthy: f.unhealthy });
      out.circuits.total++;
      out.circuits.byStatus[status]++;
      if (status === 'panic' && out.panic.length < SAMPLE) out.panic.push({ circuitId: f.id, worker: f.worker });
      if (status === 'unavailable' && out.unavailable.length < SAMPLE) out.unavailable.push({ circuitId: f.id, worker: f.worker });
      const a = applied.get(f.id) ?? null;
      if (a === null || a < f.generation) {
        out.syncLag.behind++;
        out.syncLag.maxGenerations = Math.max(out.syncLag.maxGenerations, f.generation - (a ?? 0));
        if (out.syncLag.sample.length < SAMPLE) out.syncLag.sample.push({ circuitId: f.id, generation: f.generation, appliedGeneration: a });
      }
    }
    onProgress(out.circuits.total);
    if (page.length < 1000) break;
    after = page[page.length - 1]!.id;
  }
  const [counts, epoch] = await Promise.all([fleetCounts(rt.db), latestEpoch(rt.db)]);
  out.pendingUnloads = { count: counts.pendingUnloads, oldestRequestedAt: counts.oldestPendingUnloadAt };
  out.deletedAwaitingRelease = counts.deletedAwaitingRelease;
  out.workers = counts.workers;
  out.fencingEpoch = epoch === null ? null : { epoch: epoch.epoch, startedAt: epoch.startedAt, reason: epoch.reason };
  return out;
}
