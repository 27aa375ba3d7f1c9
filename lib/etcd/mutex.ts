// A FIFO mutex on an etcd prefix (DESIGN §3), after etcd's own client/v3/concurrency.Mutex:
// every contender puts <prefix><lease> with its session's lease; the owner is the key with the
// lowest create revision; a waiter watches only its predecessor's delete (no thundering herd),
// and after waiting re-checks that its own key still exists (its lease may have expired).
//
// The lock's create revision is the fencing token: writers compare it inside the same etcd
// transaction as their write (see fenced-apply.ts). Reads that must describe the state at the
// moment of ownership ride along in the acquiring transaction ("reads"), so an uncontended
// acquire costs exactly one RPC.
import type { Etcd3, IRequestOp, IResponseOp } from 'etcd3';
import { cmp, enc, kvKey, op, prefixEnd } from './keys.js';
import { deadline } from './client.js';
import type { Session } from './session.js';

export class LockTimeoutError extends Error {
  override name = 'LockTimeoutError';
}

/** Our lock key vanished while we waited or worked: the lease expired (pause, freeze, partition). */
export class LockLostError extends Error {
  override name = 'LockLostError';
}

export interface Lock {
  readonly prefix: string;
  readonly key: string;
  /** The fencing token: the create revision of our lock key. */
  readonly createRevision: string;
  readonly session: Session;
  /** Set when a transaction deleted the lock key together with its write (apply-and-release). */
  released: boolean;
}

export interface Acquired {
  lock: Lock;
  /** Responses to opts.reads, taken at a revision at which we already owned the lock. */
  reads: IResponseOp[];
  /** The etcd revision those reads describe. */
  revision: string;
  waitedMs: number;
  /** Number of etcd RPCs the acquisition cost (1 when uncontended). */
  rpcs: number;
}

export interface AcquireOptions {
  /** Give up (and withdraw from the queue) after waiting this long. */
  waitMs: number;
  /** Per-RPC deadline. */
  rpcTimeoutMs: number;
  reads?: IRequestOp[];
}

const ownerRange = (prefix: string): IRequestOp => ({
  request_range: {
    key: enc(prefix),
    range_end: prefixEnd(enc(prefix)),
    sort_order: 'Ascend',
    sort_target: 'Create',
    limit: 1,
    keys_only: true,
  },
});

export async function acquire(etcd: Etcd3, session: Session, prefix: string, opts: AcquireOptions): Promise<Acquired> {
  session.assertAlive();
  const started = Date.now();
  const reads = opts.reads ?? [];
  const key = prefix + session.leaseHex;
  // Put our key only if it is not there yet (an RPC retried after a lost response must not
  // re-queue us at the back); either way read our key, the owner and the caller's reads.
  const first = await etcd.kv.txn(
    {
      compare: [cmp.createRevision(key, 0)],
      success: [op.put(key, '', session.leaseId), op.get(key), ownerRange(prefix), ...reads],
      failure: [op.get(key), ownerRange(prefix), ...reads],
    },
    deadline(opts.rpcTimeoutMs),
  );
  const rs = first.succeeded ? first.responses.slice(1) : first.responses;
  const mine = rs[0]!.response_range.kvs[0];
  if (mine === undefined) throw new LockLostError(`lock key ${key} vanished while being created`);
  const lock: Lock = { prefix, key, createRevision: mine.create_revision, session, released: false };
  const owner = rs[1]!.response_range.kvs[0];
  if (owner !== undefined && kvKey(owner) === key) {
    return { lock, reads: rs.slice(2), revision: first.header.revision, waitedMs: 0, rpcs: 1 };
  }

  let rpcs = 1;
  try {
    const until = started + opts.waitMs;
    for (;;) {
      session.assertAlive();
      const pred = await etcd.kv.range(
        {
          key: enc(prefix),
          range_end: prefixEnd(enc(prefix)),
          max_create_revision: BigInt(lock.createRevision) - 1n + '',
          sort_order: 'Descend',
          sort_target: 'Create',
          limit: 1,
          keys_only: true,
        },
        deadline(opts.rpcTimeoutMs),
      );
      rpcs++;
      const predecessor = pred.kvs[0];
      if (predecessor === undefined) break;
      await waitForDelete(etcd, kvKey(predecessor), BigInt(pred.header.revision) + 1n, until);
    }
    // We are first in line. Our key may still have expired while we waited: re-check it and
    // take the caller's reads in the same transaction, now that we own the lock.
    const recheck = await etcd.kv.txn(
      { compare: [cmp.createRevision(key, lock.createRevision)], success: reads, failure: [] },
      deadline(opts.rpcTimeoutMs),
    );
    rpcs++;
    if (!recheck.succeeded) throw new LockLostError(`lock key ${key} expired while waiting for ${prefix}`);
    return { lock, reads: recheck.responses, revision: recheck.header.revision, waitedMs: Date.now() - started, rpcs };
  } catch (err) {
    // Withdraw from the queue so our successors are not stuck behind a key nobody will release.
    await release(etcd, lock, opts.rpcTimeoutMs).catch(() => {});
    throw err;
  }
}

function waitForDelete(etcd: Etcd3, key: string, fromRevision: bigint, until: number): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    let settled = false;
    const finish = (err?: Error) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      void watcherP.then((w) => w.cancel()).catch(() => {});
      if (err) reject(err);
      else resolve();
    };
    const timer = setTimeout(
      () => finish(new LockTimeoutError(`lock not acquired within the wait limit (queued behind ${key})`)),
      Math.max(0, until - Date.now()),
    );
    const watcherP = etcd
      .watch()
      .key(key)
      .startRevision(fromRevision.toString())
      .only('delete')
      .create();
    watcherP.then(
      (w) => {
        w.on('delete', () => finish());
        w.on('error', (e) => finish(e));
      },
      (e: Error) => finish(e),
    );
  });
}

/** Deletes our lock key. Idempotent; a no-op when the apply transaction already released it. */
export async function release(etcd: Etcd3, lock: Lock, rpcTimeoutMs: number): Promise<void> {
  if (lock.released) return;
  await etcd.kv.deleteRange({ key: enc(lock.key) }, deadline(rpcTimeoutMs));
  lock.released = true;
}

/**
 * Runs fn while holding the lock on prefix. Within one session, calls on the same prefix are
 * queued locally first: the lock key is per lease, so two concurrent holders in one session
 * would otherwise share one key.
 */
export async function withLock<T>(
  etcd: Etcd3,
  session: Session,
  prefix: string,
  opts: AcquireOptions,
  fn: (acquired: Acquired) => Promise<T>,
): Promise<T> {
  const previous = session.localQueues.get(prefix) ?? Promise.resolve();
  let done!: () => void;
  const turn = new Promise<void>((r) => (done = r));
  const tail = previous.then(() => turn);
  session.localQueues.set(prefix, tail);
  try {
    const queuedAt = Date.now();
    await previous;
    // Time spent queued locally counts against the same wait bound.
    const waitMs = Math.max(0, opts.waitMs - (Date.now() - queuedAt));
    const acquired = await acquire(etcd, session, prefix, { ...opts, waitMs });
    try {
      return await fn(acquired);
    } finally {
      await release(etcd, acquired.lock, opts.rpcTimeoutMs).catch(() => {});
    }
  } finally {
    done();
    if (session.localQueues.get(prefix) === tail) session.localQueues.delete(prefix);
  }
}
