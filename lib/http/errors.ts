// Maps what the domain throws to HTTP problems. Dependency and lock failures become 503 with
// Retry-After (the request changed nothing, or the database committed and the sweep will
// converge etcd); anything unexpected is a 500 that is logged in full and never leaks detail.
import { ZodError } from 'zod';
import { HttpProblem, type FieldError } from './problem.js';
import { ConflictError, NotFoundError } from '../db/circuits.js';
import { LockLostError, LockTimeoutError } from '../etcd/mutex.js';
import { SessionLostError } from '../etcd/session.js';
import { DependencyError } from '../circuits/errors.js';
import { ConfigError } from '../config.js';
import { CircuitRejectedError } from '../circuits/create.js';

export function fieldErrors(err: ZodError, root = ''): FieldError[] {
  return err.issues.map((i) => ({
    field: [root, ...i.path.map(String)].filter((s) => s !== '').join('.') || 'body',
    message: i.message,
  }));
}

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
  if (err instanceof LockLostError || err instanceof SessionLostError) {
    return new HttpProblem(503, 'Service Unavailable', 'the circuit lock was lost before the change; nothing was changed', retry);
  }
  if (err instanceof DependencyError) {
    return new HttpProblem(503, 'Service Unavailable', `${err.dependency} is unavailable; nothing was changed`, retry);
  }
  if (err instanceof ConfigError) return new HttpProblem(500, 'Internal Server Error', 'the service is misconfigured');
  return null;
}
