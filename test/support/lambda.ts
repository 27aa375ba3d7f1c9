// Builders for the events Lambda hands our functions: API Gateway HTTP API (payload v2) and
// EventBridge, plus a Lambda context.
import { randomUUID } from 'node:crypto';
import type { APIGatewayProxyEventV2, Context, EventBridgeEvent } from 'aws-lambda';

export const TOKEN = 'test-token-0123456789abcdef';

export interface ApiRequest {
  method: string;
  path: string;
  routeKey?: string;
  pathParameters?: Record<string, string>;
  query?: Record<string, string>;
  body?: unknown;
  rawBody?: string;
  headers?: Record<string, string>;
  token?: string | null;
}

export function apiEvent(r: ApiRequest): APIGatewayProxyEventV2 {
  const body = r.rawBody ?? (r.body === undefined ? undefined : JSON.stringify(r.body));
  const headers: Record<string, string> = {
    ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
    ...(r.token === null ? {} : { authorization: `Bearer ${r.token ?? TOKEN}` }),
    ...r.headers,
  };
  return {
    version: '2.0',
    routeKey: r.routeKey ?? `${r.method} ${r.path}`,
    rawPath: r.path,
    rawQueryString: new URLSearchParams(r.query ?? {}).toString(),
    headers,
    ...(r.query ? { queryStringParameters: r.query } : {}),
    ...(r.pathParameters ? { pathParameters: r.pathParameters } : {}),
    requestContext: {
      accountId: '123456789012',
      apiId: 'local',
      domainName: 'localhost',
      domainPrefix: 'localhost',
      http: { method: r.method, path: r.path, protocol: 'HTTP/1.1', sourceIp: '127.0.0.1', userAgent: 'test' },
      requestId: randomUUID(),
      routeKey: r.routeKey ?? `${r.method} ${r.path}`,
      stage: '$default',
      time: new Date().toUTCString(),
      timeEpoch: Date.now(),
    },
    ...(body !== undefined ? { body } : {}),
    isBase64Encoded: false,
  };
}

export function eventBridgeEvent<D>(detailType: string, detail: D): EventBridgeEvent<string, D> {
  return {
    version: '0',
    id: randomUUID(),
    'detail-type': detailType,
    source: 'circuitry.test',
    account: '123456789012',
    time: new Date().toISOString(),
    region: 'us-east-1',
    resources: [],
    detail,
  };
}

export function lambdaContext(remainingMs = 30_000, name = 'test'): Context {
  const deadline = Date.now() + remainingMs;
  return {
    callbackWaitsForEmptyEventLoop: true,
    functionName: name,
    functionVersion: '$LATEST',
    invokedFunctionArn: `arn:aws:lambda:us-east-1:123456789012:function:${name}`,
    memoryLimitInMB: '512',
    awsRequestId: randomUUID(),
    logGroupName: `/aws/lambda/${name}`,
    logStreamName: 'test',
    getRemainingTimeInMillis: () => Math.max(0, deadline - Date.now()),
    done: () => {},
    fail: () => {},
    succeed: () => {},
  };
}

export interface ApiResponse {
  statusCode: number;
  headers: Record<string, string>;
  json: Record<string, unknown> & { errors?: Array<{ field: string; message: string }> };
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Handler = (event: any, context: any, ...rest: any[]) => Promise<unknown>;

export async function call(handler: Handler, r: ApiRequest): Promise<ApiResponse> {
  const res = (await handler(apiEvent(r), lambdaContext())) as { statusCode: number; headers?: Record<string, string>; body?: string };
  return { statusCode: res.statusCode, headers: res.headers ?? {}, json: res.body ? JSON.parse(res.body) : {} };
}
