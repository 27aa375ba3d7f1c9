// How long an etcd lease is certainly still alive, by our own clock (session.ts). Conservative on
// purpose: monotonic time (a wall-clock step cannot extend it), and the TTL counts from when an
// acknowledged renewal was SENT — etcd resets the TTL when it receives the request, never
// earlier — not from when its answer arrived. Each renewal is its own request with its own send
// time, whichever member answers it (a follower forwards it to the leader, which renews on
// receipt). A new leader extends every lease to a full TTL from its election, which only makes
// the real expiry later than ours.
export class LivenessClock {
  private aliveUntil: number;

  constructor(
    private readonly ttlMs: number,
    private readonly now: () => number,
    /** When the grant was requested: the lease lives at least TTL from then. */
    requestedAt: number,
  ) {
    this.aliveUntil = requestedAt + ttlMs;
  }

  /** A renewal sent at `sentAt` (this clock's time) was acknowledged; `ttlSeconds` is the TTL etcd reports. */
  renewed(sentAt: number, ttlSeconds?: number): void {
    const ttlMs = ttlSeconds !== undefined && ttlSeconds > 0 ? ttlSeconds * 1000 : this.ttlMs;
    this.aliveUntil = Math.max(this.aliveUntil, sentAt + ttlMs);
  }

  remainingMs(): number {
    return Math.max(0, this.aliveUntil - this.now());
  }

  expired(): boolean {
    return this.now() > this.aliveUntil;
  }
}
