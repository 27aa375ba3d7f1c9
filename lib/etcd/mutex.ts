// A FIFO mutex on an etcd prefix (DESIGN §3), after etcd's own client/v3/concurrency.Mutex:
// every contender puts <prefix><lease> with its session's lease; the owner is the key with the
// lowest create revision; a waiter watches only its predecessor's delete (no thundering herd),
// and after waiting re-checks that its own key still exists (its lease may have expired).
//
// The lock hands out its own guard (Lock.txn: a transaction that applies only while we own the
// lock, as Mutex.IsOwner() does in Go) and its release (in that transaction, or on its own).
// Its fence — the fencing epoch of this etcd history and the lock key's create revision — is
// what database changes under the lock are compared with (DESIGN I3). Reads that must describe
// the state at the moment of ownership ride along in the acquiring transaction ("reads"), so an
// uncontended acquire costs exactly one RPC.
import type { Etcd3, ICompare, IRequestOp, IResponseOp, ITxnResponse } from 'etcd3';
import { cmp, enc, kvKey, kvValue, op, prefixEnd } from './keys.js';
import { deadline } from './client.js';
import { etcdFailure, isCompacted } from './failures.js';
import { decodeEpoch } from './epoch-codec.js';
import { LockLostError, LockTimeoutError } from '../errors.js';
import { failpoint } from '../failpoints.js';
import type { Session } from './session.js';

/** What a holder's database statements are compared with: (epoch, revision) only ever grows. */
export interface Fence {
  /** The fencing epoch of the etcd history the lock was taken in (0 before the first epoch). */
  epoch: number;
  /** The lock key's create revision. */
  revision: string;
}

export class Lock {
  private isReleased = false;
  /** Our lock key's version as our own transactions left it (1: as the acquire put it). */
  private keyVersion = 1;

  constructor(
    readonly prefix: string,
    readonly key: string,
    /** The lock key's create revision: unique to this hold, the etcd half of the fence. */
    readonly createRevision: string,
    readonly fence: Fence,
    readonly session: Session,
  ) {}

  get released(): boolean {
    return this.isReleased;
  }

  /** Holds exactly while our key exists with our create revision. */
  ownerGuard(): ICompare {
    return cmp.createRevision(this.key, this.createRevision);
  }

  /**
   * A transaction that applies only while we own the lock (plus the caller's compares), and with
   * `release` also deletes our lock key in the same transaction. On failure the first response is
   * our lock key (use `heldAfter`), followed by the caller's failure reads.
   *
   * With `mark`, the transaction also advances our lock key's version (its value and lease stay)
   * and applies only at the version we last saw: a retry of a transaction that did apply (its
   * answer was lost, etcd3 retried it on another member) is refused instead of applied twice,
   * and `applied` says that it is ours, already applied.
   */
  async txn(
    req: { compare?: ICompare[]; success: IRequestOp[]; failure?: IRequestOp[]; release?: boolean; mark?: boolean },
    timeoutMs: number,
  ): Promise<ITxnResponse & { applied: boolean }> {
    this.session.assertAlive();
    const version = this.keyVersion;
    const mark = req.mark === true;
    const res = await etcdTxn(this.session, () => ({
      compare: [this.ownerGuard(), ...(mark ? [cmp.version(this.key, version)] : []), ...(req.compare ?? [])],
      success: [...req.success, ...(mark ? [op.touch(this.key)] : []), ...(req.release === true ? [op.del(this.key)] : [])],
      failure: [op.get(this.key), ...(req.failure ?? [])],
    }), timeoutMs);
    const mine = res.succeeded ? undefined : res.responses[0]?.response_range.kvs[0];
    const appliedEarlier = mark && mine !== undefined && mine.create_revision === this.createRevision && Number(mine.version) === version + 1;
    if (mark && (res.succeeded || appliedEarlier)) this.keyVersion = version + 1;
    if (res.succeeded && req.release === true) this.isReleased = true;
    return Object.assign(res, { applied: res.succeeded || appliedEarlier });
  }

  /** Whether a failed `txn` found our lock key still ours (the caller's compare failed instead). */
  heldAfter(failed: ITxnResponse): boolean {
    const kv = failed.responses[0]?.response_range.kvs[0];
    return kv !== undefined && kv.create_revision === this.createRevision;
  }

  /** Marks the lock released by an earlier `txn` whose answer was lost (a retried apply found it applied). */
  confirmReleased(): void {
    this.isReleased = true;
  }

  /** Whether we own the lock now (one RPC): our key exists and has the lowest create revision. */
  async isOwner(timeoutMs: number): Promise<boolean> {
    try {
      const r = await this.session.etcd.kv.range({ ...ownerRangeRequest(this.prefix) }, deadline(timeoutMs));
      const owner = r.kvs[0];
      return owner !== undefined && kvKey(owner) === this.key && owner.create_revision === this.createRevision;
    } catch (err) {
      throw etcdFailure(err);
    }
  }

