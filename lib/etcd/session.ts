// A session is one etcd lease for the lifetime of one invocation (DESIGN §3). Lock keys are
// attached to it, so a crashed or frozen invocation loses its locks when the TTL runs out.
//
// The session renews its lease itself, every ttl/3 after the last acknowledged renewal was sent,
// each renewal a request of its own (a short keepalive stream) with a deadline of ttl/3; a
// renewal that fails or times out is sent again at once, and goes to another member (failover.ts
// skips the member that failed). etcd3's own keepalive keeps ONE stream on one member: when that
// member becomes unreachable without closing the connection (a partition, a frozen process) the
// stream stays silent until the lease is gone, although the other members could renew it.
//
// Loss is detected two ways: etcd says the lease is gone (a renewal answered with TTL 0), or our
// own clock says it may have expired (liveness.ts: monotonic, counted from when an acknowledged
// renewal was sent). A session found lost locally revokes its lease, so its lock keys vanish at
// once instead of blocking the queue until the TTL runs out on the server.
import type { Etcd3, Lease } from 'etcd3';
import { SessionLostError } from '../errors.js';
import { deadline, withDeadline } from './client.js';
import { LivenessClock } from './liveness.js';

const monotonicMs = (): number => performance.now();

/** After a failed renewal the next one goes out after this pause (to another member), doubling
 * while renewals keep failing at once (etcd down: connections refused) up to RETRY_PAUSE_MAX_MS. */
const RETRY_PAUSE_MS = 20;
const RETRY_PAUSE_MAX_MS = 250;

export class Session {
  /**
   * Whether our own clock may declare a session lost. Only the chaos harness turns it off (as if
   * the process's timers lied), so that etcd's fence alone stands between a paused writer and a
   * stale write.
   */
  static trustLocalClock = true;

  private lostReason: Error | undefined;
  private readonly clock: LivenessClock;
  private renewTimer: NodeJS.Timeout | undefined;
  private stopped = false;
  private failedInARow = 0;
  /** Renewals sent and failed (timed out, member unreachable), for tests and operators. */
  readonly renewals = { sent: 0, failed: 0 };
  /** Serialises lock attempts on one prefix within this session (the lock key is per lease). */
  readonly localQueues = new Map<string, Promise<unknown>>();

  private constructor(
    /** The client the session's lease lives on (its locks use it too). */
    readonly etcd: Etcd3,
    private readonly lease: Lease,
    readonly leaseId: string,
    readonly ttlSeconds: number,
    requestedAt: number,
    /** Attempt deadline of the revoke (undefined: the client's default). */
    private readonly timeoutMs: number | undefined,
  ) {
    this.clock = new LivenessClock(ttlSeconds * 1000, monotonicMs, requestedAt);
    lease.on('lost', (err) => {
      this.lostReason ??= err;
    });
    this.scheduleRenewal(Math.max(0, requestedAt + this.renewEveryMs - monotonicMs()));
  }

  /**
   * Grants the lease (one RPC); renewals then run in the background every ttl/3. `timeoutMs`:
   * the attempt deadline of the grant and the revoke (client.ts `deadline`; default: the client's).
   */
  static async open(etcd: Etcd3, ttlSeconds: number, timeoutMs?: number): Promise<Session> {
    const requestedAt = monotonicMs();
    const options = { autoKeepAlive: false };
    const lease = etcd.lease(ttlSeconds, timeoutMs !== undefined ? withDeadline(options, timeoutMs) : options);
    lease.on('lost', () => {}); // the Session reads it; never an unhandled 'error'-like crash
    const id = await lease.grant();
    return new Session(etcd, lease, id, ttlSeconds, requestedAt, timeoutMs);
  }

  private get renewEveryMs(): number {
    return (this.ttlSeconds * 1000) / 3;
  }

  private scheduleRenewal(delayMs: number): void {
    if (this.stopped || this.lostReason !== undefined) return;
    this.renewTimer = setTimeout(() => void this.renew(), delayMs);
    // A forgotten session must not keep a process alive; the invocation's work keeps it running.
    this.renewTimer.unref();
  }

  private async renew(): Promise<void> {
    if (this.stopped || this.lostReason !== undefined || this.lease.revoked()) return;
    const sentAt = monotonicMs();
    this.renewals.sent++;
    try {
      const res = await this.lease.keepaliveOnce(deadline(this.renewEveryMs, this.renewEveryMs));
      this.clock.renewed(sentAt, Number(res.TTL));
      this.failedInARow = 0;
      this.scheduleRenewal(Math.max(0, sentAt + this.renewEveryMs - monotonicMs()));
    } catch {
      // No answer in time or the member is unreachable (then it is skipped now), or the lease is
      // gone ('lost' was emitted and stops the renewals).
      this.renewals.failed++;
      this.scheduleRenewal(Math.min(RETRY_PAUSE_MAX_MS, RETRY_PAUSE_MS * 2 ** this.failedInARow++));
    }
  }

  /** The lease id in hex, as etcdctl prints it: the name of this session's lock keys. */
  get leaseHex(): string {
    return BigInt(this.leaseId).toString(16);
  }

  get lost(): boolean {
    if (this.lostReason !== undefined) return true;
    if (Session.trustLocalClock && this.clock.expired()) {
      this.lostReason = new SessionLostError(`no renewal acknowledged within ${this.ttlSeconds}s of being sent (process paused?)`);
      // Our locks must not outlive our belief in them: free them for the next holder now.
      void this.revokeQuietly();
      return true;
    }
    return false;
  }

  /** Milliseconds the lease is certainly still alive for (0 when lost). */
  get remainingMs(): number {
    return this.lost ? 0 : this.clock.remainingMs();
  }

  assertAlive(): void {
    if (this.lost) throw new SessionLostError(`etcd session lost: ${this.lostReason?.message ?? 'unknown'}`);
  }

  /**
   * Gives the session up: marks it lost and revokes the lease, so keys we could not delete
   * ourselves (a failed release, an acquire whose answer was lost) vanish now.
   */
  async abandon(reason: string): Promise<void> {
    this.lostReason ??= new SessionLostError(reason);
    await this.revokeQuietly();
  }

  /** Revokes the lease (its lock keys vanish with it). Safe to call twice. */
  async close(): Promise<void> {
    await this.revokeQuietly();
  }

  private async revokeQuietly(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.renewTimer);
    if (this.lease.revoked()) return;
    try {
      await this.lease.revoke(this.timeoutMs !== undefined ? deadline(this.timeoutMs) : undefined);
    } catch {
      // The lease dies by TTL anyway; a failed revoke must not fail the invocation.
      this.lease.release();
    }
  }
}
