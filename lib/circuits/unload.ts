// Unloads (DESIGN §3, I6). DELETE records the request in the database before answering 202 and
// publishes CircuitUnloadRequested (the fast path); the unload itself marks the circuit deleted
// and removes all of its keys under its lock; sweeps and `circuitry redrive` complete whatever is
// still pending. Every step is idempotent: a retried or duplicated unload is a no-op.
import pLimit from 'p-limit';
import { markDeleted, pendingUnloads, recordUnloadRequest } from '../db/index.js';
import { NotFoundError } from '../errors.js';
import { CIRCUIT_UNLOAD_REQUESTED, type Publisher } from '../events.js';
import type { Invocation, Runtime } from '../runtime.js';
import { propagate, type PropagateOptions, type PropagateResult } from './propagate.js';

export interface UnloadRequested {
  alreadyDeleted: boolean;
  requestedAt: string;
  /** Whether the fast-path event was published (the sweep completes the unload either way). */
  eventPublished: boolean;
}

export async function requestUnload(rt: Runtime, publisher: Publisher, id: string, onPublishError: (err: Error) => void = () => {}): Promise<UnloadRequested> {
  const r = await recordUnloadRequest(rt.db, id);
  if (r === null) throw new NotFoundError(`circuit ${id} does not exist`);
  // Published on every DELETE of a live circuit, retries included: a retried DELETE can finish an
  // unload whose first event was lost, and the unload makes duplicates no-ops. Not published for a
  // circuit already deleted (its keys are the sweep's to remove). A failed publish is not an error:
  // the request is durable, and sweeps complete it after UNLOAD_GRACE_SECONDS.
  let eventPublished = false;
  if (!r.deleted) {
    try {
      await publisher.publish([{ detailType: CIRCUIT_UNLOAD_REQUESTED, detail: { circuitId: id } }]);
      eventPublished = true;
    } catch (err) {
      onPublishError(err as Error);
    }
  }
  return { alreadyDeleted: r.deleted, requestedAt: r.requestedAt, eventPublished };
}

/** Marks the circuit deleted (idempotent), then removes all of its keys and writes its tombstone. */
export function unload(inv: Invocation, circuitId: string, opts: Omit<PropagateOptions, 'change'> = {}): Promise<PropagateResult> {
  return propagate(inv, circuitId, { ...opts, change: (db, fence) => markDeleted(db, circuitId, fence) });
}

export interface PendingUnloadsResult {
  found: number;
  completed: number;
  notApplied: number;
  failed: Array<{ circuitId: string; error: string }>;
}

/** Completes unloads requested at least `olderThanSeconds` ago (sweeps: the grace; redrive: 0). */
export async function completePendingUnloads(
  inv: Invocation,
  o: { olderThanSeconds: number; limit?: number; concurrency?: number; onEach?: (r: PropagateResult | Error, circuitId: string) => void },
): Promise<PendingUnloadsResult> {
  const pending = await pendingUnloads(inv.rt.db, o.olderThanSeconds, o.limit ?? 1000);
  const limit = pLimit(o.concurrency ?? 8);
  const out: PendingUnloadsResult = { found: pending.length, completed: 0, notApplied: 0, failed: [] };
  await Promise.all(
    pending.map((p) =>
      limit(async () => {
        try {
          const r = await unload(inv, p.id, { workerHint: p.worker });
          if (r.applied) out.completed++;
          else out.notApplied++;
          o.onEach?.(r, p.id);
        } catch (err) {
          out.failed.push({ circuitId: p.id, error: (err as Error).message });
          o.onEach?.(err as Error, p.id);
        }
      }),
    ),
  );
  return out;
}
