// Removal of circuit-named keys that the regular write path cannot handle (propagate only manages
// a circuit known to the database, under its own worker's root): the keys of a circuit found under
// another worker's root than its own, and — with ORPHAN_POLICY=delete only — the keys named after
// a circuit the database does not know. Deleted by subtree in ONE transaction guarded by the
// circuit's lock (the lock every writer of that circuit takes), which also releases the lock; an
// unknown circuit is re-checked in the database under the lock first. And the keys and meta of a
// circuit whose row was purged (its id is retired, DESIGN I1) that etcd still or again holds (an
// old snapshot restored): circuitry's own deleted circuit, removed whatever ORPHAN_POLICY says.
import { circuitStates, type Queryable } from '../db/index.js';
import { deletePrefixesLocked, epochKey, lockPrefix, metaKey, withLock } from '../etcd/index.js';
import { FencedWriteError } from '../errors.js';
import { circuitKeyPrefixes } from '../traefik/names.js';
import type { Invocation } from '../runtime.js';

export interface OrphanCircuit {
  circuitId: string;
  /** The worker root the keys were found under. */
  root: string;
  keys: number;
  /** The database knows the circuit (its keys are under another worker's root): ours to delete. */
  known: boolean;
}

export interface OrphanRemoval {
  removed: number;
  txns: number;
  etcdRpcs: number;
  /** Why nothing was deleted, when nothing was. */
  skipped?: 'no-longer-orphan';
}

export async function removeOrphanCircuit(inv: Invocation, target: OrphanCircuit, db: Queryable): Promise<OrphanRemoval> {
  const { config } = inv.rt;
  const rpcTimeoutMs = config.etcd.timeoutMs;
  const session = await inv.session();
  const authority = target.root.slice(target.root.lastIndexOf('/worker_') + '/worker_'.length);
  return withLock(
    session,
    { prefix: lockPrefix(config.metaPrefix, target.circuitId), epochKey: epochKey(config.metaPrefix), waitMs: config.lockWaitMs, rpcTimeoutMs, holder: inv.label },
    async (acq) => {
      const rpcs = acq.rpcs;
      if (!target.known) {
        // A circuit created meanwhile (under this root) is no longer an orphan.
        const state = (await circuitStates(db, [target.circuitId])).get(target.circuitId);
        if (state !== undefined && state.worker === authority) return { removed: 0, txns: 0, etcdRpcs: rpcs + 1, skipped: 'no-longer-orphan' as const };
      }
      const r = await deletePrefixesLocked(acq.lock, circuitKeyPrefixes(target.root, target.circuitId), rpcTimeoutMs);
      if (!r.applied) throw new FencedWriteError('lock-lost', 0);
      return { removed: r.deleted, txns: 1, etcdRpcs: rpcs + 1 };
    },
  );
}

export interface RetiredCircuit {
  circuitId: string;
  /** The worker roots its keys were found under. */
  roots: string[];
  keys: number;
  /** Its meta (live or tombstone) is in etcd. */
  meta: boolean;
}

/**
 * Removes every key of a retired circuit under the roots given, and its meta, in ONE transaction
 * guarded by the circuit's lock. No re-check in the database is needed: a retired id is never
 * created again. The meta goes too: the circuit's deletion is older than any tombstone retention.
 */
export async function removeRetiredCircuit(inv: Invocation, target: RetiredCircuit): Promise<OrphanRemoval & { metaRemoved: boolean }> {
  const { config } = inv.rt;
  const rpcTimeoutMs = config.etcd.timeoutMs;
  const session = await inv.session();
  return withLock(
    session,
    { prefix: lockPrefix(config.metaPrefix, target.circuitId), epochKey: epochKey(config.metaPrefix), waitMs: config.lockWaitMs, rpcTimeoutMs, holder: inv.label },
    async (acq) => {
      // Ids are fixed-length uuids: the meta key as a prefix matches that key only.
      const prefixes = [...target.roots.flatMap((root) => circuitKeyPrefixes(root, target.circuitId)), metaKey(config.metaPrefix, target.circuitId)];
      const r = await deletePrefixesLocked(acq.lock, prefixes, rpcTimeoutMs);
      if (!r.applied) throw new FencedWriteError('lock-lost', 0);
      const metaRemoved = r.perPrefix[prefixes.length - 1]! > 0;
      return { removed: r.deleted - (metaRemoved ? 1 : 0), metaRemoved, txns: 1, etcdRpcs: acq.rpcs + 1 };
    },
  );
}
