// The chaos workers' Lambda events: the shared builders (harness/devstack/lambda-events.ts) with the
// harness's call shapes, plus parsing of an HTTP handler's result.
import type { APIGatewayProxyEventV2, Context, EventBridgeEvent } from 'aws-lambda';
import {
  apiEvent as buildApiEvent,
  eventBridgeEvent as buildEventBridgeEvent,
  lambdaContext as buildLambdaContext,
  type ApiRequest as SharedApiRequest,
} from '../devstack/lambda-events.js';

export interface ApiRequest extends SharedApiRequest {
  token: string;
}

export const apiEvent = (r: ApiRequest): APIGatewayProxyEventV2 => buildApiEvent(r, 'chaos');

export const eventBridgeEvent = <D>(id: string, detailType: string, detail: D): EventBridgeEvent<string, D> =>
  buildEventBridgeEvent(detailType, detail, { id, source: 'circuitry' });

/** A Lambda context (typed as whatever the handler expects: its middlewares add their fields). */
export const lambdaContext = <T extends Context = Context>(remainingMs: number, name: string): T => buildLambdaContext<T>(remainingMs, name, 'chaos');

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
