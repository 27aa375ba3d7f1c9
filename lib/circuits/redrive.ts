// `circuitry redrive`: complete the unloads that did not happen. Every DELETE is recorded in the
// database first, so completing the pending ones is enough; messages left in the unload
// dead-letter queue are completed too (when one names a circuit whose unload is still pending,
// or that was never recorded) and removed once done.
import type { Invocation } from '../runtime.js';
import { completePendingUnloads, unload, type PendingUnloadsResult } from './unload.js';
import { uuidSchema } from '../model.js';

export interface DeadLetterMessage {
  id: string;
  body: string;
  /** Removes the message from the queue. */
  remove(): Promise<void>;
}

export interface DeadLetterSource {
  /** Up to `max` messages (fewer, or none, when the queue is empty). */
  receive(max: number): Promise<DeadLetterMessage[]>;
}

/**
 * The circuit a dead-lettered message is about: an EventBridge event ({detail: {circuitId}}), or a
 * Lambda on-failure record ({requestPayload: <the event>}). Null when it names none.
 */
export function circuitIdOfDeadLetter(body: string): string | null {
  let v: unknown;
  try {
    v = JSON.parse(body);
  } catch {
    return null;
  }
  const event = (v as { requestPayload?: unknown }).requestPayload ?? v;
  const id = (event as { detail?: { circuitId?: unknown } } | null)?.detail?.circuitId;
  const r = uuidSchema.safeParse(id);
  return r.success ? r.data : null;
}

export interface RedriveResult {
  pending: PendingUnloadsResult;
  deadLetters: { received: number; completed: number; removed: number; unreadable: string[]; failed: Array<{ messageId: string; error: string }> };
}

export async function redrive(
  inv: Invocation,
  o: { olderThanSeconds: number; deadLetters?: DeadLetterSource; maxMessages?: number; onProgress?: (done: number) => void },
): Promise<RedriveResult> {
  let done = 0;
  const pending = await completePendingUnloads(inv, { olderThanSeconds: o.olderThanSeconds, onEach: () => o.onProgress?.(++done) });
  const out: RedriveResult = { pending, deadLetters: { received: 0, completed: 0, removed: 0, unreadable: [], failed: [] } };
  if (o.deadLetters === undefined) return out;
  const max = o.maxMessages ?? 1000;
  while (out.deadLetters.received < max) {
    const batch = await o.deadLetters.receive(Math.min(10, max - out.deadLetters.received));
    if (batch.length === 0) break;
    out.deadLetters.received += batch.length;
    for (const m of batch) {
      const id = circuitIdOfDeadLetter(m.body);
      if (id === null) {
        out.deadLetters.unreadable.push(m.id); // left in the queue for a human
        continue;
      }
      try {
        const r = await unload(inv, id);
        // Unknown (purged) or unloaded now or before: nothing left to do for this message.
        if (!r.found || r.applied) {
          out.deadLetters.completed++;
          await m.remove();
          out.deadLetters.removed++;
        } else {
          out.deadLetters.failed.push({ messageId: m.id, error: r.notAppliedReason ?? 'not applied' });
        }
      } catch (err) {
        out.deadLetters.failed.push({ messageId: m.id, error: (err as Error).message });
      }
      o.onProgress?.(++done);
    }
  }
  return out;
}
