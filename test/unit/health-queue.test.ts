// The sweep's two-priority concurrency limiter.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { PriorityLimiter } from '../../lib/health/queue.js';

const tick = () => new Promise<void>((r) => setImmediate(r));

describe('PriorityLimiter', () => {
  it('never runs more than `concurrency` jobs, and runs all of them', async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 1, max: 8 }), fc.array(fc.tuple(fc.boolean(), fc.nat(3)), { maxLength: 60 }), async (n, jobs) => {
        const q = new PriorityLimiter(n);
        let running = 0;
        let max = 0;
        const results = await Promise.all(
          jobs.map(([urgent, ticks], i) =>
            q.run(async () => {
              running++;
              max = Math.max(max, running);
              for (let t = 0; t < ticks; t++) await tick();
              running--;
              return i;
            }, urgent),
          ),
        );
        expect(results).toEqual(jobs.map((_, i) => i));
        expect(max).toBeLessThanOrEqual(n);
        expect(q.activeCount).toBe(0);
        expect(q.pendingCount).toBe(0);
      }),
      { numRuns: 100 },
    );
  });

  it('starts urgent jobs before normal ones, FIFO within each priority', async () => {
    const q = new PriorityLimiter(1);
    const order: string[] = [];
    let release!: () => void;
    const blocker = q.run(() => new Promise<void>((r) => (release = r)));
    const jobs = [
      q.run(async () => void order.push('n1')),
      q.run(async () => void order.push('u1'), true),
      q.run(async () => void order.push('n2')),
      q.run(async () => void order.push('u2'), true),
    ];
    expect(q.pendingCount).toBe(4);
    release();
    await Promise.all([blocker, ...jobs]);
    expect(order).toEqual(['u1', 'u2', 'n1', 'n2']);
  });

  it('a throwing or rejecting job frees its slot and rejects its own promise only', async () => {
    const q = new PriorityLimiter(1);
    const a = q.run(() => {
      throw new Error('sync');
    });
    const b = q.run(() => Promise.reject(new Error('async')));
    const c = q.run(async () => 'ok');
    await expect(a).rejects.toThrow('sync');
    await expect(b).rejects.toThrow('async');
    await expect(c).resolves.toBe('ok');
  });

  it('handles long queues (compaction) in order', async () => {
    const q = new PriorityLimiter(3);
    const out: number[] = [];
    await Promise.all(Array.from({ length: 5000 }, (_, i) => q.run(async () => void out.push(i))));
    expect(out).toEqual(Array.from({ length: 5000 }, (_, i) => i));
  });
});
