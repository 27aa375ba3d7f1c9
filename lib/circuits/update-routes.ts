// Replace a circuit's routes: under the lock, one database statement re-reads the circuit, checks
// If-Match, replaces the routes and bumps the generation; then the fenced apply.
//
// Contended, writers combine (propagate's Combining): a writer that has to queue records its change
// (route_intents) and names it in its lock key; the holder ahead applies the recorded changes
// queued behind it in its own statement — one generation each, in queue order, the last routes
// winning — and tells each in the transaction that writes etcd and releases the lock. A hot
// circuit then costs one lock handoff, one statement and one etcd write per batch instead of per
// change. A change with If-Match depends on the generation it finds, so it never combines.
import { randomUUID } from 'node:crypto';
import { explainRoutesMiss, intentOutcome, readForHolder, recordIntent, replaceRoutes, replaceRoutesCombined, withdrawIntent } from '../db/index.js';
import type { RouteInput } from '../model.js';
import type { Invocation } from '../runtime.js';
import { propagate, type Combining, type PropagateOptions, type PropagateResult } from './propagate.js';

/** Queued changes one holder applies with its own, at most (bounded by one etcd transaction's room). */
export const MAX_COMBINED = 32;

export function updateRoutes(
  inv: Invocation,
  circuitId: string,
  routes: readonly RouteInput[],
  ifMatch?: number,
  opts: Omit<PropagateOptions, 'change' | 'combine'> & { combine?: boolean } = {},
): Promise<PropagateResult> {
  const { db } = inv.rt;
  const { combine: combining, ...rest } = opts;
  if (ifMatch !== undefined || combining === false) {
    return propagate(inv, circuitId, { ...rest, change: (q, fence) => replaceRoutes(q, circuitId, routes, ifMatch, fence) });
  }
  const intentId = randomUUID();
  let recorded: Promise<boolean> | undefined;
  const combine: Combining = {
    intentId,
    maxServed: MAX_COMBINED,
    // Recorded while we wait; a failure only means nobody can apply it for us.
    onQueued: () => void (recorded ??= recordIntent(db, intentId, circuitId, routes).then(() => true, () => false)),
    async settle() {
      if (!(await recorded)) return null;
      const o = await withdrawIntent(db, intentId);
      return o.status === 'applied' ? o.generation : null;
    },
  };
  return propagate(inv, circuitId, {
    ...rest,
    combine,
    change: async (q, fence, queued) => {
      const own = { routes, ifMatch: undefined, intentId: (await recorded) ? intentId : undefined };
      // Nothing recorded, nobody queued: the plain statement (smaller, and the common case).
      if (own.intentId === undefined && queued.length === 0) return replaceRoutes(q, circuitId, routes, undefined, fence);
      for (let attempt = 1; ; attempt++) {
        const r = await replaceRoutesCombined(q, circuitId, own, queued, fence);
        if (r !== null) return r;
        if (own.intentId !== undefined) {
          const o = await intentOutcome(q, own.intentId);
          // A holder ahead applied it but could not tell us (its etcd write failed): publish what
          // the database holds now, under our lock, and answer with our change's generation.
          if (o.status === 'applied') {
            const view = await readForHolder(q, circuitId, fence);
            return view === null ? null : { view, served: [], ownGeneration: o.generation };
          }
        }
        // Deleted, unloading, a stale fence: the reason, as replaceRoutes gives it; otherwise a
        // generation committed between our snapshot and our update: again.
        await explainRoutesMiss(q, circuitId, undefined, fence, attempt);
      }
    },
  });
}
