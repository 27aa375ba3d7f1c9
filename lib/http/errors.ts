// Maps what the domain throws to HTTP problems, through the one classification (lib/errors.ts):
// "nothing was applied, retry" becomes 503 with Retry-After, the caller's mistakes 4xx, and
// anything unexpected a 500 that is logged in full and never leaks detail.
import { ZodError } from 'zod';
import { HttpProblem, type FieldError } from './problem.js';
import { classify, ConfigError, ConflictError, DependencyError, RejectedError, RetryableError } from '../errors.js';

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

function retryDetail(err: RetryableError): string {
  switch (err.reason) {
    case 'lock-timeout':
      return 'the circuit is busy: its lock was not acquired in time; nothing was changed';
    case 'stale-fence':
      return 'a newer holder of the circuit lock got there first; nothing was changed';
    case 'history-changed':
      return "etcd's history changed under the database (restored or rebuilt); a new fencing epoch was started; nothing was changed";
    case 'dependency':
      return (err as DependencyError).dependency === 'etcd'
        ? 'etcd is unavailable; nothing was changed'
        : // One statement commits a change; only a connection lost during that commit leaves its outcome unknown.
          'the database is unavailable; nothing was changed, unless the connection broke during the commit: read the circuit (its generation) before retrying, or retry with If-Match';
    default:
      return 'the circuit lock was lost before the change; nothing was changed';
  }
}

/** The problem for an error; null for a bug (the caller answers a generic 500 and logs it). */
export function toProblem(err: unknown, retryAfterSeconds: number): HttpProblem | null {
  if (err instanceof HttpProblem) return err;
  if (err instanceof ZodError) {
    const errors = fieldErrors(err);
    return new HttpProblem(400, 'Bad Request', `invalid request: ${errors.map((e) => `${e.field}: ${e.message}`).join('; ')}`, { errors });
  }
  const c = classify(err);
  const e = err as Error;
  switch (c.kind) {
    case 'rejected':
      return new HttpProblem(422, 'Unprocessable Content', e.message, { errors: [{ field: (err as RejectedError).field, message: e.message }] });
    case 'not-found':
      return new HttpProblem(404, 'Not Found', e.message);
    case 'conflict': {
      const conflict = err as ConflictError;
      return new HttpProblem(409, 'Conflict', e.message, {
        type: `urn:circuitry:conflict:${conflict.code}`,
        ...(conflict.retryAfterSeconds !== undefined ? { headers: { 'retry-after': String(conflict.retryAfterSeconds) } } : {}),
      });
    }
    case 'retry':
      return new HttpProblem(503, 'Service Unavailable', retryDetail(err as RetryableError), { headers: { 'retry-after': String(retryAfterSeconds) } });
    case 'outcome-unknown':
      return new HttpProblem(503, 'Service Unavailable', `${e.message}; read the circuit (its generation) before retrying, or retry with If-Match`, {
        type: 'urn:circuitry:outcome-unknown',
        headers: { 'retry-after': String(retryAfterSeconds) },
      });
    case 'misconfigured':
      // Configuration messages name variables; credential refusals are fixed texts. Neither echoes a secret.
      return new HttpProblem(500, 'Internal Server Error', err instanceof ConfigError ? 'the service is misconfigured' : e.message);
    default:
      return null;
  }
}
