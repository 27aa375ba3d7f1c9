// The events Lambda hands our functions (API Gateway HTTP API payload v2, EventBridge) and a
// Lambda context: one set of builders for the tests, the chaos workers and other tools.
import { randomUUID } from 'node:crypto';
import type { APIGatewayProxyEventV2, Context, EventBridgeEvent } from 'aws-lambda';

export interface ApiRequest {
  method: string;
  path: string;
  routeKey?: string;
  pathParameters?: Record<string, string>;
  query?: Record<string, string>;
  body?: unknown;
  /** Sent as is instead of JSON.stringify(body). */
  rawBody?: string;
  headers?: Record<string, string>;
  /** Bearer token; null or undefined sends no Authorization header. */
  token?: string | null;
}

export function apiEvent(r: ApiRequest, apiId = 'local'): APIGatewayProxyEventV2 {
  const body = r.rawBody ?? (r.body === undefined ? undefined : JSON.stringify(r.body));
  const routeKey = r.routeKey ?? `${r.method} ${r.path}`;
  return {
    version: '2.0',
    routeKey,
    rawPath: r.path,
    rawQueryString: new URLSearchParams(r.query ?? {}).toString(),
    headers: {
      ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
      ...(r.token === null || r.token === undefined ? {} : { authorization: `Bearer ${r.token}` }),
      ...r.headers,
    },
    ...(r.query ? { queryStringParameters: r.query } : {}),
    ...(r.pathParameters ? { pathParameters: r.pathParameters } : {}),
    requestContext: {
      accountId: '123456789012',
      apiId,
      domainName: 'localhost',
      domainPrefix: 'localhost',
      http: { method: r.method, path: r.path, protocol: 'HTTP/1.1', sourceIp: '127.0.0.1', userAgent: apiId },
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

export function eventBridgeEvent<D>(detailType: string, detail: D, opts: { id?: string; source?: string } = {}): EventBridgeEvent<string, D> {
  return {
    version: '0',
    id: opts.id ?? randomUUID(),
    'detail-type': detailType,
    source: opts.source ?? 'circuitry',
    account: '123456789012',
    time: new Date().toISOString(),
    region: 'us-east-1',
    resources: [],
    detail,
  };
}

/** A Lambda context (typed as whatever the handler expects: its middlewares add their fields). */
export function lambdaContext<T extends Context = Context>(remainingMs = 30_000, name = 'test', logStreamName = 'local'): T {
  const deadline = Date.now() + remainingMs;
  const context: Context = {
    callbackWaitsForEmptyEventLoop: true,
    functionName: name,
    functionVersion: '$LATEST',
    invokedFunctionArn: `arn:aws:lambda:us-east-1:123456789012:function:${name}`,
    memoryLimitInMB: '512',
    awsRequestId: randomUUID(),
    logGroupName: `/aws/lambda/${name}`,
    logStreamName,
    getRemainingTimeInMillis: () => Math.max(0, deadline - Date.now()),
    done: () => {},
    fail: () => {},
    succeed: () => {},
  };
  return context as T;
}
