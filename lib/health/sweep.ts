// scheduled-health (DESIGN §3). One pass:
//   0. checks that etcd's history is the one the database's fences were taken in (history.ts),
//   1. completes unloads requested more than UNLOAD_GRACE_SECONDS ago (their event was lost),
//      alongside the probing: they are the promise of a 202 (I6), probing is best effort, so they
//      never wait behind a probe timeout,
//   2. claims due circuits (only those whose probe timeout fits before the deadline), probes their
//      routes outside any lock, decides (pure) and writes: counters unlocked (per batch), status
//      changes through the fenced path, RouteHealthChanged events (probing.ts, decide.ts, writer.ts),
//   3. repairs drift, releases the frontends of deleted circuits, retires old tombstones and
//      reports (or, opted in, removes) orphans (drift.ts), overlapping the tail of the probes,
//   4. after a drift pass that completed, purges deleted circuits older than
//      DELETED_RETENTION_DAYS (not those the pass found drifted); and old route transitions and
//      old queued route changes.
import pLimit from 'p-limit';
import type { Invocation } from '../runtime.js';
import { purgeDeleted, purgeIntents, purgeTransitions, type Queryable } from '../db/index.js';
import { checkEtcdHistory } from '../circuits/history.js';
import { completePendingUnloads } from '../circuits/unload.js';
import { SWEEP_DEFAULTS } from './defaults.js';
import { computeDrift, emptyRepair, repairCircuit, repairDrift, type DriftRepair } from './drift.js';
import type { PublishHealthEvents } from './events.js';
import { silentLog, type SweepLog } from './log.js';
import type { Prober } from './probe.js';
import { getProber } from './probers.js';
import { Probing } from './probing.js';
import { addError, emptyStats, type SweepStats } from './stats.js';
import { Gate, Tasks } from './tasks.js';
import { HealthWriter } from './writer.js';

type Tunables = { -readonly [K in keyof typeof SWEEP_DEFAULTS]?: number };

export interface SweepOptions extends Tunables {
  publish: PublishHealthEvents;
  /** The clock (tests jump time with it). Default: the system clock. */
  now?: () => Date;
  /** Probes in flight. Default config.healthProbeConcurrency. */
  probeConcurrency?: number;
  /** Run drift repair, frontend release and retention after the health batches. Default true. */
  drift?: boolean;
  /**
   * The pass's duties besides probing: the etcd history check, pending unloads, drift and
   * retention. Default true; the extra sweepers of a fan-out only probe (the dispatcher does the rest).
   */
  maintenance?: boolean;
  /**
   * The time (epoch ms) by which the pass's probes and writes must be done: circuits whose probe
   * timeout (clamped to what a whole invocation allows) plus probeReserveMs does not fit before it
   * are left for a later pass. None: claim everything due.
   */
  deadline?: number;
  /** The prober (keep-alive connections live in it). Default: one per cold start and CIDR set. */
  prober?: Prober;
  log?: SweepLog;
}

function countingDb(db: Queryable, stats: SweepStats): Queryable {
  return {
    query: <R,>(text: string, params?: unknown[]) => {
      stats.dbRoundTrips++;
      return db.query<R>(text, params);
    },
  };
}

