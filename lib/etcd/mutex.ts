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
import { cmp, enc, kvKey, kvValue, op } from './keys.js';
import { deadline } from './client.js';
import { etcdCall, etcdFailure } from './failures.js';
import { decodeEpoch } from './epoch-codec.js';
import { waitForDelete, watchServed } from './waiting.js';
import { decodeLockValue, ownerRange, ownerRangeRequest, predecessorsRange, queueOf, queueRange, type LockKeyValue, type QueuedContender } from './lock-queue.js';

export { decodeLockValue, type LockKeyValue, type QueuedContender };
import { LockLostError } from '../errors.js';
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
    const r = await etcdCall(this.session.etcd.kv.range({ ...ownerRangeRequest(this.prefix) }, deadline(timeoutMs)));
    const owner = r.kvs[0];
    return owner !== undefined && kvKey(owner) === this.key && owner.create_revision === this.createRevision;
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
  /** With opts.queue: the contenders queued behind us when we took the lock, in queue order. */
  queue: QueuedContender[];
}

/** While we queued, a holder did our work for us and removed our key (opts.served). */
export interface Served {
  served: unknown;
  waitedMs: number;
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
  /** What we queue with, stored in our lock key for the holder ahead of us to read (`note`). */
  note?: string;
  /** Once we own the lock, also read up to this many contenders queued behind us (Acquired.queue). */
  queue?: number;
  /**
   * While we are queued, a holder may serve us: do our work, delete our key, and say so in `key`
   * in the same transaction. `find` reads a value of `key` and returns what it says about us, or
   * undefined when it says nothing. Served, we stop waiting without another RPC.
   */
  served?: { key: string; find(value: string): unknown };
  /** Called once if we have to queue behind another holder (before waiting). */
  onQueued?: () => void;
}

async function etcdTxn(session: Session, build: () => Parameters<Etcd3['kv']['txn']>[0], timeoutMs: number): Promise<ITxnResponse> {
  return etcdCall(session.etcd.kv.txn(build(), deadline(timeoutMs)));
}

const epochOf = (r: IResponseOp | undefined): number => {
  const kv = r?.response_range.kvs[0];
  return kv === undefined ? 0 : (decodeEpoch(kvValue(kv))?.epoch ?? 0);
};

/** Acquires the lock (see acquireOrServed); for callers that are never served. */
export async function acquire(session: Session, opts: Omit<AcquireOptions, 'served'>): Promise<Acquired> {
  return (await acquireOrServed(session, opts)) as Acquired;
}

/**
 * Takes the lock, or learns that a holder served us while we queued (opts.served).
 *
 * Uncontended: one transaction puts our key and reads the owner, the epoch and the caller's reads.
 * Queued: that same transaction also names our predecessor; we watch its delete (and poll it), then
 * one transaction checks that our key is still ours and reads the next predecessor — none: we own
 * the lock, and it also reads the epoch, the caller's reads and the queue behind us. A waiter costs
 * two RPCs (one when it is served), whatever the length of the queue.
 */
