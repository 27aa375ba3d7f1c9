// The middy middlewares shared by the HTTP functions. Each does one thing; functions compose
// them through httpHandler() in handler.ts.
import { createHash, timingSafeEqual } from 'node:crypto';
import type middy from '@middy/core';
import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2, Context } from 'aws-lambda';
import { HttpProblem, problemResponse } from './problem.js';
import { toProblem } from './errors.js';
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
 * content nor length leaks through timing; every configured token is checked (rotation).
 */
export function authenticate(tokens: () => readonly string[]): Mw {
  return {
    before: (req: Req) => {
      const header = req.event.headers?.authorization;
      const m = header === undefined ? null : /^Bearer ([\x21-\x7e]+)$/.exec(header);
      if (m === null) {
        throw new HttpProblem(401, 'Unauthorized', 'missing or malformed Authorization: Bearer <token>', {
          headers: { 'www-authenticate': 'Bearer' },
        });
      }
      const given = digest(m[1]!);
      let ok = false;
      for (const t of tokens()) ok = timingSafeEqual(given, digest(t)) || ok;
      if (!ok) throw new HttpProblem(401, 'Unauthorized', 'invalid bearer token', { headers: { 'www-authenticate': 'Bearer error="invalid_token"' } });
    },
  };
}

/** Parses a JSON body into event.json: content type, size limit, syntax; 4xx otherwise. */
export function jsonBody(opts: { maxBytes: number; required: (method: string) => boolean }): Mw {
  return {
    before: (req: Req) => {
      const method = req.event.requestContext?.http?.method ?? 'GET';
      const raw = req.event.body;
      if (raw === undefined || raw === null || raw === '') {
        if (opts.required(method)) throw new HttpProblem(400, 'Bad Request', 'a JSON request body is required', { errors: [{ field: 'body', message: 'required' }] });
        return;
      }
      const text = req.event.isBase64Encoded ? Buffer.from(raw, 'base64').toString('utf8') : raw;
      if (Buffer.byteLength(text, 'utf8') > opts.maxBytes) {
        throw new HttpProblem(413, 'Content Too Large', `the request body exceeds ${opts.maxBytes} bytes`);
      }
      const type = req.event.headers?.['content-type'] ?? '';
      if (!/^application\/([a-z0-9.+-]*\+)?json\s*(;|$)/i.test(type)) {
        throw new HttpProblem(415, 'Unsupported Media Type', 'the request body must be application/json');
      }
      try {
        req.event.json = JSON.parse(text) as unknown;
      } catch (err) {
        throw new HttpProblem(400, 'Bad Request', `the request body is not valid JSON: ${(err as Error).message}`, {
          errors: [{ field: 'body', message: 'malformed JSON' }],
        });
      }
    },
  };
}

/** One Invocation (and so at most one etcd lease) per request, closed when it ends. */
export function invocation(): Mw {
  const close = async (req: Req) => {
    await req.context.inv?.close().catch(() => {});
  };
  return {
    before: (req: Req) => {
      req.context.inv = new Invocation(getRuntime());
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
        logger.warn('request failed', { status: problem.status, detail: problem.detail, error: err as Error });
        if (problem.status === 503) metrics.addMetric('Unavailable', MetricUnit.Count, 1);
      } else {
        logger.info('request rejected', { status: problem.status, detail: problem.detail });
      }
      req.response = problemResponse(problem, req.event.rawPath);
    },
  };
}
