// The middy middlewares shared by the HTTP functions. Each does one thing; functions compose
// them through httpHandler() in handler.ts.
import { createHash, timingSafeEqual } from 'node:crypto';
import type middy from '@middy/core';
import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2, Context } from 'aws-lambda';
import { HttpProblem, problemResponse } from './problem.js';
import { toProblem } from './errors.js';
import { MAX_JSON_DEPTH, scanJson } from './json.js';
import { Invocation, getRuntime } from '../runtime.js';
import { logger, metrics, MetricUnit } from '../observability.js';

export interface HttpContext extends Context {
  inv: Invocation;
}
type Req = middy.Request<APIGatewayProxyEventV2 & { json?: unknown }, APIGatewayProxyStructuredResultV2, Error, HttpContext>;
type Mw = middy.MiddlewareObj<APIGatewayProxyEventV2 & { json?: unknown }, APIGatewayProxyStructuredResultV2, Error, HttpContext>;

const digest = (s: string) => createHash('sha256').update(s).digest();

/**
 * Bearer-token check. Tokens are compared as SHA-256 digests with timingSafeEqual, so neither
 * content nor length leaks through timing; every configured token is compared on every request
 * (no early exit), so which of several rotated tokens matched does not leak either. The header
 * value is never logged or echoed.
 */
export function authenticate(tokens: () => readonly string[], isPublic: (method: string, path: string) => boolean = () => false): Mw {
  return {
    before: (req: Req) => {
      if (isPublic(req.event.requestContext?.http?.method ?? '', req.event.rawPath ?? '')) return;
      const header = req.event.headers?.authorization;
      // RFC 9110 §11.1: the scheme is case-insensitive; the token68 is visible ASCII.
      const m = header === undefined ? null : /^bearer ([\x21-\x7e]+)$/i.exec(header);
      if (m === null) {
        throw new HttpProblem(401, 'Unauthorized', 'missing or malformed Authorization: Bearer <token>', {
          headers: { 'www-authenticate': 'Bearer' },
          errors: [{ field: 'header.authorization', message: header === undefined ? 'required' : 'malformed' }],
        });
      }
      if (!matchesAnyToken(m[1]!, tokens())) {
        throw new HttpProblem(401, 'Unauthorized', 'invalid bearer token', {
          headers: { 'www-authenticate': 'Bearer error="invalid_token"' },
          errors: [{ field: 'header.authorization', message: 'invalid token' }],
        });
      }
    },
  };
}

/** Constant-time membership: compares `given` with every token, whatever matched earlier. */
export function matchesAnyToken(given: string, tokens: readonly string[]): boolean {
  const g = digest(given);
  let ok = false;
  for (const t of tokens) ok = timingSafeEqual(g, digest(t)) || ok;
  return ok;
}

export { MAX_JSON_DEPTH };

const METHODS_WITHOUT_BODY = new Set(['GET', 'HEAD', 'DELETE', 'OPTIONS']);

/**
 * Parses a JSON body into event.json: size limit, content type, syntax, duplicated keys and
 * nesting depth; 4xx naming the field otherwise. Methods without body semantics must not send one.
 */
export function jsonBody(opts: { maxBytes: number; required: (method: string) => boolean }): Mw {
  return {
    before: (req: Req) => {
      const method = req.event.requestContext?.http?.method ?? 'GET';
      const raw = req.event.body;
      if (raw === undefined || raw === null || raw === '') {
        if (opts.required(method)) throw new HttpProblem(400, 'Bad Request', 'a JSON request body is required', { errors: [{ field: 'body', message: 'required' }] });
        return;
      }
      if (METHODS_WITHOUT_BODY.has(method.toUpperCase())) {
        throw new HttpProblem(400, 'Bad Request', `${method} takes no request body`, { errors: [{ field: 'body', message: 'not allowed for this method' }] });
      }
      const tooLarge = () =>
        new HttpProblem(413, 'Content Too Large', `the request body exceeds ${opts.maxBytes} bytes`, {
          errors: [{ field: 'body', message: `larger than ${opts.maxBytes} bytes` }],
        });
      // Cheap bound before decoding: base64 is 4/3 of the bytes, UTF-16 length <= UTF-8 bytes.
      if (raw.length > (req.event.isBase64Encoded ? Math.ceil((opts.maxBytes * 4) / 3) + 4 : opts.maxBytes)) throw tooLarge();
      const text = req.event.isBase64Encoded ? Buffer.from(raw, 'base64').toString('utf8') : raw;
      if (Buffer.byteLength(text, 'utf8') > opts.maxBytes) throw tooLarge();
      const type = req.event.headers?.['content-type'] ?? '';
      if (!/^application\/([a-z0-9.+-]*\+)?json\s*(;|$)/i.test(type)) {
        throw new HttpProblem(415, 'Unsupported Media Type', 'the request body must be application/json', {
          errors: [{ field: 'header.content-type', message: 'must be application/json' }],
        });
      }
      let parsed: unknown;
      try {
        parsed = JSON.parse(text) as unknown;
      } catch (err) {
        // V8 quotes a slice of the input in its message; keep only the position, not the content.
        const why = (err as Error).message.replace(/,?\s*".*"(\.\.\.)? is not valid JSON$/s, '').slice(0, 200);
        throw new HttpProblem(400, 'Bad Request', `the request body is not valid JSON: ${why}`, {
          errors: [{ field: 'body', message: 'malformed JSON' }],
        });
      }
      const problem = scanJson(text, { maxDepth: MAX_JSON_DEPTH });
      if (problem !== null) {
        throw new HttpProblem(400, 'Bad Request', `invalid request body: ${problem.field}: ${problem.message}`, {
          errors: [{ field: problem.field, message: problem.message }],
        });
      }
      req.event.json = parsed;
    },
  };
}

/** One Invocation (and so at most one etcd lease) per request, closed when it ends. */
export function invocation(): Mw {
  const close = async (req: Req) => {
    req.context.inv?.finish();
  };
  return {
    before: (req: Req) => {
      req.context.inv = new Invocation(getRuntime(), `${req.context.functionName ?? 'local'}:${req.context.awsRequestId ?? ''}`);
    },
    after: close,
    onError: close,
  };
}

/** Turns any error into an application/problem+json response. */
export function problemErrors(retryAfterSeconds: () => number): Mw {
  return {
    onError: (req: Req) => {
      const err = req.error;
      let problem: HttpProblem | null;
      try {
        problem = toProblem(err, retryAfterSeconds());
      } catch {
        problem = null;
      }
      if (problem === null) {
        logger.error('unhandled error', { error: err as Error });
        problem = new HttpProblem(500, 'Internal Server Error', 'an unexpected error occurred; it has been logged');
      } else if (problem.status >= 500) {
        // 503: a dependency is down (warn); 500: misconfiguration, e.g. refused credentials (error).
        (problem.status === 503 ? logger.warn : logger.error).call(logger, 'request failed', { status: problem.status, detail: problem.detail, error: err as Error });
        if (problem.status === 503) metrics.addMetric('Unavailable', MetricUnit.Count, 1);
      } else {
        logger.info('request rejected', { status: problem.status, detail: problem.detail });
      }
      // The request id lets an operator find the request's log lines from a client's error report.
      req.response = problemResponse(problem, req.event.requestContext?.requestId ?? req.context.awsRequestId);
    },
  };
}
