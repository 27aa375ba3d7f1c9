// The events Lambda hands our functions (API Gateway HTTP API payload v2, EventBridge) and a
// Lambda context, for the chaos workers (a copy of test/support/lambda.ts's builders, so the
// harness does not import test code).
import { randomUUID } from 'node:crypto';
import type { APIGatewayProxyEventV2, Context, EventBridgeEvent } from 'aws-lambda';

export interface ApiRequest {
  method: string;
  path: string;
  pathParameters?: Record<string, string>;
  body?: unknown;
  headers?: Record<string, string>;
  token: string;
}

export function apiEvent(r: ApiRequest): APIGatewayProxyEventV2 {
  const body = r.body === undefined ? undefined : JSON.stringify(r.body);
  const routeKey = `${r.method} ${r.path}`;
  return {
    version: '2.0',
    routeKey,
    rawPath: r.path,
    rawQueryString: '',
    headers: {
      ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
      authorization: `Bearer ${r.token}`,
      ...r.headers,
    },
    ...(r.pathParameters ? { pathParameters: r.pathParameters } : {}),
    requestContext: {
      accountId: '123456789012',
      apiId: 'chaos',
      domainName: 'localhost',
      domainPrefix: 'localhost',
      http: { method: r.method, path: r.path, protocol: 'HTTP/1.1', sourceIp: '127.0.0.1', userAgent: 'chaos' },
      requestId: randomUUID(),
      routeKey,
      stage: '$default',
      time: new Date().toUTCString(),
      timeEpoch: Date.now(),
    },
    ...(body !== undefined ? { body } : {}),
    isBase64Encoded: false,
  };
}

export function eventBridgeEvent<D>(id: string, detailType: string, detail: D): EventBridgeEvent<string, D> {
  return {
    version: '0',
    id,
    'detail-type': detailType,
    source: 'circuitry',
    account: '123456789012',
    time: new Date().toISOString(),
    region: 'us-east-1',
    resources: [],
    detail,
  };
}

/** A Lambda context (typed as whatever the handler expects: its middlewares add their fields). */
export function lambdaContext<T extends Context = Context>(remainingMs: number, name: string): T {
  const deadline = Date.now() + remainingMs;
  const context: Context = {
    callbackWaitsForEmptyEventLoop: true,
    functionName: name,
    functionVersion: '$LATEST',
    invokedFunctionArn: `arn:aws:lambda:us-east-1:123456789012:function:${name}`,
    memoryLimitInMB: '512',
    awsRequestId: randomUUID(),
    logGroupName: `/aws/lambda/${name}`,
    logStreamName: 'chaos',
    getRemainingTimeInMillis: () => Math.max(0, deadline - Date.now()),
    done: () => {},
    fail: () => {},
    succeed: () => {},
  };
  return context as T;
}

export interface HttpResult {
  statusCode: number;
  body: Record<string, unknown>;
}

export function parseHttpResult(res: unknown): HttpResult {
  const r = res as { statusCode?: number; body?: string } | undefined;
  let body: Record<string, unknown> = {};
  try {
    body = r?.body ? (JSON.parse(r.body) as Record<string, unknown>) : {};
  } catch {
    body = { raw: String(r?.body).slice(0, 500) };
  }
  return { statusCode: r?.statusCode ?? 0, body };
}
