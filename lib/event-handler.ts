// The middy engine for event-driven functions (EventBridge rules and schedules): logging,
// metrics, one Invocation per event, and no waiting for the event loop to drain (open gRPC
// channels and WebSockets keep it busy by design).
import middy from '@middy/core';
import doNotWaitForEmptyEventLoop from '@middy/do-not-wait-for-empty-event-loop';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import { logMetrics } from '@aws-lambda-powertools/metrics/middleware';
import type { Context } from 'aws-lambda';
import { Invocation, getRuntime } from './runtime.js';
import { logger, metrics } from './observability.js';

export interface EventContext extends Context {
  inv: Invocation;
}

export function eventHandler<E, R>(fn: (event: E, context: EventContext) => Promise<R>) {
  return middy<E, R, Error, EventContext>()
    .use(doNotWaitForEmptyEventLoop({ runOnError: true }))
    .use(injectLambdaContext(logger, { resetKeys: true }))
    .use(logMetrics(metrics, { captureColdStartMetric: true })) // a ColdStart metric (dimension function_name) on each cold start
    .use({
      before: (req) => {
        req.context.inv = new Invocation(getRuntime(), `${req.context.functionName ?? 'local'}:${req.context.awsRequestId ?? ''}`);
      },
      after: async (req) => {
        req.context.inv.finish();
      },
      onError: async (req) => {
        req.context.inv?.finish();
      },
    })
    .handler(fn);
}
