// Failures of the services we depend on, told apart from our own domain errors so that
// handlers can answer 503 + Retry-After for the former and 4xx for the latter.
import { GRPCGenericError, EtcdError, EtcdLeaseInvalidError, ClientClosedError } from 'etcd3';
import { ConflictError, NotFoundError, StaleLockError } from '../db/circuits.js';
import { LockLostError, LockTimeoutError } from '../etcd/mutex.js';
import { SessionLostError } from '../etcd/session.js';
import { FencedWriteError, ResurrectionError } from '../etcd/fenced-apply.js';

export class DependencyError extends Error {
  override name = 'DependencyError';
  constructor(
    readonly dependency: 'etcd' | 'database',
    message: string,
    options?: { cause?: unknown },
  ) {
    super(`${dependency} unavailable: ${message}`, options);
  }
}

const passThrough = [
  DependencyError,
  ConflictError,
  NotFoundError,
  StaleLockError,
  LockLostError,
  LockTimeoutError,
  SessionLostError,
  FencedWriteError,
  ResurrectionError,
];

// SQLSTATE classes that mean "the database could not be reached or is going away".
const transientSqlState = /^(08|53|57P0[1-3])/;
const transportFailure =
  /connect|connection|terminated|timeout|timed out|ECONN|EPIPE|ENOTFOUND|EAI_AGAIN|EHOSTUNREACH|ENETUNREACH|socket|websocket|closed|not queryable|ErrorEvent/i;

export function classifyFailure(err: unknown, dependency: 'etcd' | 'database'): Error {
  if (passThrough.some((c) => err instanceof c)) return err as Error;
  const e = err instanceof Error ? err : new Error(String(err));
  // etcd no longer knows our lease (it expired while we were paused): our session is lost.
  if (err instanceof EtcdLeaseInvalidError) return new SessionLostError(`etcd session lost: ${e.message}`);
  if (err instanceof GRPCGenericError || err instanceof ClientClosedError || (err instanceof EtcdError && /unavailable|timed out|deadline/i.test(e.message))) {
    return new DependencyError('etcd', e.message, { cause: err });
  }
  if (dependency === 'database') {
    const code = (err as { code?: unknown }).code;
    if (typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code)) {
      return transientSqlState.test(code) ? new DependencyError('database', e.message, { cause: err }) : e; // a real SQL error
    }
    // Without a SQLSTATE: transport failures (the driver, the WebSocket, the socket) are an
    // outage; anything else (a TypeError in our own code, say) is a bug and must not be
    // disguised as a 503 that clients retry forever.
    if (!(err instanceof Error) || transportFailure.test(`${e.name} ${e.message} ${String(code ?? '')}`)) {
      return new DependencyError('database', e.message || 'connection failed', { cause: err });
    }
  }
  return e;
}
