// Reading circuits for the API and the tools: the database row plus what etcd holds of it (the
// generation applied) and its status.
import type { CircuitView } from '../model.js';
import { listCircuits as listStored, readCircuit } from '../db/index.js';
import { readAppliedGenerations } from '../etcd/index.js';
import type { Runtime } from '../runtime.js';
import { circuitStatus, type CircuitStatus } from './status.js';

export interface CircuitRead {
  view: CircuitView;
  /** The generation etcd holds (its meta), null when it holds none. */
  appliedGeneration: number | null;
  status: CircuitStatus;
}

export async function getCircuit(rt: Runtime, id: string): Promise<CircuitRead | null> {
  const [view, applied] = await Promise.all([readCircuit(rt.db, id), readAppliedGenerations(rt.etcd, rt.config.metaPrefix, [id], rt.config.etcd.timeoutMs)]);
  if (view === null) return null;
  return { view, appliedGeneration: applied.get(id) ?? null, status: circuitStatus(view.circuit) };
}

export interface CircuitPage {
  items: CircuitRead[];
  nextCursor: string | null;
}

export async function listCircuits(rt: Runtime, q: { limit: number; after?: { createdAt: string; id: string }; worker?: string }): Promise<CircuitPage> {
  const page = await listStored(rt.db, q);
  const applied = await readAppliedGenerations(rt.etcd, rt.config.metaPrefix, page.items.map((v) => v.circuit.id), rt.config.etcd.timeoutMs);
  return {
    items: page.items.map((view) => ({ view, appliedGeneration: applied.get(view.circuit.id) ?? null, status: circuitStatus(view.circuit) })),
    nextCursor: page.nextCursor,
  };
}
