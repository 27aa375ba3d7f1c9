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
import { ExponentialBackoff, handleAll, retry } from 'cockatiel';
import { explainRoutesMiss, intentOutcome, readForHolder, recordIntent, replaceRoutes, replaceRoutesCombined, withdrawIntent, type IntentOutcome, type Queryable } from '../db/index.js';
import { OutcomeUnknownError } from '../errors.js';
import type { RouteInput } from '../model.js';
import type { Invocation } from '../runtime.js';
import { propagate, type Combining, type PropagateOptions, type PropagateResult } from './propagate.js';

/** Queued changes one holder applies with its own, at most (bounded by one etcd transaction's room). */
export const MAX_COMBINED = 32;

/** A waiter answers only once its change is withdrawn or known applied: the withdraw is retried. */
const withdrawRetry = retry(handleAll, { maxAttempts: 2, backoff: new ExponentialBackoff({ initialDelay: 100, maxDelay: 400 }) });

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
  // The record of our change, made while we wait: true once it committed; false when it failed,
  // which includes a commit whose answer was lost (so the row may exist, and may be applied).
  let recorded: Promise<boolean> | undefined;
  const withdraw = (q: Queryable): Promise<IntentOutcome> => withdrawIntent(q, intentId, circuitId);
  const combine: Combining = {
    intentId,
    maxServed: MAX_COMBINED,
    onQueued: () => void (recorded ??= recordIntent(db, intentId, circuitId, routes).then(() => true, () => false)),
    async settle() {
      if (recorded === undefined) return null; // never offered to anyone
      await recorded;
      let o: IntentOutcome;
      try {
        o = await withdrawRetry.execute(() => withdraw(db));
      } catch (err) {
        throw new OutcomeUnknownError(`the change was queued for the lock holder ahead and could be neither withdrawn nor found applied (${(err as Error).message})`, { cause: err });
      }
      return o.status === 'applied' ? o.generation : null;
    },
  };
  return propagate(inv, circuitId, {
    ...rest,
    combine,
    change: async (q, fence, queued) => {
      let ownIntent: string | undefined;
      if (recorded !== undefined) {
        if (await recorded) ownIntent = intentId;
        else {
          // Whether the record committed is unknown: settle it before applying our routes ourselves.
          const o = await withdraw(q);
          if (o.status === 'applied') return appliedAhead(q, o.generation);
        }
      }
      const own = { routes, ifMatch: undefined, intentId: ownIntent };
      // Nothing recorded, nobody queued: the plain statement (smaller, and the common case).
      if (own.intentId === undefined && queued.length === 0) return replaceRoutes(q, circuitId, routes, undefined, fence);
      for (let attempt = 1; ; attempt++) {
        const r = await replaceRoutesCombined(q, circuitId, own, queued, fence);
        if (r !== null) return r;
        if (own.intentId !== undefined) {
          const o = await intentOutcome(q, own.intentId);
          if (o.status === 'applied') return appliedAhead(q, o.generation);
        }
        // Deleted, unloading, a stale fence: the reason, as replaceRoutes gives it; otherwise a
        // generation committed between our snapshot and our update: again.
        await explainRoutesMiss(q, circuitId, undefined, fence, attempt);
      }

      // A holder ahead applied our change but could not tell us (its etcd write failed, or our
      // record's answer was lost): publish what the database holds now, under our lock, and answer
      // with our change's generation.
      async function appliedAhead(q: Queryable, generation: number) {
        const view = await readForHolder(q, circuitId, fence);
        return view === null ? null : { view, served: [], ownGeneration: generation };
      }
    },
  });
}
