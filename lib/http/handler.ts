// The middy engine for HTTP functions: a function file supplies only its route handlers.
import middy from '@middy/core';
import doNotWaitForEmptyEventLoop from '@middy/do-not-wait-for-empty-event-loop';
import httpHeaderNormalizer from '@middy/http-header-normalizer';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import { logMetrics } from '@aws-lambda-powertools/metrics/middleware';
import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2 } from 'aws-lambda';
import { getConfig } from '../config.js';
import { logger, metrics } from '../observability.js';
import { authenticate, invocation, jsonBody, problemErrors, type HttpContext } from './middleware.js';

export type HttpEvent = APIGatewayProxyEventV2 & { json?: unknown };
export type HttpResult = APIGatewayProxyStructuredResultV2;
export type HttpFn = (event: HttpEvent, context: HttpContext) => Promise<HttpResult>;

export const MAX_BODY_BYTES = 1024 * 1024;

export interface HttpHandlerOptions {
  /** Routes served without a bearer token (GET /v2/health). */
  isPublic?: (method: string, path: string) => boolean;
}

export function httpHandler(fn: HttpFn, opts: HttpHandlerOptions = {}) {
  return middy<HttpEvent, HttpResult, Error, HttpContext>()
    .use(doNotWaitForEmptyEventLoop({ runOnError: true }))
    .use(injectLambdaContext(logger, { resetKeys: true, logEvent: false })) // never log events: they carry the bearer token
    .use(logMetrics(metrics, { captureColdStartMetric: true })) // a ColdStart metric (dimension function_name) on each cold start
    .use(problemErrors(() => Math.max(1, Math.ceil(getConfig().lockWaitMs / 1000))))
    .use(httpHeaderNormalizer())
    .use(authenticate(() => getConfig().apiTokens, opts.isPublic))
    .use(jsonBody({ maxBytes: MAX_BODY_BYTES, required: (m) => m === 'POST' || m === 'PUT' }))
    .use(invocation())
    .handler(fn);
}

export function json(statusCode: number, body: unknown, headers: Record<string, string> = {}): HttpResult {
  return { statusCode, headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) };
}