export async function runSweep(inv: Invocation, opts: SweepOptions): Promise<SweepStats> {
  const started = performance.now();
  const { config } = inv.rt;
  const o = { ...SWEEP_DEFAULTS, ...stripUndefined(opts) };
  const stats = emptyStats();
  const log = opts.log ?? silentLog;
  const now = opts.now ?? (() => new Date());
  const db = countingDb(inv.rt.db, stats);
  const probeConcurrency = opts.probeConcurrency ?? config.healthProbeConcurrency;
  const maintenance = opts.maintenance !== false;

  if (maintenance) {
    try {
      const h = await checkEtcdHistory(inv);
      stats.etcdRpcs += 1;
      if (h.status === 'new-epoch') {
        stats.epochsStarted++;
        log.warn('etcd history changed: new fencing epoch; every circuit is re-propagated from the database', { epoch: h.epoch, reason: h.reason });
      }
    } catch (err) {
      addError(stats, `etcd history check: ${(err as Error).message}`);
      log.error('checking the etcd history failed', { error: (err as Error).message });
    }
  }

  const gate = new Gate();
  const tasks = new Tasks(gate);
  const writer = new HealthWriter(inv, stats, tasks, {
    db,
    publish: opts.publish,
    log,
    counterFlushRoutes: o.counterFlushRoutes,
    counterFlushConcurrency: o.counterFlushConcurrency,
    eventFlushSize: o.eventFlushSize,
    propagateConcurrency: o.propagateConcurrency,
  });
  const probing = new Probing(stats, tasks, gate, writer, {
    db,
    prober: opts.prober ?? getProber(config),
    now,
    dueBy: now(),
    batchSize: o.batchSize,
    maxCircuitsInFlight: Math.max(1, o.maxCircuitsInFlight),
    probeConcurrency,
    maxPendingProbes: Math.max(probeConcurrency, o.pendingProbesPerSlot * probeConcurrency),
    probeReserveMs: o.probeReserveMs,
    ...(opts.deadline !== undefined ? { deadline: opts.deadline, clampTimeoutMs: longestProbeMs(config.functionTimeoutSeconds, o) } : {}),
    log,
  });

  // Unloads whose event never came (or failed): the request is durable, complete it, while the
  // probes run rather than after them.
  const unloads = maintenance ? completeUnloads(inv, stats, log, config.unloadGraceSeconds, o) : Promise.resolve();

  await probing.claimAll();

  // Drift starts once every probe has started (the tail is mostly timeouts). A drifted circuit
  // this pass claimed is deferred: if its health change converges it, repairing it again would
  // only take its lock once more.
  const drift = opts.drift === false || !maintenance ? undefined : (async (): Promise<DriftRepair | Error> => {
    await gate.until(() => probing.allProbesStarted);
    const t0 = performance.now();
    try {
      const plan = await computeDrift(inv, { db, circuitsPageSize: o.driftCircuitsPageSize, keysPageSize: o.driftKeysPageSize, log });
      stats.driftChecked = plan.circuitsChecked;
      stats.etcdRpcs += plan.etcdRpcs;
      stats.foreignKeys = plan.foreignKeys.count;
      stats.orphanKeys = plan.orphans.filter((x) => !x.known).reduce((n, x) => n + x.keys, 0);
      return await repairDrift(inv, plan, { propagateConcurrency: o.propagateConcurrency, log, owned: (id) => probing.claimed.has(id) });
    } catch (err) {
      return err as Error;
    } finally {
      stats.driftMs = Math.round(performance.now() - t0);
    }
  })();

  await gate.until(() => probing.done);
  writer.flushCounters();
  await tasks.drain(() => writer.publishEvents());
  stats.probeMs = Math.round(performance.now() - started);
  await unloads;

  if (drift !== undefined) {
    const d = await drift;
    // Circuits this pass found drifted (repaired or not) keep their rows: a row is purged only
    // once a drift pass that completed found its keys gone and left it alone.
    const unsettled = new Set<string>();
    if (d instanceof Error) {
      addError(stats, `drift: ${d.message}`);
      log.error('drift repair failed', { error: d.message });
    } else {
      const deferred = [...d.deferred].filter(([id]) => !writer.converged.has(id));
      const limit = pLimit(o.propagateConcurrency);
      const late = emptyRepair();
      await Promise.all(deferred.map(([id, worker]) => limit(() => repairCircuit(inv, id, worker, late, log))));
      for (const r of [d, late]) {
        stats.driftRepaired += r.driftRepaired;
        stats.frontendsReleased += r.frontendsReleased;
        stats.orphansRemoved += r.orphansRemoved;
        stats.tombstonesRetired += r.tombstonesRetired;
        stats.notApplied += r.notApplied;
        stats.etcdTxns += r.etcdTxns;
        stats.etcdRpcs += r.etcdRpcs;
        stats.lockAcquisitions += r.lockAcquisitions;
        for (const e of r.errors) addError(stats, e);
        for (const id of r.circuits) unsettled.add(id);
      }
    }
    try {
      // A failed drift pass says nothing about what etcd holds: no row is purged after it.
      if (!(d instanceof Error)) {
        const purged = await purgeDeleted(db, config.deletedRetentionDays, o.purgePerPass, [...unsettled]);
        stats.rowsPurged += purged.length;
        if (purged.length > 0) log.info('purged deleted circuits past their retention', { count: purged.length });
      }
      await purgeTransitions(db, config.healthTransitionRetentionDays, o.purgePerPass * 10);
      // Queued route changes outlive every writer that could still read them after this. They
      // can be queued faster than one batch per pass: batches go on while they come back full
      // and the pass has time left (one batch in any case, as every pass always did).
      const intentBatch = o.purgePerPass * 10;
      let n: number;
      do n = await purgeIntents(db, config.tombstoneRetentionSeconds, intentBatch);
      while (n === intentBatch && (opts.deadline === undefined || Date.now() < opts.deadline));
    } catch (err) {
      addError(stats, `purge: ${(err as Error).message}`);
    }
  }
  stats.durationMs = Math.round(performance.now() - started);
  return stats;
}

async function completeUnloads(inv: Invocation, stats: SweepStats, log: SweepLog, graceSeconds: number, o: { pendingUnloadsPerPass: number; propagateConcurrency: number }): Promise<void> {
  try {
    const p = await completePendingUnloads(inv, { olderThanSeconds: graceSeconds, limit: o.pendingUnloadsPerPass, concurrency: o.propagateConcurrency });
    stats.pendingUnloadsCompleted += p.completed;
    stats.notApplied += p.notApplied;
    for (const f of p.failed) addError(stats, `pending unload ${f.circuitId}: ${f.error}`);
    if (p.found > 0) log.warn('completed unloads whose event did not arrive in time', { found: p.found, completed: p.completed, failed: p.failed.length });
  } catch (err) {
    addError(stats, `pending unloads: ${(err as Error).message}`);
  }
}

/**
 * The longest probe timeout any pass can wait for: a whole invocation less the safety margin and
 * the reserve for writing results. Longer configured timeouts are probed with this one, or the
 * circuit would never fit any pass.
 */
export function longestProbeMs(functionTimeoutSeconds: number, o: { safetyMarginMs: number; probeReserveMs: number }): number {
  return Math.max(1000, functionTimeoutSeconds * 1000 - o.safetyMarginMs - o.probeReserveMs);
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
