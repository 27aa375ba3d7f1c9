// The operator's other questions: who holds which lock, and what changed in the routes' health.
import { listLocks, type LockContender } from '../etcd/index.js';
import { recentTransitions, type HealthTransition } from '../db/index.js';
import type { Runtime } from '../runtime.js';

export interface LockView extends LockContender {
  /** Place in the circuit's queue (0 holds the lock). */
  position: number;
  /** Seconds since the contender queued (null when unknown). */
  ageSeconds: number | null;
}

export async function circuitLocks(rt: Runtime, opts: { circuitId?: string } = {}): Promise<LockView[]> {
  const all = await listLocks(rt.etcd, rt.config.metaPrefix, rt.config.etcd.timeoutMs);
  const now = Date.now();
  const positions = new Map<string, number>();
  return all
    .filter((l) => opts.circuitId === undefined || l.circuitId === opts.circuitId)
    .map((l) => {
      const position = positions.get(l.circuitId) ?? 0;
      positions.set(l.circuitId, position + 1);
      return { ...l, position, ageSeconds: l.since === null ? null : Math.max(0, Math.round((now - Date.parse(l.since)) / 100) / 10) };
    });
}

export function healthTransitions(rt: Runtime, opts: { limit: number; circuitId?: string }): Promise<HealthTransition[]> {
  return recentTransitions(rt.db, opts);
}
