// The write path every writer shares (DESIGN §3):
//   lock (+ read meta and current keys, one txn) -> fresh database read or change under the
//   lock -> render -> plan -> fenced apply that also releases the lock (one txn).
// Uncontended, with the circuit's worker known, that is 2 etcd RPCs and 1 database round trip
// (plus the invocation's lease grant).
import type { IResponseOp } from 'etcd3';
import { lockPrefix, metaKey, planNames } from './layout.js';
import { readCircuit, type CircuitView, type Fence, type Queryable } from '../db/circuits.js';
import { withLock } from '../etcd/mutex.js';
import { SessionLostError } from '../etcd/session.js';
import { applyFenced, decodeMeta, FencedWriteError, type SeenMeta } from '../etcd/fenced-apply.js';
import { kvKey, kvValue, op } from '../etcd/keys.js';
import { deadline } from '../etcd/client.js';
import { render } from '../traefik/render.js';
import { diffKeys } from '../traefik/diff.js';
import { planSteps } from '../traefik/plan.js';
import { MAX_TXN_OPS, RESERVED_OPS } from '../etcd/fenced-apply.js';
import { circuitKeyPrefixes, workerRoot } from '../traefik/names.js';
import type { Invocation } from '../runtime.js';
import { DependencyError, classifyFailure } from './errors.js';

export interface PropagateOptions {
  /** The circuit's worker if the caller knows it (it never changes): saves one etcd RPC. */
  workerHint?: string;
  /**
   * The database change to make under the lock (update-routes, unload, health results). It
   * must return the circuit as committed, and apply only if `fence` (our lock's create revision)
   * is not older than the last locked change's (DESIGN I3). Without it, the circuit is read fresh.
   */
  change?: (db: Queryable, fence: Fence) => Promise<CircuitView | null>;
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

function keysFrom(responses: IResponseOp[]): Map<string, string> {
  const m = new Map<string, string>();
  for (const r of responses) for (const kv of r.response_range.kvs) m.set(kvKey(kv), kvValue(kv));
  return m;
}

export async function propagate(inv: Invocation, circuitId: string, opts: PropagateOptions = {}): Promise<PropagateResult> {
  const { config, etcd } = inv.rt;
  const db = countingDb(inv.rt.db as unknown as Queryable);
  const rpcTimeoutMs = config.etcd.timeoutMs;
  const mKey = metaKey(config.metaPrefix, circuitId);
  const knownWorker = opts.workerHint ?? workerCache.get(circuitId);
  const prefixesOf = (worker: string) => circuitKeyPrefixes(workerRoot(config.traefikRoot, worker), circuitId);

  let session;
  try {
    session = await inv.session();
  } catch (err) {
    throw classifyFailure(err, 'etcd');
  }
  let etcdRpcs = 0;
  try {
    return await withLock(
      etcd,
      session,
      lockPrefix(config.metaPrefix, circuitId),
      {
        waitMs: config.lockWaitMs,
        rpcTimeoutMs,
        reads: [op.get(mKey), ...(knownWorker ? prefixesOf(knownWorker).map((p) => op.getPrefix(p)) : [])],
      },
      async (acq) => {
        etcdRpcs += acq.rpcs;
        const metaKv = acq.reads[0]!.response_range.kvs[0];
        const seen: SeenMeta = {
          modRevision: metaKv?.mod_revision ?? '0',
          value: metaKv ? decodeMeta(kvValue(metaKv)) : null,
        };
        // I5: whatever we write is computed from this read, made after the lock was acquired.
        let view: CircuitView | null;
        try {
          view = opts.change ? await opts.change(db, acq.lock.createRevision) : await readCircuit(db, circuitId);
        } catch (err) {
          throw classifyFailure(err, 'database');
        }
        const base = { circuitId, txns: 0, lockWaitMs: acq.waitedMs };
        if (view === null) {
          return { ...base, found: false, generation: null, deleted: false, applied: false, unchanged: true, etcdRpcs, dbQueries: db.count };
        }
        const { circuit, worker } = view;
        rememberWorker(circuitId, circuit.worker);
        const deleted = circuit.deletedAt !== null;
        const committed = { ...base, found: true, generation: circuit.generation, deleted };
        try {
          let current: Map<string, string>;
          if (knownWorker === circuit.worker) {
            current = keysFrom(acq.reads.slice(1));
          } else {
            // First sight of this circuit in this process: read its keys now (we hold the lock).
            const r = await etcd.kv.txn(
              { compare: [], success: prefixesOf(circuit.worker).map((p) => op.getPrefix(p)), failure: [] },
              deadline(rpcTimeoutMs),
            );
            etcdRpcs++;
            current = keysFrom(r.responses);
          }
          const desired = deleted
            ? new Map<string, string>()
            : render(circuit, worker, { traefikRoot: config.traefikRoot, extraMiddlewares: config.traefikExtraMiddlewares });
          const metaUpToDate =
            seen.value !== null && seen.value.generation === circuit.generation && seen.value.deleted === deleted;
          const d = diffKeys(current, desired);
          if (metaUpToDate && d.puts.length === 0 && d.deletes.length === 0) {
            etcdRpcs++; // the release
            return { ...committed, applied: true, unchanged: true, etcdRpcs, dbQueries: db.count };
          }
          const steps = planSteps(
            current,
            desired,
            planNames(config.traefikRoot, circuit.worker, circuitId, circuit.protocol),
            MAX_TXN_OPS - RESERVED_OPS,
          );
          const applied = await applyFenced(etcd, {
            lock: acq.lock,
            metaKey: mKey,
            seen,
            steps,
            meta: { generation: circuit.generation, deleted, worker: circuit.worker },
            release: true,
            rpcTimeoutMs,
          });
          etcdRpcs += applied.txns;
          return {
            ...committed,
            applied: true,
            unchanged: false,
            etcdRevision: applied.revision,
            txns: applied.txns,
            etcdRpcs,
            dbQueries: db.count,
          };
        } catch (err) {
          // The database has committed; etcd will be converged by the next sweep. Report it.
          // (SessionLostError: applyFenced's own liveness check refused the write after a pause.)
          if (err instanceof FencedWriteError || err instanceof SessionLostError || err instanceof DependencyError || isTransportError(err)) {
            const reason = err instanceof FencedWriteError || err instanceof SessionLostError ? err.message : `etcd unavailable: ${(err as Error).message}`;
            return { ...committed, applied: false, unchanged: false, notAppliedReason: reason, etcdRpcs, dbQueries: db.count };
          }
          throw err;
        }
      },
    );
  } catch (err) {
    throw classifyFailure(err, 'etcd');
  }
}

function isTransportError(err: unknown): boolean {
  const c = classifyFailure(err, 'etcd');
  return c instanceof DependencyError || c instanceof SessionLostError;
}
