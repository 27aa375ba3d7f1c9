// The claim and probe steps of a sweep, as a pipeline rather than lock-step batches: due circuits
// are claimed in batches (one statement each; a claim commits at once and pushes the circuit one
// interval forward, so concurrent sweeps never probe a circuit twice per interval and sweeps can
// be scaled out), and a circuit is finished as soon as its own probes are, so a backend hanging
// until its timeout holds up only its own circuit. Routes that failed last time are probed first,
// so their timeouts overlap the rest of the sweep. Probes run OUTSIDE any lock. Memory is bounded
// by maxCircuitsInFlight whatever the fleet size. With a deadline, a circuit is claimed only if its
// probe timeout plus a reserve for writing its results fits before it, and the counters of each
// batch are written as soon as the batch is finished, so an invocation that ends loses little.
import { claimDueCircuits, type ProbeBudget, type Queryable } from '../db/index.js';
import type { ClaimedCircuit } from '../model.js';
import type { Prober } from './probe.js';
import { PriorityLimiter } from './queue.js';
import { decide } from './decide.js';
import type { HealthWriter } from './writer.js';
import type { SweepLog } from './log.js';
import { addError, type SweepStats } from './stats.js';
import type { Gate, Tasks } from './tasks.js';

export interface ProbingOptions {
  db: Queryable;
  prober: Prober;
  now: () => Date;
  /** Only circuits due when the pass started: a pass slower than an interval still ends. */
  dueBy: Date;
  batchSize: number;
  maxCircuitsInFlight: number;
  probeConcurrency: number;
  maxPendingProbes: number;
  /**
   * The time (epoch ms) by which every claimed circuit's probes and writes must be done: a circuit
   * is claimed only while now + its probe timeout + probeReserveMs is before it. None: no limit.
   */
  deadline?: number;
  probeReserveMs: number;
  /** Probe timeouts longer than this are probed with this (see ProbeBudget). Default: no clamp. */
  clampTimeoutMs?: number;
  log: SweepLog;
}

export class Probing {
  private inFlight = 0;
  private readonly probes: PriorityLimiter;
  /** Circuits claimed by this pass. */
  readonly claimed = new Set<string>();

  constructor(
    private readonly stats: SweepStats,
    private readonly tasks: Tasks,
    private readonly gate: Gate,
    private readonly writer: HealthWriter,
    private readonly o: ProbingOptions,
  ) {
    this.probes = new PriorityLimiter(o.probeConcurrency);
  }

  /** Every probe has started (what is left is mostly timeouts). */
  get allProbesStarted(): boolean {
    return this.probes.pendingCount === 0;
  }

  get done(): boolean {
    return this.inFlight === 0;
  }

  /** Claims until nothing is due (or time is up), keeping the probe queue fed. */
  async claimAll(): Promise<void> {
    const o = this.o;
    for (;;) {
      // Back-pressure: room for more circuits, probes not piling up, counter writes keeping up.
      await this.gate.until(() => this.inFlight < o.maxCircuitsInFlight && this.probes.pendingCount < o.maxPendingProbes && this.writer.countersBacklog < 4);
      let budget: ProbeBudget | undefined;
      if (o.deadline !== undefined) {
        const maxTimeoutMs = Math.floor(o.deadline - Date.now() - o.probeReserveMs);
        if (maxTimeoutMs < 1) break;
        budget = { maxTimeoutMs, clampMs: Math.min(o.clampTimeoutMs ?? maxTimeoutMs, 2_147_483_647) };
      }
      const want = Math.min(o.batchSize, o.maxCircuitsInFlight - this.inFlight);
      let batch: ClaimedCircuit[];
      try {
        batch = await claimDueCircuits(o.db, o.now(), want, o.dueBy, budget);
      } catch (err) {
        this.stats.claimFailures++;
        addError(this.stats, `claim: ${(err as Error).message}`);
        o.log.error('claiming due circuits failed', { error: (err as Error).message });
        break;
      }
      if (batch.length > 0) {
        this.stats.batches++;
        this.stats.circuitsClaimed += batch.length;
        o.log.debug('claimed due circuits', { count: batch.length });
      }
      const unfinished = { n: batch.length };
      for (const c of batch) {
        this.inFlight++;
        this.claimed.add(c.id);
        this.tasks.track(this.probeCircuit(c, unfinished));
      }
      // Fewer than asked: nothing else is due (or the rest is being claimed by another sweep).
      if (batch.length < want) break;
    }
  }

  /** `batch.n`: circuits of its claim batch not yet finished; the last one writes the batch's counters. */
  private async probeCircuit(c: ClaimedCircuit, batch: { n: number }): Promise<void> {
    try {
      const results = await Promise.all(
        c.routes.map((r) =>
          this.probes
            .run(
              () =>
                this.o.prober.probe({
                  protocol: c.protocol,
                  host: r.host,
                  port: r.port,
                  path: c.healthCheck.path,
                  timeoutMs: c.healthCheck.timeoutMs,
                  expectedStatus: c.healthCheck.expectedStatus,
                }),
              // Routes that failed last time go first: if they hang, their timeout overlaps the rest.
              r.status === 'unhealthy' || r.consecutiveFailures > 0,
            )
            .finally(() => this.gate.signal()),
        ),
      );
      const at = this.o.now();
      const d = decide(c, results, at);
      this.stats.probes += d.probes;
      this.stats.probeFailures += d.failures;
      this.stats.probesRefused += d.refused;
      if (d.changed.length > 0) this.writer.applyChanges(c, d.changed, at.toISOString());
      this.writer.addCounters(d.counters);
    } catch (err) {
      addError(this.stats, `circuit ${c.id}: ${(err as Error).message}`);
      this.o.log.error('health check of a circuit failed', { circuitId: c.id, error: (err as Error).message });
    } finally {
      if (--batch.n === 0) this.writer.flushCounters();
      this.inFlight--;
      this.gate.signal();
    }
  }
}
