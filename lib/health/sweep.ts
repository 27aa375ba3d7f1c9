// scheduled-health (DESIGN §3, issue 4). One sweep:
//   1. claims due circuits in batches (one statement each; a claim commits at once and pushes the
//      circuit one interval forward, so concurrent sweeps never probe a circuit twice per interval
//      and sweeps can be scaled out),
//   2. probes every route of every claimed circuit with bounded concurrency, OUTSIDE any lock,
//   3. runs the pure state machine (state.ts) per route,
//   4. writes the counters of routes whose status did not change, buffered across circuits into one
//      statement per ~1000 routes, without any lock and without touching the generation: nothing
//      Traefik reads changes, so nothing is written to etcd,
//   5. for ONLY the circuits where some status changed: propagate with applyHealthChanges as the
//      change (lock -> identity- and state-fenced write of the fresh row -> generation bump ->
//      fenced apply),
//   6. publishes one RouteHealthChanged per committed status change, in batches,
// and then repairs drift and removes orphans (drift.ts).
//
// Circuits flow through a pipeline rather than lock-step batches: a circuit is finished as soon as
// its own probes are, so a backend hanging until its timeout holds up only its own circuit. Routes
// that failed last time are probed first, so their timeouts overlap the rest of the sweep. Memory is
// bounded by maxCircuitsInFlight whatever the fleet size.
import pLimit from 'p-limit';
import type { Config } from '../config.js';
import type { Invocation } from '../runtime.js';
import type { Queryable } from '../db/circuits.js';
import {
  applyHealthChanges,
  claimDueCircuits,
  nextDue,
  persistCounters,
  type AppliedHealth,
  type ClaimedCircuit,
  type CounterWrite,
  type RouteHealthWrite,
} from '../db/health.js';
import { propagate } from '../circuits/propagate.js';
import { inInitialDelay, nextHealth } from './state.js';
import { Prober } from './probe.js';
import { PriorityLimiter } from './queue.js';
import { repairCircuit, repairDrift, type DriftStats } from './drift.js';
import type { PublishHealthEvents, RouteHealthChanged } from './events.js';
import { silentLog, type SweepLog } from './log.js';

export interface SweepOptions {
  publish: PublishHealthEvents;
  /** The clock (tests jump time with it). Default: the system clock. */
  now?: () => Date;
  /** Circuits claimed per statement. Default 100. */
  batchSize?: number;
  /** Circuits claimed and not yet finished, at most (bounds memory whatever the fleet size). Default 1000. */
  maxCircuitsInFlight?: number;
  /** Probes in flight. Default config.healthProbeConcurrency. */
  probeConcurrency?: number;
  /** Probes queued (claimed, not started) before claiming pauses. Default 4 x probeConcurrency. */
  maxPendingProbes?: number;
  /** Unchanged routes buffered before their counters are written (one statement). Default 1000. */
  counterFlushRoutes?: number;
  /** Events buffered before a publish call. Default 100. */
  eventFlushSize?: number;
  /** Circuits going through propagate at once (health changes, drift). Default 16. */
  propagateConcurrency?: number;
  /** Run drift repair and orphan cleanup after the health batches. Default true. */
  drift?: boolean;
  /** Live circuits per database page in the drift check. Default 500. */
  driftCircuitsPageSize?: number;
  /** Keys per etcd range request in the drift check. Default 5000. */
  driftKeysPageSize?: number;
  /** Claim no new batch after this time (epoch ms); batches already claimed are finished. */
  stopClaimingAt?: number;
  /** The prober (keep-alive connections live in it). Default: one per cold start and CIDR set. */
  prober?: Prober;
  log?: SweepLog;
}

