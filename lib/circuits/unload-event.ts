// Reading a CircuitUnloadRequested event. A malformed event can never succeed, so it is
// reported and dropped instead of being retried until it reaches the dead-letter queue.
import { z } from 'zod';
import { uuidSchema } from '../model.js';
import { CIRCUIT_UNLOAD_REQUESTED } from '../events.js';

const unloadEventSchema = z.object({
  'detail-type': z.literal(CIRCUIT_UNLOAD_REQUESTED),
  detail: z.object({ circuitId: uuidSchema }),
});

export function parseUnloadEvent(event: unknown): { circuitId: string } | { problem: string } {
  const r = unloadEventSchema.safeParse(event);
  if (r.success) return { circuitId: r.data.detail.circuitId };
  return { problem: r.error.issues.map((i) => `${i.path.join('.') || 'event'}: ${i.message}`).join('; ') };
}
