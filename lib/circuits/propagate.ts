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

export interface PropagateOptions {
  /** The circuit's worker if the caller knows it (it never changes): saves one etcd RPC. */
  workerHint?: string;
  /**
   * The database change to make under the lock (update-routes, unload, health results). It must
   * advance the circuit's fence (lib/db/locked.ts) and return the circuit as committed. Without
   * it, the circuit is read fresh (and the fence advanced all the same).
   */
  change?: (db: Queryable, fence: DbFence) => Promise<CircuitView | null>;
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
  txns: number;
  etcdRpcs: number;
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
  return withLock(
    session,
    {
      prefix: lockPrefix(config.metaPrefix, circuitId),
      epochKey: epochKey(config.metaPrefix),
      waitMs: config.lockWaitMs,
      rpcTimeoutMs,
      reads: [getOp(mKey), ...(knownWorker ? prefixesOf(knownWorker).map(getPrefixOp) : [])],
      holder: inv.label,
    },
    async (acq) => {
      etcdRpcs += acq.rpcs;
      const metaKv = acq.reads[0]!.response_range.kvs[0];
      const seen: SeenMeta = {
        modRevision: metaKv?.mod_revision ?? '0',
        value: metaKv ? decodeMeta(metaKv.value.toString('utf8')) : null,
      };
      await failpoint('propagate.locked', { holder: inv.label, circuitId });
      // Not worth a database change if our lease may already be gone (DESIGN I3, I5).
      session.assertAlive();
      // I5: whatever we write is computed from this statement, made after the lock was acquired.
      const view = await underLock(inv, acq, (fence) => (opts.change ? opts.change(db, fence) : readForHolder(db, circuitId, fence)));
      await failpoint('propagate.read', { holder: inv.label, circuitId });
      const base = { circuitId, txns: 0, lockWaitMs: acq.waitedMs };
      if (view === null) {
        etcdRpcs++; // the release
        return { ...base, found: false, generation: null, deleted: false, applied: false, unchanged: true, etcdRpcs, dbQueries: db.count };
      }
      const { circuit, worker } = view;
      rememberWorker(circuitId, circuit.worker);
      const deleted = circuit.deletedAt !== null;
      const committed = { ...base, found: true, generation: circuit.generation, deleted };
      const releaseFrontend = async (): Promise<boolean> => {
        if (!deleted || circuit.keysRemovedAt !== null) return false;
        // Best effort: the sweep frees it otherwise.
        return markKeysRemoved(db, circuitId).catch(() => false);
      };
      try {
        const current =
          knownWorker === circuit.worker
            ? keysOf(acq.reads.slice(1))
            : // First sight of this circuit in this process: read its keys now (we hold the lock).
              (etcdRpcs++, await readPrefixes(etcd, prefixesOf(circuit.worker), rpcTimeoutMs));
        const desired = deleted
          ? new Map<string, string>()
          : render(circuit, worker, { traefikRoot: config.traefikRoot, extraMiddlewares: config.traefikExtraMiddlewares });
        const d = diffKeys(current, desired);
        const metaUpToDate = seen.value !== null && seen.value.generation === circuit.generation && seen.value.deleted === deleted;
        // A deletion whose tombstone has been retired (TOMBSTONE_RETENTION_SECONDS) has nothing left
        // to write: writing the tombstone again would only make state grow back.
        const retired = deleted && seen.value === null && circuit.keysRemovedAt !== null && current.size === 0;
        if (retired || (metaUpToDate && d.puts.length === 0 && d.deletes.length === 0)) {
          etcdRpcs++; // the release
          const frontendReleased = await releaseFrontend();
          return { ...committed, applied: true, unchanged: true, frontendReleased, etcdRpcs, dbQueries: db.count };
        }
        const steps = planSteps(current, desired, planNames(config.traefikRoot, circuit.worker, circuitId, circuit.protocol), MAX_TXN_OPS - RESERVED_OPS);
        await failpoint('propagate.beforeApply', { holder: inv.label, circuitId });
        const applied = await applyFenced({
          lock: acq.lock,
          metaKey: mKey,
          seen,
          steps,
          meta: { generation: circuit.generation, deleted, worker: circuit.worker },
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
  );
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
