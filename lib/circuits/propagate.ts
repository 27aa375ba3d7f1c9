// The write path every writer shares (DESIGN §3):
//   lock (+ read meta, epoch and current keys: one txn) -> a database statement under the lock that
//   advances the circuit's fence and reads (or changes) it -> render -> plan -> fenced apply that
//   also releases the lock (one txn).
// Uncontended, with the circuit's worker known, that is 2 etcd RPCs and 1 database round trip
// (plus the invocation's lease grant); an unload adds the statement that frees the frontend.
import type { CircuitView } from '../model.js';
import {
  applyFenced,
  decodeMeta,
  epochKey,
  getOp,
  getPrefixOp,
  keysOf,
  lockPrefix,
  metaKey,
  MAX_TXN_OPS,
  readPrefixes,
  RESERVED_OPS,
  servedGeneration,
  withLock,
  type Acquired,
  type SeenMeta,
} from '../etcd/index.js';
import { markKeysRemoved, readForHolder, type DbFence, type Queryable } from '../db/index.js';
import { render } from '../traefik/render.js';
import { diffKeys } from '../traefik/diff.js';
import { planSteps } from '../traefik/plan.js';
import { circuitKeyPrefixes, planNames, workerRoot } from '../traefik/names.js';
import { EtcdHistoryChangedError, isRetryable, StaleFenceError } from '../errors.js';
import { failpoint } from '../failpoints.js';
import type { Invocation } from '../runtime.js';
import { onRolledBackHistory } from './history.js';

/** A change made under the lock together with the queued changes it applied (combining). */
export interface CombinedView {
  view: CircuitView;
  /** The queued changes applied with ours (their intent ids, as in their lock keys' notes). */
  served: ReadonlyArray<{ intentId: string; generation: number }>;
  /** The generation of our own change. */
  ownGeneration: number;
}

/**
 * Combining (update-routes): while we queue, our change is on offer to the holder ahead of us,
 * which may apply it with its own and tell us so (meta.served) in the transaction that releases the
 * lock; once we hold the lock, we may apply the changes queued behind us the same way.
 */
export interface Combining {
  /** Our change's id: the note in our lock key, and what meta.served names. */
  intentId: string;
  /** We have to queue: make our change available to the holder ahead (record it). */
  onQueued(): void;
  /** Apply at most this many queued changes with ours. */
  maxServed: number;
  /** We are about to answer an error after queuing: withdraw our change, or learn its generation. */
  settle(): Promise<number | null>;
}

export interface PropagateOptions {
  /** The circuit's worker if the caller knows it (it never changes): saves one etcd RPC. */
  workerHint?: string;
  /**
   * The database change to make under the lock (update-routes, unload, health results). It must
   * advance the circuit's fence (lib/db/locked.ts) and return the circuit as committed. Without
   * it, the circuit is read fresh (and the fence advanced all the same). `queued` are the notes
   * (intent ids) of the contenders queued behind us, when combining.
   */
  change?: (db: Queryable, fence: DbFence, queued: readonly string[]) => Promise<CircuitView | CombinedView | null>;
  combine?: Combining;
}

export interface PropagateResult {
  circuitId: string;
  /** False when the circuit does not exist in the database (nothing was written). */
  found: boolean;
  generation: number | null;
  deleted: boolean;
  /** Whether etcd now holds this generation. */
  applied: boolean;
  /** Nothing to write: etcd already matched the database. */
  unchanged: boolean;
  /** When the database committed but etcd could not be written: why (the sweep converges it). */
  notAppliedReason?: string;
  /** A deleted circuit's keys are confirmed gone and its frontend was freed by this call. */
  frontendReleased?: boolean;
  etcdRevision?: string;
  /** Our change was applied by the holder ahead of us (combining): we wrote nothing ourselves. */
  servedBy?: 'holder-ahead';
  /** Queued changes this call applied with its own (combining). */
  served?: number;
  txns: number;
  etcdRpcs: number;
  /** Of etcdRpcs, those the lock cost (queuing, waiting, taking it): 1 uncontended. */
  lockRpcs?: number;
  dbQueries: number;
  lockWaitMs: number;
}

/** Circuit id -> worker authority. Safe to cache forever: a circuit's worker never changes. */
const workerCache = new Map<string, string>();
const WORKER_CACHE_MAX = 100_000;