  /**
   * Deletes our lock key. Idempotent; a no-op when a transaction already released it. When the
   * delete fails, the session is abandoned (its lease revoked) so the key cannot block the queue
   * for the rest of the invocation.
   */
  async release(timeoutMs: number): Promise<void> {
    if (this.isReleased) return;
    try {
      await this.session.etcd.kv.deleteRange({ key: enc(this.key) }, deadline(timeoutMs));
      this.isReleased = true;
    } catch (err) {
      await this.session.abandon(`the lock key ${this.key} could not be released: ${(err as Error).message}`);
      this.isReleased = true; // the revoke (or the TTL) removes it
      throw etcdFailure(err);
    }
  }
}

export interface Acquired {
  lock: Lock;
  /** Responses to opts.reads, taken at a revision at which we already owned the lock. */
  reads: IResponseOp[];
  /** The etcd revision those reads describe. */
  revision: string;
  /** The etcd cluster that answered (part of the history's identity). */
  clusterId: string;
  waitedMs: number;
  /** Number of etcd RPCs the acquisition cost (1 when uncontended). */
  rpcs: number;
}

export interface AcquireOptions {
  /** The lock's key prefix (layout.lockPrefix). */
  prefix: string;
  /** The fencing epoch key (layout.epochKey): read with the lock, it makes the fence. */
  epochKey: string;
  /** Give up (and withdraw from the queue) after waiting this long. */
  waitMs: number;
  /** Per-RPC deadline. */
  rpcTimeoutMs: number;
  reads?: IRequestOp[];
  /** Who holds the lock, stored in the lock key for operators (`circuitry locks`). */
  holder?: string;
}

/** The value of a lock key: when the contender queued and who it is. */
export interface LockKeyValue {
  since: string;
  holder: string;
}

export function decodeLockValue(s: string): LockKeyValue | null {
  try {
    const v = JSON.parse(s) as Partial<LockKeyValue>;
    return typeof v.since === 'string' ? { since: v.since, holder: typeof v.holder === 'string' ? v.holder : '' } : null;
  } catch {
    return null;
  }
}

const ownerRangeRequest = (prefix: string) => ({
  key: enc(prefix),
  range_end: prefixEnd(enc(prefix)),
  sort_order: 'Ascend' as const,
  sort_target: 'Create' as const,
  limit: 1,
  keys_only: true,
});
const ownerRange = (prefix: string): IRequestOp => ({ request_range: ownerRangeRequest(prefix) });

async function etcdTxn(session: Session, build: () => Parameters<Etcd3['kv']['txn']>[0], timeoutMs: number): Promise<ITxnResponse> {
  try {
    return await session.etcd.kv.txn(build(), deadline(timeoutMs));
  } catch (err) {
    throw etcdFailure(err);
  }
}

const epochOf = (r: IResponseOp | undefined): number => {
  const kv = r?.response_range.kvs[0];
  return kv === undefined ? 0 : (decodeEpoch(kvValue(kv))?.epoch ?? 0);
};

