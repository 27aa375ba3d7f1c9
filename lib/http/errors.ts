// Maps what the domain throws to HTTP problems. Dependency and lock failures become 503 with
// Retry-After (the request changed nothing, or the database committed and the sweep will
// converge etcd); anything unexpected is a 500 that is logged in full and never leaks detail.
import { ZodError } from 'zod';
import {
  EtcdAuthenticationFailedError,
  EtcdPermissionDeniedError,
  EtcdRoleNotGrantedError,
  EtcdUserNotFoundError,
  GRPCUnauthenticatedError,
} from 'etcd3';
import { HttpProblem, type FieldError } from './problem.js';
import { ConflictError, NotFoundError, StaleLockError } from '../db/circuits.js';
import { LockLostError, LockTimeoutError } from '../etcd/mutex.js';
import { SessionLostError } from '../etcd/session.js';
import { DependencyError } from '../circuits/errors.js';
import { ConfigError } from '../config.js';
import { CircuitRejectedError } from '../circuits/create.js';

const dotted = (parts: readonly PropertyKey[]): string =>
  parts
    .map(String)
    .filter((s) => s !== '')
    .join('.') || 'body';

/** One entry per offending field; an unknown key is named itself ("routes.0.extra"). */
export function fieldErrors(err: ZodError, root = ''): FieldError[] {
  return err.issues.flatMap((i) =>
    i.code === 'unrecognized_keys'
      ? i.keys.map((k) => ({ field: dotted([root, ...i.path, k]), message: 'unknown field' }))
      : [{ field: dotted([root, ...i.path]), message: i.message }],
  );
}

/** etcd refused our identity: a configuration problem, not an outage; retrying will not help. */
const etcdCredentialErrors = [EtcdAuthenticationFailedError, EtcdPermissionDeniedError, EtcdUserNotFoundError, EtcdRoleNotGrantedError, GRPCUnauthenticatedError];

export function toProblem(err: unknown, retryAfterSeconds: number): HttpProblem | null {
  const retry = { headers: { 'retry-after': String(retryAfterSeconds) } };
  if (err instanceof HttpProblem) return err;
  if (err instanceof ZodError) {
    const errors = fieldErrors(err);
    return new HttpProblem(400, 'Bad Request', `invalid request: ${errors.map((e) => `${e.field}: ${e.message}`).join('; ')}`, { errors });
  }
  if (err instanceof CircuitRejectedError) {
    return new HttpProblem(422, 'Unprocessable Content', err.message, { errors: [{ field: err.field, message: err.message }] });
  }
  if (err instanceof NotFoundError) return new HttpProblem(404, 'Not Found', err.message);
  if (err instanceof ConflictError) return new HttpProblem(409, 'Conflict', err.message, { type: `urn:circuitry:conflict:${err.code}` });
  if (err instanceof LockTimeoutError) {
    return new HttpProblem(503, 'Service Unavailable', 'the circuit is busy: its lock was not acquired in time; nothing was changed', retry);
  }
  if (err instanceof LockLostError || err instanceof SessionLostError || err instanceof StaleLockError) {
    return new HttpProblem(503, 'Service Unavailable', 'the circuit lock was lost before the change; nothing was changed', retry);
  }
  const cause = err instanceof DependencyError ? err.cause : err;
  if (etcdCredentialErrors.some((c) => cause instanceof c)) {
    // Logged in full by problemErrors; the caller only learns that it is not their fault.
    return new HttpProblem(500, 'Internal Server Error', 'the service is misconfigured: etcd refused its credentials');
  }
  // SQLSTATE class 28: invalid authorization (wrong DATABASE_URL user or password).
  if (/^28/.test(String((cause as { code?: unknown } | null)?.code ?? ''))) {
    return new HttpProblem(500, 'Internal Server Error', 'the service is misconfigured: the database refused its credentials');
  }
  if (err instanceof DependencyError) {
    return new HttpProblem(
      503,
      'Service Unavailable',
      err.dependency === 'etcd'
        ? 'etcd is unavailable; nothing was changed'
        : // One statement commits a change; only a connection lost during that commit leaves its outcome unknown.
          'the database is unavailable; nothing was changed, unless the connection broke during the commit: read the circuit (its generation) before retrying, or retry with If-Match',
      retry,
    );
  }
  if (err instanceof ConfigError) return new HttpProblem(500, 'Internal Server Error', 'the service is misconfigured');
  return null;
}
