// A session is one etcd lease for the lifetime of one invocation (DESIGN §3). Lock keys are
// attached to it, so a crashed or frozen invocation loses its locks when the TTL runs out.
//
// Loss is detected two ways: the client reports it (keepalive refused), or our own clock says the
// lease may have expired (liveness.ts: monotonic, counted from when a keepalive was sent). A new
// etcd leader renews every lease with a full TTL, so a leader change only makes the real expiry
// later than ours. A session found lost locally revokes its lease, so its lock keys vanish at
// once instead of blocking the queue until the TTL runs out on the server.
import type { Etcd3, Lease } from 'etcd3';
import type { ILeaseKeepAliveResponse } from 'etcd3/lib/rpc.js';
import { SessionLostError } from '../errors.js';
import { LivenessClock } from './liveness.js';

const monotonicMs = (): number => performance.now();

export class Session {
  /**
   * Whether our own clock may declare a session lost. Only the chaos harness turns it off (as if
   * the process's timers lied), so that etcd's fence alone stands between a paused writer and a
   * stale write.
   */
  static trustLocalClock = true;

  private lostReason: Error | undefined;
  private readonly clock: LivenessClock;
  /** Serialises lock attempts on one prefix within this session (the lock key is per lease). */
  readonly localQueues = new Map<string, Promise<unknown>>();

  private constructor(
    /** The client the session's lease lives on (its locks use it too). */
    readonly etcd: Etcd3,
    private readonly lease: Lease,
    readonly leaseId: string,
    readonly ttlSeconds: number,
    requestedAt: number,
  ) {
    this.clock = new LivenessClock(ttlSeconds * 1000, monotonicMs, requestedAt);
    lease.on('lost', (err) => {
      this.lostReason ??= err;
    });
    lease.on('keepaliveEstablished', () => this.clock.restarted());
    lease.on('keepaliveFired', () => this.clock.fired());
    lease.on('keepaliveSucceeded', (res: ILeaseKeepAliveResponse) => this.clock.acknowledged(Number(res.TTL)));
  }

  /** Grants the lease (one RPC); keepalives then run in the background every ttl/3. */
  static async open(etcd: Etcd3, ttlSeconds: number): Promise<Session> {
    const requestedAt = monotonicMs();
    const lease = etcd.lease(ttlSeconds, { autoKeepAlive: true });
    lease.on('lost', () => {}); // the Session reads it; never an unhandled 'error'-like crash
    const id = await lease.grant();
    return new Session(etcd, lease, id, ttlSeconds, requestedAt);
  }

  /** The lease id in hex, as etcdctl prints it: the name of this session's lock keys. */
  get leaseHex(): string {
    return BigInt(this.leaseId).toString(16);
  }

  get lost(): boolean {
    if (this.lostReason !== undefined) return true;
    if (Session.trustLocalClock && this.clock.expired()) {
      this.lostReason = new SessionLostError(`no keepalive acknowledged within ${this.ttlSeconds}s of being sent (process paused?)`);
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
    if (this.lease.revoked()) return;
    try {
      await this.lease.revoke();
    } catch {
      // The lease dies by TTL anyway; a failed revoke must not fail the invocation.
      this.lease.release();
    }
  }
}