export async function acquireOrServed(session: Session, opts: AcquireOptions): Promise<Acquired | Served> {
  session.assertAlive();
  const etcd = session.etcd;
  const started = performance.now();
  const reads = opts.reads ?? [];
  const { prefix } = opts;
  const key = prefix + session.leaseHex;
  const value: LockKeyValue = { since: new Date().toISOString(), holder: opts.holder ?? '', ...(opts.note === undefined ? {} : { note: opts.note }) };
  // Put our key only if it is not there yet (an RPC retried after a lost response must not
  // re-queue us at the back); either way read our key, the owner, the epoch, the caller's reads,
  // and the two newest keys (ours and, when we just queued, our predecessor).
  let first: ITxnResponse;
  try {
    const always = [op.get(key), ownerRange(prefix), op.get(opts.epochKey), ...reads, predecessorsRange(prefix, undefined, 2)];
    first = await etcd.kv.txn(
      { compare: [cmp.createRevision(key, 0)], success: [op.put(key, JSON.stringify(value), session.leaseId), ...always], failure: always },
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
    return { lock, reads: rs.slice(3, 3 + reads.length), revision: first.header.revision, clusterId, waitedMs: 0, rpcs: 1, queue: [] };
  }

  // Queued: the lock object exists only to withdraw with until we own it.
  const queued = new Lock(prefix, key, mine.create_revision, { epoch: 0, revision: mine.create_revision }, session);
  const newest = rs[3 + reads.length]!.response_range.kvs;
  let rpcs = 1;
  let predecessor: { key: string; createRevision: string; from: bigint } | undefined;
  if (newest[0] !== undefined && kvKey(newest[0]) === key && newest[1] !== undefined) {
    predecessor = { key: kvKey(newest[1]), createRevision: newest[1].create_revision, from: BigInt(first.header.revision) + 1n };
  }
  // Our key was there before this call and others queued since: ask for the predecessor below it.
  let needPredecessor = predecessor === undefined;
  opts.onQueued?.();
  const served = opts.served === undefined ? undefined : watchServed(etcd, opts.served, BigInt(first.header.revision) + 1n);
  const asServed = (outcome: unknown): Served => ({ served: outcome, waitedMs: Math.round(performance.now() - started), rpcs });
  try {
    const until = started + opts.waitMs;
    for (;;) {
      session.assertAlive();
      if (needPredecessor) {
        const pred = await etcd.kv.range(predecessorsRange(prefix, mine.create_revision).request_range!, deadline(opts.rpcTimeoutMs));
        rpcs++;
        const kv = pred.kvs[0];
        predecessor = kv === undefined ? undefined : { key: kvKey(kv), createRevision: kv.create_revision, from: BigInt(pred.header.revision) + 1n };
        needPredecessor = false;
      }
      if (predecessor !== undefined) {
        await failpoint('mutex.beforeWatch', { predecessor: predecessor.key, key });
        const stop = new AbortController();
        const outcome = await Promise.race([
          waitForDelete(etcd, predecessor.key, predecessor.createRevision, predecessor.from, until, opts.rpcTimeoutMs, stop.signal).then(() => undefined),
          ...(served ? [served.found] : []),
        ]).finally(() => stop.abort());
        if (outcome !== undefined) return asServed((outcome as { outcome: unknown }).outcome);
        // A holder that served us deleted our predecessor and wrote its note in one transaction:
        // both events are on the stream; let the note's be read before paying for a check.
        if (served !== undefined) {
          const late = await Promise.race([served.found, new Promise<undefined>((r) => setImmediate(() => setImmediate(() => r(undefined))))]);
          if (late !== undefined) return asServed(late.outcome);
        }
      }
      // Our key may have expired while we waited, or a holder may have served us: check it, and
      // read the next predecessor; none means we own the lock, so also take the epoch, the caller's
      // reads and the queue behind us in the same transaction.
      const check = await etcd.kv.txn(
        {
          compare: [cmp.createRevision(key, mine.create_revision)],
          success: [predecessorsRange(prefix, mine.create_revision), op.get(opts.epochKey), ...reads, ...(opts.queue ? [queueRange(prefix, mine.create_revision, opts.queue)] : [])],
          failure: opts.served ? [op.get(opts.served.key)] : [],
        },
        deadline(opts.rpcTimeoutMs),
      );
      rpcs++;
      if (!check.succeeded) {
        const note = check.responses[0]?.response_range.kvs[0];
        const outcome = note === undefined || opts.served === undefined ? undefined : opts.served.find(kvValue(note));
        if (outcome !== undefined) return asServed(outcome);
        throw new LockLostError(`lock key ${key} expired while waiting for ${prefix}`);
      }
      const next = check.responses[0]!.response_range.kvs[0];
      if (next !== undefined) {
        predecessor = { key: kvKey(next), createRevision: next.create_revision, from: BigInt(check.header.revision) + 1n };
        continue;
      }
      const lock = new Lock(prefix, key, mine.create_revision, { epoch: epochOf(check.responses[1]), revision: mine.create_revision }, session);
      return {
        lock,
        reads: check.responses.slice(2, 2 + reads.length),
        revision: check.header.revision,
        clusterId: check.header.cluster_id,
        waitedMs: Math.round(performance.now() - started),
        rpcs,
        queue: opts.queue ? queueOf(check.responses[2 + reads.length]) : [],
      };
    }
  } catch (err) {
    // Withdraw from the queue so our successors are not stuck behind a key nobody will release.
    await queued.release(opts.rpcTimeoutMs).catch(() => {});
    throw etcdFailure(err);
  } finally {
    served?.cancel();
  }
}

/**
 * Runs fn while holding the lock. Within one session, calls on the same prefix are queued
 * locally first: the lock key is per lease, so two concurrent holders in one session would
 * otherwise share one key.
 */
export async function withLock<T>(session: Session, opts: AcquireOptions, fn: (acquired: Acquired) => Promise<T>, onServed?: (served: Served) => T | Promise<T>): Promise<T> {
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
    const got = await acquireOrServed(session, { ...opts, waitMs });
    if ('served' in got) {
      if (onServed === undefined) throw new LockLostError(`served without asking while waiting for ${prefix}`);
      return await onServed(got);
    }
    const acquired = got;
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
