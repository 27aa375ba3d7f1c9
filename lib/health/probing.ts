// The claim and probe steps of a sweep, as a pipeline rather than lock-step batches: due circuits
// are claimed in batches (one statement each; a claim commits at once and pushes the circuit one
// interval forward, so concurrent sweeps never probe a circuit twice per interval and sweeps can
// be scaled out), and a circuit is finished as soon as its own probes are, so a backend hanging
// until its timeout holds up only its own circuit. Routes that failed last time are probed first,
// so their timeouts overlap the rest of the sweep. Probes run OUTSIDE any lock. Memory is bounded
// by maxCircuitsInFlight whatever the fleet size.
import { claimDueCircuits, type Queryable } from '../db/index.js';
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
  /** Claim no new batch after this time (epoch ms); batches already claimed are finished. */
  stopClaimingAt?: number;
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
      if (o.stopClaimingAt !== undefined && Date.now() >= o.stopClaimingAt) break;
      // Back-pressure: room for more circuits, probes not piling up, counter writes keeping up.
      await this.gate.until(() => this.inFlight < o.maxCircuitsInFlight && this.probes.pendingCount < o.maxPendingProbes && this.writer.countersBacklog < 4);
      const want = Math.min(o.batchSize, o.maxCircuitsInFlight - this.inFlight);
      let batch: ClaimedCircuit[];
      try {
        batch = await claimDueCircuits(o.db, o.now(), want, o.dueBy);
      } catch (err) {
        addError(this.stats, `claim: ${(err as Error).message}`);
        o.log.error('claiming due circuits failed', { error: (err as Error).message });
        break;
      }
      if (batch.length > 0) {
        this.stats.batches++;
        this.stats.circuitsClaimed += batch.length;
        o.log.debug('claimed due circuits', { count: batch.length });
      }
      for (const c of batch) {
        this.inFlight++;
        this.claimed.add(c.id);
        this.tasks.track(this.probeCircuit(c));
      }
      // Fewer than asked: nothing else is due (or the rest is being claimed by another sweep).
      if (batch.length < want) break;
    }
  }

  private async probeCircuit(c: ClaimedCircuit): Promise<void> {
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
      this.inFlight--;
      this.gate.signal();
    }
  }
}
