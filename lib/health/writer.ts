// The apply step of a sweep: what decide() produced, written.
//   - counters of unchanged routes: buffered across circuits into one unlocked statement per
//     ~1000 routes, without touching the generation (nothing Traefik reads changes);
//   - status changes: propagate with applyHealthChanges as the change (lock -> identity- and
//     state-fenced write of the fresh row -> generation bump -> fenced apply);
//   - one RouteHealthChanged per committed status change, published in batches.
import pLimit from 'p-limit';
import { applyHealthChanges, persistCounters, type AppliedHealth, type Queryable } from '../db/index.js';
import type { ClaimedCircuit, CounterWrite, RouteHealthWrite } from '../model.js';
import type { Invocation } from '../runtime.js';
import { propagate } from '../circuits/propagate.js';
import type { PublishHealthEvents, RouteHealthChanged } from './events.js';
import type { SweepLog } from './log.js';
import { addError, type SweepStats } from './stats.js';
import type { Tasks } from './tasks.js';

export interface WriterOptions {
  db: Queryable;
  publish: PublishHealthEvents;
  log: SweepLog;
  counterFlushRoutes: number;
  counterFlushConcurrency: number;
  eventFlushSize: number;
  propagateConcurrency: number;
}

export class HealthWriter {
  private counters: CounterWrite[] = [];
  private events: RouteHealthChanged[] = [];
  private readonly flushLimit;
  private readonly propagateLimit;
  /** Circuits whose health change fully converged them in etcd (drift need not repair them again). */
  readonly converged = new Set<string>();

  constructor(
    private readonly inv: Invocation,
    private readonly stats: SweepStats,
    private readonly tasks: Tasks,
    private readonly o: WriterOptions,
  ) {
    this.flushLimit = pLimit(o.counterFlushConcurrency);
    this.propagateLimit = pLimit(o.propagateConcurrency);
  }

  /** Counter statements queued behind the running ones (claiming pauses while they pile up). */
  get countersBacklog(): number {
    return this.flushLimit.pendingCount;
  }

  addCounters(writes: readonly CounterWrite[]): void {
    this.counters.push(...writes);
    if (this.counters.length >= this.o.counterFlushRoutes) this.flushCounters();
  }

  flushCounters(): void {
    if (this.counters.length === 0) return;
    const batch = this.counters;
    this.counters = [];
    this.tasks.track(
      this.flushLimit(() => persistCounters(this.o.db, batch)).then(
        (n) => {
          this.stats.countersWritten += n;
          this.stats.resultsDiscarded += batch.length - n;
        },
        (err: unknown) => {
          // Counters are advisory until a threshold is crossed; the next interval recomputes.
          addError(this.stats, `counters: ${(err as Error).message}`);
          this.o.log.error('persisting health counters failed', { routes: batch.length, error: (err as Error).message });
        },
      ),
    );
  }

  applyChanges(circuit: ClaimedCircuit, writes: RouteHealthWrite[], atIso: string): void {
    this.tasks.track(this.propagateLimit(() => this.applyNow(circuit, writes, atIso)));
  }

  publishEvents(): void {
    if (this.events.length === 0) return;
    const batch = this.events;
    this.events = [];
    for (const e of batch) this.o.log.info('route health changed', { ...e });
    this.tasks.track(
      Promise.resolve()
        .then(() => this.o.publish(batch))
        .then(
          () => void (this.stats.eventsPublished += batch.length),
          (err: unknown) => {
            this.stats.publishFailures += batch.length;
            this.o.log.error('publishing RouteHealthChanged failed', { count: batch.length, error: (err as Error).message });
          },
        ),
    );
  }

  private async applyNow(circuit: ClaimedCircuit, writes: RouteHealthWrite[], atIso: string): Promise<void> {
    let applied: AppliedHealth | null = null;
    try {
      const r = await propagate(this.inv, circuit.id, {
        workerHint: circuit.worker,
        change: async (q, fence) => (applied = await applyHealthChanges(q, circuit.id, writes, fence)),
      });
      this.stats.lockAcquisitions++;
      this.stats.dbRoundTrips += r.dbQueries;
      this.stats.etcdRpcs += r.etcdRpcs;
      this.stats.etcdTxns += r.txns;
      if (r.applied) this.converged.add(circuit.id);
      const committed = (applied as AppliedHealth | null)?.changed ?? [];
      this.stats.resultsDiscarded += writes.length - committed.length;
      if (committed.length > 0) this.stats.circuitsChanged++;
      this.stats.statusChanges += committed.length;
      if (r.found && !r.applied) {
        this.stats.notApplied++;
        this.o.log.warn('health change committed but not applied to etcd (the next sweep converges it)', { circuitId: circuit.id, reason: r.notAppliedReason });
      }
      for (const ch of committed) {
        this.events.push({
          circuitId: circuit.id,
          routeId: ch.routeId,
          from: ch.from,
          to: ch.to,
          at: atIso,
          lastError: writes.find((x) => x.routeId === ch.routeId)?.lastError ?? null,
          generation: r.generation ?? circuit.generation,
        });
      }
      if (this.events.length >= this.o.eventFlushSize) this.publishEvents();
    } catch (err) {
      // Lock timeout, etcd or database down: the results are dropped; the next interval probes
      // again and reaches the same decision from the persisted state.
      addError(this.stats, `health change ${circuit.id}: ${(err as Error).message}`);
      this.o.log.error('health change failed', { circuitId: circuit.id, error: (err as Error).message });
    }
  }
}