export interface SweepStats {
  circuitsClaimed: number;
  batches: number;
  probes: number;
  probeFailures: number;
  /** Probes refused by the address policy (counted in probeFailures too). */
  probesRefused: number;
  /** Status changes committed to the database. */
  statusChanges: number;
  /** Circuits whose effective status changed (each took its lock once). */
  circuitsChanged: number;
  countersWritten: number;
  /** Results discarded because the route's address or health changed while it was probed. */
  resultsDiscarded: number;
  /** Circuits whose committed change could not be applied to etcd (the next sweep converges). */
  notApplied: number;
  eventsPublished: number;
  publishFailures: number;
  driftChecked: number;
  driftRepaired: number;
  orphansRemoved: number;
  /** Write transactions sent to etcd (apply + orphan deletes; lock acquisitions are not writes to Traefik's keys). */
  etcdTxns: number;
  etcdRpcs: number;
  lockAcquisitions: number;
  dbRoundTrips: number;
  /** The first MAX_ERRORS errors (errorCount has them all). */
  errors: string[];
  errorCount: number;
  probeMs: number;
  driftMs: number;
  durationMs: number;
}

export function emptyStats(): SweepStats {
  return {
    circuitsClaimed: 0,
    batches: 0,
    probes: 0,
    probeFailures: 0,
    probesRefused: 0,
    statusChanges: 0,
    circuitsChanged: 0,
    countersWritten: 0,
    resultsDiscarded: 0,
    notApplied: 0,
    eventsPublished: 0,
    publishFailures: 0,
    driftChecked: 0,
    driftRepaired: 0,
    orphansRemoved: 0,
    etcdTxns: 0,
    etcdRpcs: 0,
    lockAcquisitions: 0,
    dbRoundTrips: 0,
    errors: [],
    errorCount: 0,
    probeMs: 0,
    driftMs: 0,
    durationMs: 0,
  };
}

export const MAX_ERRORS = 100;

function addError(stats: SweepStats, message: string): void {
  stats.errorCount++;
  if (stats.errors.length < MAX_ERRORS) stats.errors.push(message);
}

const probers = new Map<string, Prober>();

/** The prober of this cold start for the configured CIDRs (its keep-alive pool outlives sweeps). */
export function getProber(config: Pick<Config, 'allowedBackendCidrs'>): Prober {
  const key = config.allowedBackendCidrs.join(',');
  let p = probers.get(key);
  if (p === undefined) {
    p = new Prober({ allowedCidrs: config.allowedBackendCidrs });
    probers.set(key, p);
  }
  return p;
}

/** Closes the cached probers' connections (tests, tools). */
export function closeProbers(): void {
  for (const p of probers.values()) p.close();
  probers.clear();
}

function countingDb(db: Queryable, stats: SweepStats): Queryable {
  return {
    query: <R,>(text: string, params?: unknown[]) => {
      stats.dbRoundTrips++;
      return db.query<R>(text, params);
    },
  };
}

/** Resolves when the condition holds, re-checked on every signal. */
class Gate {
  private waiters: Array<() => void> = [];
  signal(): void {
    for (const w of this.waiters.splice(0)) w();
  }
  async until(cond: () => boolean): Promise<void> {
    while (!cond()) await new Promise<void>((r) => this.waiters.push(r));
  }
}

