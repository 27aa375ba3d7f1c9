// How long an etcd lease is certainly still alive, by our own clock (session.ts). Conservative on
// purpose: monotonic time (a wall-clock step cannot extend it), and the TTL counts from when an
// acknowledged keepalive was SENT — etcd resets the TTL when it receives the request, never
// earlier — not from when its answer arrived. The keepalive stream answers requests in order.
export class LivenessClock {
  private aliveUntil: number;
  private pending: number[] = [];

  constructor(
    private readonly ttlMs: number,
    private readonly now: () => number,
    /** When the grant was requested: the lease lives at least TTL from then. */
    requestedAt: number,
  ) {
    this.aliveUntil = requestedAt + ttlMs;
  }

  /** A keepalive request is being sent. */
  fired(): void {
    this.pending.push(this.now());
  }

  /** A new keepalive stream: requests of the old one will never be answered. */
  restarted(): void {
    this.pending = [];
  }

  /** The oldest pending keepalive was answered; `ttlSeconds` is the TTL etcd reports. */
  acknowledged(ttlSeconds?: number): void {
    const sentAt = this.pending.shift();
    if (sentAt === undefined) return; // an answer we cannot date proves nothing
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
