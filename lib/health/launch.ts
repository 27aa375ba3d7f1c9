// Starting sweepers through EventBridge: one HealthSweepRequested event each, which the
// health-sweeper function's rule delivers (asynchronously, retried by EventBridge). Reading such
// an event back is here too, so both ends agree on its shape.
import { z } from 'zod';
import { HEALTH_SWEEP_REQUESTED, PublishError, type Publisher } from '../events.js';
import type { SweeperAssignment, SweeperLauncher } from './dispatch.js';

export function eventSweeperLauncher(publisher: Publisher): SweeperLauncher {
  return {
    async launch(assignments) {
      try {
        const r = await publisher.publish(assignments.map((a) => ({ detailType: HEALTH_SWEEP_REQUESTED, detail: { ...a } })));
        return { started: r.published, failed: [] };
      } catch (err) {
        if (!(err instanceof PublishError)) {
          return { started: 0, failed: assignments.map((a) => ({ index: a.index, error: (err as Error).message })) };
        }
        const failed = err.failed.map((e) => ({ index: Number((e.detail as { index?: unknown }).index), error: err.message }));
        return { started: assignments.length - failed.length, failed };
      }
    },
  };
}

const sweepEventSchema = z.object({
  'detail-type': z.literal(HEALTH_SWEEP_REQUESTED),
  detail: z.object({
    dispatchedAt: z.iso.datetime({ offset: true }),
    index: z.number().int().min(1),
    of: z.number().int().min(2),
  }),
});

export function parseSweepEvent(event: unknown): SweeperAssignment | { problem: string } {
  const r = sweepEventSchema.safeParse(event);
  if (!r.success) return { problem: r.error.issues.map((i) => `${i.path.join('.') || 'event'}: ${i.message}`).join('; ') };
  if (r.data.detail.index >= r.data.detail.of) return { problem: `detail.index: ${r.data.detail.index} is not below detail.of (${r.data.detail.of})` };
  return r.data.detail;
}
