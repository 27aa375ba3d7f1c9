// Failover between the members of an etcd cluster. etcd3 sends each attempt of a call to the
// next host of a shuffled order and retries a failed attempt on another one; what it lacks is a
// memory of which member is failing: with one member unreachable (partitioned, frozen, its
// process stopped), about one call in N sends its first attempt there and pays a full attempt
// deadline before moving on. A HostBreaker per member remembers it: after a transport failure
// there (DEADLINE_EXCEEDED, UNAVAILABLE — "no leader", "leader changed" and etcd's own request
// timeouts are UNAVAILABLE too) calls skip the member for HALF_OPEN_AFTER_MS, doubling while it
// keeps failing up to MAX_OPEN_MS; then one call tries it again (half-open) and a success closes
// it. A member is skipped only while another member may be called: when every member is
// failing, calls still try instead of failing without trying.
//
// etcd3 calls a host's policy around every attempt of a unary call and around the creation of a
// stream (watch, lease keepalive), and reports a stream's later failure through it too
// (ConnectionPool.markFailed); a policy that throws BrokenCircuitError without calling through
// makes it move on to the next host.
import { BrokenCircuitError, EventEmitter, type IDefaultPolicyContext, type IFailureEvent, type IPolicy, type ISuccessEvent } from 'cockatiel';
import { Stream } from 'node:stream';
import { EtcdError, EtcdLeaseInvalidError, GRPCCancelledError, GRPCDeadlineExceededError, GRPCGenericError, GRPCUnavailableError } from 'etcd3';

export const HALF_OPEN_AFTER_MS = 1000;
export const MAX_OPEN_MS = 8000;

/** A failure that says the member could not be reached or could not serve (not "the request was wrong"). */
export const isTransportFailure = (err: unknown): boolean => err instanceof GRPCDeadlineExceededError || err instanceof GRPCUnavailableError;

const answered = (err: unknown): boolean => (err instanceof GRPCGenericError && !(err instanceof GRPCCancelledError)) || err instanceof EtcdError || err instanceof EtcdLeaseInvalidError;

export class HostBreakers {
  private readonly breakers: HostBreaker[] = [];

  constructor(readonly now: () => number = () => performance.now()) {}

  /** The policy of one host (etcd3's faultHandling.host). */
  for(host: string): HostBreaker {
    const b = new HostBreaker(host, this);
    this.breakers.push(b);
    return b;
  }

  /** Whether a member other than `self` may be called now. */
  othersCallable(self: HostBreaker): boolean {
    return this.breakers.some((b) => b !== self && b.callable());
  }

  /** Hosts currently skipped, for operators and tests. */
  open(): string[] {
    return this.breakers.filter((b) => !b.callable()).map((b) => b.host);
  }
}

export class HostBreaker implements IPolicy<IDefaultPolicyContext> {
  declare readonly _altReturn: never;
  private readonly successEmitter = new EventEmitter<ISuccessEvent>();
  private readonly failureEmitter = new EventEmitter<IFailureEvent>();
  readonly onSuccess = this.successEmitter.addListener;
  readonly onFailure = this.failureEmitter.addListener;
  /** Skipped until then (monotonic ms); 0 when closed. */
  private openUntil = 0;
  private openMs = 0;
  /** A half-open trial is in flight: others wait for its verdict. */
  private trial = false;

  constructor(
    readonly host: string,
    private readonly all: HostBreakers,
  ) {}

  /** Closed, or open long enough for a trial that nobody is running yet. */
  callable(): boolean {
    return this.openUntil === 0 || (!this.trial && this.all.now() >= this.openUntil);
  }

  async execute<T>(fn: (context: IDefaultPolicyContext) => PromiseLike<T> | T, signal = new AbortController().signal): Promise<T> {
    let isTrial = false;
    if (this.openUntil !== 0) {
      if (!this.callable() && this.all.othersCallable(this)) throw new BrokenCircuitError(`etcd member ${this.host} is failing; trying another`);
      isTrial = !this.trial;
      this.trial = true;
    }
    const started = this.all.now();
    try {
      const value = await fn({ signal });
      // A stream that was merely opened has exchanged nothing yet: it proves nothing about the
      // member (its failure is reported later, through markFailed).
      if (!(value instanceof Stream)) this.close();
      this.successEmitter.emit({ duration: this.all.now() - started });
      return value;
    } catch (err) {
      const handled = isTransportFailure(err);
      if (handled) this.trip(isTrial);
      // The member answered (a wrong request, an unknown lease): it is reachable. Anything else
      // (a call cancelled on our side, a budget spent before sending) says nothing about it.
      else if (answered(err)) this.close();
      this.failureEmitter.emit({ duration: this.all.now() - started, handled, reason: { error: err as Error } });
      throw err;
    } finally {
      if (isTrial) this.trial = false;
    }
  }

  private trip(wasTrial: boolean): void {
    const t = this.all.now();
    if (this.openUntil === 0) this.openMs = HALF_OPEN_AFTER_MS;
    else if (wasTrial) this.openMs = Math.min(MAX_OPEN_MS, this.openMs * 2);
    // Several calls in flight on a failing member fail together: one opening, not several.
    this.openUntil = Math.max(this.openUntil, t + this.openMs);
  }

  private close(): void {
    this.openUntil = 0;
    this.openMs = 0;
  }
}