function rememberWorker(circuitId: string, worker: string): void {
  if (workerCache.size >= WORKER_CACHE_MAX) workerCache.clear();
  workerCache.set(circuitId, worker);
}

function countingDb(db: Queryable): Queryable & { count: number } {
  const wrapped = {
    count: 0,
    query: <R,>(text: string, params?: unknown[]) => {
      wrapped.count++;
      return db.query<R>(text, params);
    },
  };
  return wrapped;
}

export async function propagate(inv: Invocation, circuitId: string, opts: PropagateOptions = {}): Promise<PropagateResult> {
  const { config, etcd } = inv.rt;
  const db = countingDb(inv.rt.db);
  const rpcTimeoutMs = config.etcd.timeoutMs;
  const mKey = metaKey(config.metaPrefix, circuitId);
  const knownWorker = opts.workerHint ?? workerCache.get(circuitId);
  const prefixesOf = (worker: string) => circuitKeyPrefixes(workerRoot(config.traefikRoot, worker), circuitId);

  const session = await inv.session();
  let etcdRpcs = 0;
  const combine = opts.combine;
  // Our own change committed (the errors after it are not ours to settle).
  let committedOwn = false;
  try {
    return await withLock<PropagateResult>(
      session,
      {
        prefix: lockPrefix(config.metaPrefix, circuitId),
        epochKey: epochKey(config.metaPrefix),
        waitMs: config.lockWaitMs,
        rpcTimeoutMs,
        reads: [getOp(mKey), ...(knownWorker ? prefixesOf(knownWorker).map(getPrefixOp) : [])],
        holder: inv.label,
        ...(combine
          ? {
              note: combine.intentId,
              queue: combine.maxServed,
              served: { key: mKey, find: (v: string) => servedGeneration(v, combine.intentId) },
              onQueued: () => combine.onQueued(),
            }
          : {}),
      },
      async (acq): Promise<PropagateResult> => {
        etcdRpcs += acq.rpcs;
        const metaKv = acq.reads[0]!.response_range.kvs[0];
        const seen: SeenMeta = {
          modRevision: metaKv?.mod_revision ?? '0',
          value: metaKv ? decodeMeta(metaKv.value.toString('utf8')) : null,
        };
        await failpoint('propagate.locked', { holder: inv.label, circuitId });
        // Not worth a database change if our lease may already be gone (DESIGN I3, I5).
        session.assertAlive();
        const queuedKeys = new Map(acq.queue.flatMap((c) => (c.value.note === undefined ? [] : [[c.value.note, c.key] as const])));
        // I5: whatever we write is computed from this statement, made after the lock was acquired.
        const changed = await underLock(inv, acq, (fence) => (opts.change ? opts.change(db, fence, [...queuedKeys.keys()]) : readForHolder(db, circuitId, fence)));
        committedOwn = true;
        await failpoint('propagate.read', { holder: inv.label, circuitId });
        const base = { circuitId, txns: 0, lockWaitMs: acq.waitedMs, lockRpcs: acq.rpcs };
        if (changed === null) {
          etcdRpcs++; // the release
          return { ...base, found: false, generation: null, deleted: false, applied: false, unchanged: true, etcdRpcs, dbQueries: db.count };
        }
        const { view, served, ownGeneration } = 'served' in changed ? changed : { view: changed, served: [], ownGeneration: changed.circuit.generation };
        const servedKeys = served.map((x) => queuedKeys.get(x.intentId)!);
        const { circuit, worker } = view;
        rememberWorker(circuitId, circuit.worker);
        const deleted = circuit.deletedAt !== null;
        const committed = { ...base, found: true, generation: ownGeneration, deleted, ...(served.length > 0 ? { served: served.length } : {}) };
        const releaseFrontend = async (): Promise<boolean> => {
          if (!deleted || circuit.keysRemovedAt !== null) return false;
          // Best effort: the sweep frees it otherwise.
          return markKeysRemoved(db, circuitId).catch(() => false);
        };
        try {
          const metaUpToDate = seen.value !== null && seen.value.generation === circuit.generation && seen.value.deleted === deleted;
          // A deletion removes whole subtrees whatever they hold: its keys matter only to tell
          // whether there is anything left to do (tombstone written, or retired).
          const keysMatter = !deleted || metaUpToDate || (seen.value === null && circuit.keysRemovedAt !== null);
          const current =
            knownWorker === circuit.worker
              ? keysOf(acq.reads.slice(1))
              : !keysMatter
                ? new Map<string, string>()
                : // First sight of this circuit in this process: read its keys now (we hold the lock).
                  (etcdRpcs++, await readPrefixes(etcd, prefixesOf(circuit.worker), rpcTimeoutMs));
          const desired = deleted
            ? new Map<string, string>()
            : render(circuit, worker, { traefikRoot: config.traefikRoot, extraMiddlewares: config.traefikExtraMiddlewares });
          const d = diffKeys(current, desired);
          // A deletion whose tombstone has been retired (TOMBSTONE_RETENTION_SECONDS) has nothing left
          // to write: writing the tombstone again would only make state grow back.
          const retired = deleted && seen.value === null && circuit.keysRemovedAt !== null && current.size === 0;
          if (served.length === 0 && (retired || (metaUpToDate && d.puts.length === 0 && d.deletes.length === 0))) {
            etcdRpcs++; // the release
            const frontendReleased = await releaseFrontend();
            return { ...committed, applied: true, unchanged: true, frontendReleased, etcdRpcs, dbQueries: db.count };
          }
          const steps = planSteps(current, desired, planNames(config.traefikRoot, circuit.worker, circuitId, circuit.protocol), MAX_TXN_OPS - RESERVED_OPS - servedKeys.length);
          await failpoint('propagate.beforeApply', { holder: inv.label, circuitId });
          const applied = await applyFenced({
            lock: acq.lock,
            metaKey: mKey,
            seen,
            steps,
            meta: { generation: circuit.generation, deleted, worker: circuit.worker, ...(served.length > 0 ? { served: served.map((x) => [x.intentId, x.generation] as [string, number]) } : {}) },
            servedKeys,
            rpcTimeoutMs,
          });
          etcdRpcs += applied.txns;
          const frontendReleased = await releaseFrontend();
          return { ...committed, applied: true, unchanged: false, frontendReleased, etcdRevision: applied.revision, txns: applied.txns, etcdRpcs, dbQueries: db.count };
        } catch (err) {
          // The database has committed; etcd will be converged by the next sweep. Say so (DESIGN §3).
          if (isRetryable(err)) {
            return { ...committed, applied: false, unchanged: false, notAppliedReason: err.message, etcdRpcs, dbQueries: db.count };
          }
          throw err;
        }
      },
      // The holder ahead applied our change with its own and removed our lock key: done.
      (s): PropagateResult => ({
        circuitId,
        found: true,
        generation: s.served as number,
        deleted: false,
        applied: true,
        unchanged: false,
        servedBy: 'holder-ahead' as const,
        txns: 0,
        etcdRpcs: etcdRpcs + s.rpcs,
        lockRpcs: s.rpcs,
        dbQueries: db.count,
        lockWaitMs: s.waitedMs,
      }),
    );
  } catch (err) {
    // Our change may be on offer to a holder (queued, or a statement that failed before it claimed
    // it): take it back before answering, or learn that a holder applied it.
    if (combine === undefined || committedOwn) throw err;
    const generation = await combine.settle();
    if (generation === null) throw err;
    return {
      circuitId,
      found: true,
      generation,
      deleted: false,
      applied: false,
      unchanged: false,
      notAppliedReason: `applied in the database by the lock holder ahead, not confirmed in etcd (${(err as Error).message}); the next sweep converges etcd`,
      txns: 0,
      etcdRpcs,
      dbQueries: db.count,
      lockWaitMs: 0,
    };
  }
}

/**
 * Runs the holder's database statement. A stale fence while we still own the lock cannot happen
 * in one etcd history (a newer holder's fence needs our key gone first): etcd's history was
 * rolled back or rebuilt under the database, so a new fencing epoch is started and the writer
 * retries (nothing was changed).
 */
async function underLock<T>(inv: Invocation, acq: Acquired, statement: (fence: DbFence) => Promise<T>): Promise<T> {
  try {
    return await statement(acq.lock.fence);
  } catch (err) {
    if (!(err instanceof StaleFenceError) || !(await acq.lock.isOwner(inv.rt.config.etcd.timeoutMs).catch(() => false))) throw err;
    const started = await onRolledBackHistory(inv, acq.lock.fence).catch(() => null);
    throw new EtcdHistoryChangedError(
      `etcd's history is not the one the database's fences were taken in${started ? ` (fencing epoch ${started.epoch} started)` : ''}; nothing was changed, retry`,
      { cause: err },
    );
  }
}
