// A session is one etcd lease for the lifetime of one invocation (DESIGN §3). Lock keys are
// attached to it, so a crashed or frozen invocation loses its locks when the TTL runs out.
// Loss is detected two ways: the client reports it (keepalive refused), or our own clock says
// the TTL has passed since the last acknowledged keepalive (a frozen Lambda never hears back).
import type { Etcd3, Lease } from 'etcd3';

export class SessionLostError extends Error {
  override name = 'SessionLostError';
}

export class Session {
  private lostReason: Error | undefined;
  private lastAliveAt: number;
  /** Serialises lock attempts on one prefix within this session (the lock key is per lease). */
  readonly localQueues = new Map<string, Promise<unknown>>();

  private constructor(
    private readonly lease: Lease,
    readonly leaseId: string,
    readonly ttlSeconds: number,
    grantedAt: number,
  ) {
    this.lastAliveAt = grantedAt;
    lease.on('lost', (err) => {
      this.lostReason ??= err;
    });
    lease.on('keepaliveSucceeded', () => {
      this.lastAliveAt = Date.now();
    });
  }

  /** Grants the lease (one RPC); keepalives then run in the background every ttl/3. */
  static async open(etcd: Etcd3, ttlSeconds: number): Promise<Session> {
    const requestedAt = Date.now();
    const lease = etcd.lease(ttlSeconds, { autoKeepAlive: true });
    lease.on('lost', () => {}); // the Session reads it; never an unhandled 'error'-like crash
    const id = await lease.grant();
    return new Session(lease, id, ttlSeconds, requestedAt);
  }

  /** The lease id in hex, as etcdctl prints it: the name of this session's lock keys. */
  get leaseHex(): string {
    return BigInt(this.leaseId).toString(16);
  }

  get lost(): boolean {
    if (this.lostReason !== undefined) return true;
    if (Date.now() - this.lastAliveAt > this.ttlSeconds * 1000) {
      this.lostReason = new SessionLostError(`no keepalive acknowledged for ${this.ttlSeconds}s (process paused?)`);
      return true;
    }
    return false;
  }

  assertAlive(): void {
    if (this.lost) throw new SessionLostError(`etcd session lost: ${this.lostReason?.message ?? 'unknown'}`);
  }

  /** Revokes the lease (its lock keys vanish with it). Safe to call twice. */
  async close(): Promise<void> {
    if (this.lease.revoked()) return;
    try {
      await this.lease.revoke();
    } catch {
      // The lease dies by TTL anyway; a failed revoke must not fail the invocation.
      this.lease.release();
    }
  }
}