export async function runSweep(inv: Invocation, opts: SweepOptions): Promise<SweepStats> {
  const started = performance.now();
  const { config } = inv.rt;
  const stats = emptyStats();
  const log = opts.log ?? silentLog;
  const now = opts.now ?? (() => new Date());
  const db = countingDb(inv.rt.db as unknown as Queryable, stats);
  const batchSize = opts.batchSize ?? 100;
  const maxCircuitsInFlight = Math.max(1, opts.maxCircuitsInFlight ?? 1000);
  const probeConcurrency = opts.probeConcurrency ?? config.healthProbeConcurrency;
  const maxPendingProbes = Math.max(probeConcurrency, opts.maxPendingProbes ?? 4 * probeConcurrency);
  const propagateConcurrency = opts.propagateConcurrency ?? 16;
  const flushRoutes = opts.counterFlushRoutes ?? 1000;
  const flushEvents = opts.eventFlushSize ?? 100;
  const prober = opts.prober ?? getProber(config);
  const probes = new PriorityLimiter(probeConcurrency);
  const propagateLimit = pLimit(propagateConcurrency);
  const flushLimit = pLimit(2);
  const gate = new Gate();
  const tasks = new Set<Promise<void>>();
  const track = (p: Promise<void>): void => {
    tasks.add(p);
    void p.finally(() => {
      tasks.delete(p);
      gate.signal();
    });
  };
  let circuitsInFlight = 0;
  /** Only circuits due when the pass started: a pass slower than an interval still ends. */
  const sweepStart = now();
  /** Circuits claimed by this sweep, and those its health changes fully converged in etcd. */
  const claimed = new Set<string>();
  const convergedByHealth = new Set<string>();

  // ---- the unlocked write of counters, batched across circuits ----------------------------------
  let counterBuffer: CounterWrite[] = [];
  const flushCounters = (): void => {
    if (counterBuffer.length === 0) return;
    const batch = counterBuffer;
    counterBuffer = [];
    track(
      flushLimit(() => persistCounters(db, batch)).then(
        (n) => {
          stats.countersWritten += n;
          stats.resultsDiscarded += batch.length - n;
        },
        (err: unknown) => {
          // Counters are advisory until a threshold is crossed; the next interval recomputes.
          addError(stats, `counters: ${(err as Error).message}`);
          log.error('persisting health counters failed', { routes: batch.length, error: (err as Error).message });
        },
      ),
    );
  };

  // ---- events, batched ------------------------------------------------------------------------------
  let eventBuffer: RouteHealthChanged[] = [];
  const publishEvents = (): void => {
    if (eventBuffer.length === 0) return;
    const batch = eventBuffer;
    eventBuffer = [];
    for (const e of batch) log.info('route health changed', { ...e });
    track(
      Promise.resolve()
        .then(() => opts.publish(batch))
        .then(
        () => void (stats.eventsPublished += batch.length),
        (err: unknown) => {
          stats.publishFailures += batch.length;
          log.error('publishing RouteHealthChanged failed', { count: batch.length, error: (err as Error).message });
        },
      ),
    );
  };

  // ---- the locked path, only for circuits whose status changed --------------------------------------
  async function applyChanges(circuit: ClaimedCircuit, writes: RouteHealthWrite[], atIso: string): Promise<void> {
    const holder: { applied: AppliedHealth | null } = { applied: null };
    try {
      const r = await propagate(inv, circuit.id, {
        workerHint: circuit.worker,
        change: async (q, fence) => (holder.applied = await applyHealthChanges(q, circuit.id, writes, fence)),
      });
      stats.lockAcquisitions++;
      stats.dbRoundTrips += r.dbQueries;
      stats.etcdRpcs += r.etcdRpcs;
      stats.etcdTxns += r.txns;
      if (r.applied) convergedByHealth.add(circuit.id);
      const committed = (holder.applied as AppliedHealth | null)?.changed ?? [];
      stats.resultsDiscarded += writes.length - committed.length;
      if (committed.length > 0) stats.circuitsChanged++;
      stats.statusChanges += committed.length;
      if (r.found && !r.applied) {
        stats.notApplied++;
        log.warn('health change committed but not applied to etcd (the next sweep converges it)', {
          circuitId: circuit.id,
          reason: r.notAppliedReason,
        });
      }
      for (const ch of committed) {
        eventBuffer.push({
          circuitId: circuit.id,
          routeId: ch.routeId,
          from: ch.from,
          to: ch.to,
          at: atIso,
          lastError: writes.find((x) => x.routeId === ch.routeId)?.lastError ?? null,
          generation: r.generation ?? circuit.generation,
        });
      }
      if (eventBuffer.length >= flushEvents) publishEvents();
    } catch (err) {
      // Lock timeout, etcd or database down: the results are dropped; the next interval probes
      // again and reaches the same decision from the persisted state.
      addError(stats, `health change ${circuit.id}: ${(err as Error).message}`);
      log.error('health change failed', { circuitId: circuit.id, error: (err as Error).message });
    }
  }

  // ---- one circuit: probe (outside any lock), decide, hand over the writes ----------------------------
  async function processCircuit(c: ClaimedCircuit): Promise<void> {
    try {
      const results = await Promise.all(
        c.routes.map((r) =>
          probes
            .run(
              () =>
                prober.probe({
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
            .finally(() => gate.signal()),
        ),
      );
      const at = now();
      const atIso = at.toISOString();
      const changed: RouteHealthWrite[] = [];
      c.routes.forEach((r, j) => {
        const p = results[j]!;
        stats.probes++;
        if (!p.ok) stats.probeFailures++;
        if (p.refused) stats.probesRefused++;
        const t = nextHealth(r, p, c.healthCheck, inInitialDelay(r.createdAt, c.healthCheck.initialDelaySeconds, at));
        const w: RouteHealthWrite = {
          routeId: r.routeId,
          host: r.host,
          port: r.port,
          expected: {
            status: r.status,
            consecutiveSuccesses: r.consecutiveSuccesses,
            consecutiveFailures: r.consecutiveFailures,
            lastCheckedAt: r.lastCheckedAt,
          },
          next: t.health,
          lastError: t.lastError,
          checkedAt: atIso,
        };
        if (t.changed) changed.push(w);
        else counterBuffer.push({ ...w, circuitId: c.id });
      });
      if (changed.length > 0) track(propagateLimit(() => applyChanges(c, changed, atIso)));
      if (counterBuffer.length >= flushRoutes) flushCounters();
    } catch (err) {
      addError(stats, `circuit ${c.id}: ${(err as Error).message}`);
      log.error('health check of a circuit failed', { circuitId: c.id, error: (err as Error).message });
    } finally {
      circuitsInFlight--;
      gate.signal();
    }
  }

  // ---- claims: as long as there is room, so that the probe queue never runs dry -----------------------
  for (;;) {
    if (opts.stopClaimingAt !== undefined && Date.now() >= opts.stopClaimingAt) break;
    // Back-pressure: room for more circuits, probes not piling up, counter writes keeping up.
    await gate.until(
      () => circuitsInFlight < maxCircuitsInFlight && probes.pendingCount < maxPendingProbes && flushLimit.pendingCount < 4,
    );
    const want = Math.min(batchSize, maxCircuitsInFlight - circuitsInFlight);
    let batch: ClaimedCircuit[];
    try {
      batch = await claimDueCircuits(db, now(), want, sweepStart);
    } catch (err) {
      addError(stats, `claim: ${(err as Error).message}`);
      log.error('claiming due circuits failed', { error: (err as Error).message });
      break;
    }
    if (batch.length > 0) {
      stats.batches++;
      stats.circuitsClaimed += batch.length;
      log.debug('claimed due circuits', { count: batch.length });
    }
    for (const c of batch) {
      circuitsInFlight++;
      claimed.add(c.id);
      track(processCircuit(c));
    }
    // Fewer than asked: nothing else is due (or the rest is being claimed by another sweep).
    if (batch.length < want) break;
  }
  // ---- drift repair, overlapping the tail of the probes ----------------------------------------------
  // It starts once every probe has started (the tail is mostly timeouts). A drifted circuit this
  // sweep claimed is deferred: if its health change converges it, repairing it again would only
  // take its lock once more.
  let drift: Promise<DriftStats | Error> | undefined;
  if (opts.drift !== false) {
    drift = (async () => {
      await gate.until(() => probes.pendingCount === 0);
      const t0 = performance.now();
      try {
        return await repairDrift(inv, {
          db,
          propagateConcurrency,
          circuitsPageSize: opts.driftCircuitsPageSize ?? 500,
          keysPageSize: opts.driftKeysPageSize ?? 5000,
          log,
          owned: (id) => claimed.has(id),
        });
      } catch (err) {
        return err as Error;
      } finally {
        stats.driftMs = Math.round(performance.now() - t0);
      }
    })();
  }

  await gate.until(() => circuitsInFlight === 0);
  flushCounters();
  while (tasks.size > 0) {
    await Promise.all([...tasks]);
    publishEvents();
  }
  stats.probeMs = Math.round(performance.now() - started);

  if (drift !== undefined) {
    const d = await drift;
    if (d instanceof Error) {
      addError(stats, `drift: ${d.message}`);
      log.error('drift repair failed', { error: d.message });
    } else {
      const deferred = [...d.deferred].filter(([id]) => !convergedByHealth.has(id));
      const limit = pLimit(propagateConcurrency);
      await Promise.all(deferred.map(([id, worker]) => limit(() => repairCircuit(inv, id, worker, d, log))));
      stats.driftChecked = d.circuitsChecked;
      stats.driftRepaired = d.driftRepaired;
      stats.orphansRemoved = d.orphansRemoved;
      stats.notApplied += d.notApplied;
      stats.etcdTxns += d.etcdTxns;
      stats.etcdRpcs += d.etcdRpcs;
      stats.lockAcquisitions += d.lockAcquisitions;
      for (const e of d.errors) addError(stats, e);
      if (d.driftDetected > 0 || d.orphanCircuits > 0 || d.orphansRemoved > 0 || d.renderErrors > 0) {
        log.info('drift repair', { ...d, deferred: d.deferred.size, errors: d.errors.length });
      }
    }
  }
  stats.durationMs = Math.round(performance.now() - started);
  return stats;
}

// ---- several sweeps in one invocation ----------------------------------------------------------

export interface RunSweepsOptions extends SweepOptions {
  /** Time left in this invocation (Lambda: context.getRemainingTimeInMillis). */
  remainingMs(): number;
  /** Stop early enough to leave this much time unused. */
  safetyMarginMs: number;
  /** Drift repair runs on the first pass and then at most this often. Default 60 000. */
  driftEveryMs?: number;
  /** How to wait between passes (tests). */
  sleep?: (ms: number) => Promise<void>;
}

export interface SweepsResult {
  passes: SweepStats[];
  total: SweepStats;
}

function addStats(into: SweepStats, s: SweepStats): void {
  for (const k of Object.keys(into) as Array<keyof SweepStats>) {
    if (k === 'errors') into.errors.push(...s.errors.slice(0, Math.max(0, MAX_ERRORS - into.errors.length)));
    else (into[k] as number) += s[k] as number;
  }
}

/**
 * Sweeps until the remaining time runs short (DESIGN §5): a pass, then sleep until the next
 * circuit is due, and again, as long as another pass fits before the safety margin. When the
 * remaining time at the start is below one interval (the smallest health-check interval), it
 * runs exactly one pass, so tools can drive single passes.
 */
export async function runSweeps(inv: Invocation, opts: RunSweepsOptions): Promise<SweepsResult> {
  const sleep = opts.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  const now = opts.now ?? (() => new Date());
  const db = inv.rt.db as unknown as Queryable;
  const driftEveryMs = opts.driftEveryMs ?? 60_000;
  const passes: SweepStats[] = [];
  const total = emptyStats();

  const first = await nextDue(db);
  total.dbRoundTrips++;
  const oneIntervalMs = (first.minIntervalSeconds ?? Infinity) * 1000;
  const single = opts.remainingMs() < oneIntervalMs + opts.safetyMarginMs;
  let lastDriftAt = -Infinity;

  for (let pass = 0; ; pass++) {
    const budget = opts.remainingMs() - opts.safetyMarginMs;
    const drift = opts.drift !== false && Date.now() - lastDriftAt >= driftEveryMs;
    const s = await runSweep(inv, {
      ...opts,
      drift,
      // The first pass always runs; it stops claiming when the margin is reached, if it can.
      ...(budget > 0 ? { stopClaimingAt: Date.now() + budget } : {}),
    });
    if (drift) lastDriftAt = Date.now();
    passes.push(s);
    addStats(total, s);
    if (single) break;

    const next = await nextDue(db);
    total.dbRoundTrips++;
    if (next.at === null) break;
    // A little slack: timers may fire a millisecond early, and waking before the due time would
    // only make an empty pass.
    const waitMs = Math.max(0, next.at.getTime() - now().getTime() + 10);
    // Another pass must fit: the wait, a pass as long as the last one, and the margin.
    if (opts.remainingMs() - waitMs - s.durationMs - opts.safetyMarginMs <= 0) break;
    if (waitMs > 0) await sleep(waitMs);
  }
  return { passes, total };
}
