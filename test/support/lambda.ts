// The tests' Lambda events: the shared builders (harness/devstack/lambda-events.ts) with the test
// token and source as defaults, plus a helper that calls an HTTP handler and parses its answer.
import type { APIGatewayProxyEventV2, Context, EventBridgeEvent } from 'aws-lambda';
import {
  apiEvent as buildApiEvent,
  eventBridgeEvent as buildEventBridgeEvent,
  lambdaContext as buildLambdaContext,
  type ApiRequest,
} from '../../harness/devstack/lambda-events.js';

export const TOKEN = 'test-token-0123456789abcdef';

export type { ApiRequest };

/** An API Gateway v2 event carrying the test token unless `token` is given (null: no Authorization header). */
export const apiEvent = (r: ApiRequest): APIGatewayProxyEventV2 => buildApiEvent({ ...r, token: r.token === undefined ? TOKEN : r.token });

export const eventBridgeEvent = <D>(detailType: string, detail: D): EventBridgeEvent<string, D> =>
  buildEventBridgeEvent(detailType, detail, { source: 'circuitry.test' });

export const lambdaContext = (remainingMs = 30_000, name = 'test'): Context => buildLambdaContext(remainingMs, name);

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
