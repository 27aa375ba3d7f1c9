// Removal of keys under a worker's Traefik root that no live circuit renders, for the cases the
// regular write path cannot handle (propagate only manages a circuit known to the database, under
// its own worker's root):
//   - keys named after a circuit id the database does not know, or found under another worker's
//     root than the circuit's: deleted by prefix in ONE transaction guarded by the circuit's lock
//     (the same lock every writer of that circuit takes), which also releases the lock;
//   - keys that carry no circuit name at all: each deleted in a transaction guarded on its
//     mod_revision being the one we read, so a key rewritten since is left alone.
import { lockPrefix } from '../circuits/layout.js';
import { withLock } from '../etcd/mutex.js';
import { FencedWriteError } from '../etcd/fenced-apply.js';
import { cmp, op } from '../etcd/keys.js';
import { deadline } from '../etcd/client.js';
import { circuitKeyPrefixes } from '../traefik/names.js';
import type { Invocation } from '../runtime.js';

export type OrphanTarget =
  | {
      kind: 'circuit';
      circuitId: string;
      /** The worker root the keys were found under: `<traefikRoot>/worker_<authority>`. */
      root: string;
      /** Re-checked under the lock (e.g. "the database still does not know this circuit"). */
      stillOrphan?: () => Promise<boolean>;
    }
  | { kind: 'foreign'; key: string; modRevision: string };

export interface OrphanRemoval {
  /** Keys deleted. */
  removed: number;
  /** Write transactions sent (a refused guarded delete counts too). */
  txns: number;
  etcdRpcs: number;
  /** Why nothing was deleted, when nothing was. */
  skipped?: 'no-longer-orphan' | 'modified-since-read';
}

export async function removeOrphanKeys(inv: Invocation, target: OrphanTarget): Promise<OrphanRemoval> {
  const { etcd, config } = inv.rt;
  const rpcTimeoutMs = config.etcd.timeoutMs;
  if (target.kind === 'foreign') {
    const r = await etcd.kv.txn(
      { compare: [cmp.modRevision(target.key, target.modRevision)], success: [op.del(target.key)], failure: [] },
      deadline(rpcTimeoutMs),
    );
    const removed = r.succeeded ? Number(r.responses[0]?.response_delete_range.deleted ?? 0) : 0;
    return { removed, txns: 1, etcdRpcs: 1, ...(r.succeeded ? {} : { skipped: 'modified-since-read' as const }) };
  }

  const session = await inv.session();
  const prefixes = circuitKeyPrefixes(target.root, target.circuitId);
  let rpcs = 0;
  try {
    return await withLock(
      etcd,
      session,
      lockPrefix(config.metaPrefix, target.circuitId),
      { waitMs: config.lockWaitMs, rpcTimeoutMs },
      async (acq) => {
        rpcs += acq.rpcs;
        if (target.stillOrphan !== undefined && !(await target.stillOrphan())) {
          rpcs++; // the release
          return { removed: 0, txns: 0, etcdRpcs: rpcs, skipped: 'no-longer-orphan' as const };
        }
        session.assertAlive();
        const r = await etcd.kv.txn(
          {
            compare: [cmp.createRevision(acq.lock.key, acq.lock.createRevision)],
            success: [...prefixes.map(op.delPrefix), op.del(acq.lock.key)],
            failure: [],
          },
          deadline(rpcTimeoutMs),
        );
        rpcs++;
        if (!r.succeeded) throw new FencedWriteError('lock-lost', 0);
        acq.lock.released = true;
        const removed = r.responses
          .slice(0, prefixes.length)
          .reduce((n, x) => n + Number(x.response_delete_range?.deleted ?? 0), 0);
        return { removed, txns: 1, etcdRpcs: rpcs };
      },
    );
  } catch (err) {
    throw Object.assign(err as Error, { etcdRpcs: rpcs });
  }
}