export async function acquire(session: Session, opts: AcquireOptions): Promise<Acquired> {
  session.assertAlive();
  const etcd = session.etcd;
  const started = performance.now();
  const reads = opts.reads ?? [];
  const { prefix } = opts;
  const key = prefix + session.leaseHex;
  // Put our key only if it is not there yet (an RPC retried after a lost response must not
  // re-queue us at the back); either way read our key, the owner, the epoch and the caller's reads.
  let first: ITxnResponse;
  try {
    first = await etcd.kv.txn(
      {
        compare: [cmp.createRevision(key, 0)],
        success: [op.put(key, JSON.stringify({ since: new Date().toISOString(), holder: opts.holder ?? '' } satisfies LockKeyValue), session.leaseId), op.get(key), ownerRange(prefix), op.get(opts.epochKey), ...reads],
        failure: [op.get(key), ownerRange(prefix), op.get(opts.epochKey), ...reads],
      },
      deadline(opts.rpcTimeoutMs),
    );
  } catch (err) {
    // The put may have committed although its answer was lost: withdraw our key (idempotent) so it
    // cannot block the queue for the rest of the invocation; failing that, give the lease up.
    await etcd.kv.deleteRange({ key: enc(key) }, deadline(opts.rpcTimeoutMs)).catch(() =>
      session.abandon(`the lock key ${key} could not be withdrawn after a failed acquire`),
    );
    throw etcdFailure(err);
  }
  const rs = first.succeeded ? first.responses.slice(1) : first.responses;
  const mine = rs[0]!.response_range.kvs[0];
  if (mine === undefined) throw new LockLostError(`lock key ${key} vanished while being created`);
  const owner = rs[1]!.response_range.kvs[0];
  const clusterId = first.header.cluster_id;
  if (owner !== undefined && kvKey(owner) === key) {
    const lock = new Lock(prefix, key, mine.create_revision, { epoch: epochOf(rs[2]), revision: mine.create_revision }, session);
    return { lock, reads: rs.slice(3), revision: first.header.revision, clusterId, waitedMs: 0, rpcs: 1 };
  }

  // Queued: the lock object exists only to withdraw with until we own it.
  const queued = new Lock(prefix, key, mine.create_revision, { epoch: 0, revision: mine.create_revision }, session);
  let rpcs = 1;
  try {
    const until = started + opts.waitMs;
    for (;;) {
      session.assertAlive();
      const pred = await etcd.kv.range(
        {
          key: enc(prefix),
          range_end: prefixEnd(enc(prefix)),
          max_create_revision: BigInt(mine.create_revision) - 1n + '',
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
      await failpoint('mutex.beforeWatch', { predecessor: kvKey(predecessor), key });
      await waitForDelete(etcd, kvKey(predecessor), predecessor.create_revision, BigInt(pred.header.revision) + 1n, until, opts.rpcTimeoutMs);
    }
    // We are first in line. Our key may still have expired while we waited: re-check it and take
    // the epoch and the caller's reads in the same transaction, now that we own the lock.
    const recheck = await etcd.kv.txn(
      { compare: [cmp.createRevision(key, mine.create_revision)], success: [op.get(opts.epochKey), ...reads], failure: [] },
      deadline(opts.rpcTimeoutMs),
    );
    rpcs++;
    if (!recheck.succeeded) throw new LockLostError(`lock key ${key} expired while waiting for ${prefix}`);
    const lock = new Lock(prefix, key, mine.create_revision, { epoch: epochOf(recheck.responses[0]), revision: mine.create_revision }, session);
    return {
      lock,
      reads: recheck.responses.slice(1),
      revision: recheck.header.revision,
      clusterId: recheck.header.cluster_id,
      waitedMs: Math.round(performance.now() - started),
      rpcs,
    };
  } catch (err) {
    // Withdraw from the queue so our successors are not stuck behind a key nobody will release.
    await queued.release(opts.rpcTimeoutMs).catch(() => {});
    throw etcdFailure(err);
  }
}

/**
 * How often a waiter also reads whether its predecessor is gone. Its watch alone is not enough:
 * all watches of a client share one stream on one member, and when that member becomes
 * unreachable without closing the connection (a partition, a frozen process) the stream stays
 * silent until gRPC's keepalive declares the connection dead (client.ts: ~7.5 s), longer than a
 * waiter waits. The read goes to any member that answers.
 */
export const WAITER_POLL_MS = 1000;

function waitForDelete(etcd: Etcd3, key: string, createRevision: string, fromRevision: bigint, until: number, rpcTimeoutMs: number): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    let settled = false;
    let pollTimer: NodeJS.Timeout | undefined;
    const finish = (err?: Error) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      clearTimeout(pollTimer);
      void watcherP.then((w) => w.cancel()).catch(() => {});
      if (err) reject(err);
      else resolve();
    };
    const timer = setTimeout(
      () => finish(new LockTimeoutError(`lock not acquired within the wait limit (queued behind ${key})`)),
      Math.max(0, until - performance.now()),
    );
    const poll = (): void => {
      pollTimer = setTimeout(() => {
        // Gone, or gone and put again by its session (a later create revision: not ahead of us).
        etcd.kv.range({ key: enc(key), keys_only: true }, deadline(rpcTimeoutMs)).then(
          (r) => (r.kvs[0]?.create_revision !== createRevision ? finish() : settled || poll()),
          () => settled || poll(),
        );
      }, WAITER_POLL_MS);
    };
    poll();
    // A watch from a revision that compaction removed is cancelled by etcd: the predecessor may
    // be gone by now, so settle and let the caller re-check instead of failing.
    const onError = (e: Error) => (isCompacted(e) ? finish() : finish(e));
    const watcherP = etcd.watch().key(key).startRevision(fromRevision.toString()).only('delete').create();
    watcherP.then(
      (w) => {
        w.on('delete', () => finish());
        w.on('error', onError);
      },
      onError,
    );
  });
}

/**
 * Runs fn while holding the lock. Within one session, calls on the same prefix are queued
 * locally first: the lock key is per lease, so two concurrent holders in one session would
 * otherwise share one key.
 */
export async function withLock<T>(session: Session, opts: AcquireOptions, fn: (acquired: Acquired) => Promise<T>): Promise<T> {
  const { prefix } = opts;
  const previous = session.localQueues.get(prefix) ?? Promise.resolve();
  let done!: () => void;
  const turn = new Promise<void>((r) => (done = r));
  const tail = previous.then(() => turn);
  session.localQueues.set(prefix, tail);
  try {
    const queuedAt = performance.now();
    await previous;
    // Time spent queued locally counts against the same wait bound.
    const waitMs = Math.max(0, opts.waitMs - (performance.now() - queuedAt));
    const acquired = await acquire(session, { ...opts, waitMs });
    try {
      return await fn(acquired);
    } finally {
      await acquired.lock.release(opts.rpcTimeoutMs).catch(() => {});
    }
  } finally {
    done();
    if (session.localQueues.get(prefix) === tail) session.localQueues.delete(prefix);
  }
}
