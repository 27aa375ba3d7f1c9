// The one error taxonomy of circuitry. Every layer turns what it catches from its own I/O into one
// of these at its boundary (lib/etcd and lib/db translate driver errors), so that HTTP answers,
// EventBridge retries and metrics all classify a failure the same way (`classify` below).
//
//   RetryableError     nothing was applied; the same request may be retried (503 + Retry-After)
//     LockTimeoutError, LockLostError, SessionLostError, StaleFenceError, FencedWriteError,
//     EtcdHistoryChangedError, DependencyError
//   NotFoundError      404
//   ConflictError      409 (with a machine-readable code; some carry a Retry-After)
//   RejectedError      422: valid on its own, not acceptable in this context
//   IntegrityError     a write that would break an invariant was refused (ResurrectionError, RenderError)
//   OutcomeUnknownError the change may or may not have been applied (503: read before retrying)
//   MisconfiguredError the service cannot work as configured (credentials refused, invalid environment)
// Anything else is a bug: 500, logged in full.

export type ErrorKind = 'retry' | 'not-found' | 'conflict' | 'rejected' | 'integrity' | 'misconfigured' | 'outcome-unknown';

export abstract class CircuitryError extends Error {
  abstract readonly kind: ErrorKind;
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

// ---- nothing was applied, retry ----------------------------------------------------------------

export type RetryReason =
  | 'lock-timeout'
  | 'lock-lost'
  | 'session-lost'
  | 'stale-fence'
  | 'fenced-write'
  | 'history-changed'
  | 'dependency';

export abstract class RetryableError extends CircuitryError {
  readonly kind = 'retry' as const;
  abstract readonly reason: RetryReason;
}

/** The circuit lock was not acquired within the wait bound (the writer withdrew from the queue). */
export class LockTimeoutError extends RetryableError {
  readonly reason = 'lock-timeout' as const;
}

/** Our lock key vanished while we waited or worked: the lease expired (pause, freeze, partition). */
export class LockLostError extends RetryableError {
  readonly reason = 'lock-lost' as const;
}

/** The invocation's etcd lease is gone (expired server-side, or our own clock says it must have). */
export class SessionLostError extends RetryableError {
  readonly reason = 'session-lost' as const;
}

/** The database refused a change or read under a lock: a newer lock holder has touched the circuit. */
export class StaleFenceError extends RetryableError {
  readonly reason = 'stale-fence' as const;
}

export type FenceReason = 'lock-lost' | 'circuit-changed';

/** etcd refused a fenced write; nothing of the refused step was applied. */
export class FencedWriteError extends RetryableError {
  readonly reason = 'fenced-write' as const;
  constructor(
    readonly fence: FenceReason,
    readonly stepsApplied: number,
  ) {
    super(
      fence === 'lock-lost'
        ? 'write refused: this writer no longer owns the circuit lock'
        : "write refused: the circuit's meta changed since it was read",
    );
  }
}

/**
 * etcd's history is not the one the database's fences were taken in (restored from a snapshot,
 * rebuilt): a new fencing epoch has been (or is being) started; retry.
 */
export class EtcdHistoryChangedError extends RetryableError {
  readonly reason = 'history-changed' as const;
}

export type Dependency = 'etcd' | 'database';

/** etcd or the database could not be reached, or did not answer in time. */
export class DependencyError extends RetryableError {
  readonly reason = 'dependency' as const;
  constructor(
    readonly dependency: Dependency,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(`${dependency} unavailable: ${message}`, options);
  }
}

// ---- the caller's request cannot succeed as it is ------------------------------------------------

export class NotFoundError extends CircuitryError {
  readonly kind = 'not-found' as const;
}

export type ConflictCode =
  | 'exists'
  | 'deleted'
  | 'frontend-taken'
  | 'frontend-releasing'
  | 'generation-mismatch'
  | 'unloading'
  | 'unknown-worker'
  | 'worker-in-use';

export class ConflictError extends CircuitryError {
  readonly kind = 'conflict' as const;
  constructor(
    message: string,
    readonly code: ConflictCode,
    /** When the conflict resolves by itself (a frontend whose old keys are being removed). */
    readonly retryAfterSeconds?: number,
  ) {
    super(message);
  }
}

/** The request is valid on its own but not in this context (unknown worker, address not allowed). */
export class RejectedError extends CircuitryError {
  readonly kind = 'rejected' as const;
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(message);
  }
}

// ---- invariants ---------------------------------------------------------------------------------

export abstract class IntegrityError extends CircuitryError {
  readonly kind = 'integrity' as const;
}

/** A writer tried to re-create keys of a circuit whose tombstone it has seen (DESIGN I1). */
export class ResurrectionError extends IntegrityError {}

/** A circuit that cannot be expressed as Traefik keys (refused rather than half-rendered). */
export class RenderError extends IntegrityError {}

// ---- outcome unknown -----------------------------------------------------------------------------

/**
 * A change was offered to another writer (queued for the lock holder ahead) and could be neither
 * withdrawn nor found applied: it may still be, or may already have been, applied. Not retryable
 * as it is: the caller reads the circuit's generation first, or retries with If-Match.
 */
export class OutcomeUnknownError extends CircuitryError {
  readonly kind = 'outcome-unknown' as const;
}

// ---- configuration --------------------------------------------------------------------------------

export class MisconfiguredError extends CircuitryError {
  readonly kind = 'misconfigured' as const;
}

/** An invalid environment: the message names every offending variable, never a value. */
export class ConfigError extends MisconfiguredError {}

// ---- classification -------------------------------------------------------------------------------

export interface Classified {
  kind: ErrorKind | 'bug';
  /** HTTP status of the answer. */
  status: number;
  /** Nothing was applied and the same request may succeed later. */
  retryable: boolean;
  /** The metric dimension / log label. */
  label: string;
}

const STATUS: Record<ErrorKind | 'bug', number> = {
  retry: 503,
  'not-found': 404,
  conflict: 409,
  rejected: 422,
  integrity: 500,
  misconfigured: 500,
  'outcome-unknown': 503,
  bug: 500,
};

/** The one classification of any thrown value. */
export function classify(err: unknown): Classified {
  if (err instanceof CircuitryError) {
    const label = err instanceof RetryableError ? err.reason : err instanceof ConflictError ? `conflict:${err.code}` : err.kind;
    return { kind: err.kind, status: STATUS[err.kind], retryable: err instanceof RetryableError, label };
  }
  return { kind: 'bug', status: 500, retryable: false, label: 'bug' };
}

export const isRetryable = (err: unknown): err is RetryableError => err instanceof RetryableError;
