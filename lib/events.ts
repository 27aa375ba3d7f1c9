// Publishing to EventBridge: batches of at most 10 entries (PutEvents' limit), and entries the
// service reports as failed are retried with backoff; what still fails is reported, not lost
// silently. Source and bus come from configuration.
// The AWS SDK is loaded on the first publish, not at cold start: most invocations publish nothing
// (in circuits-api only DELETE does), and its import is a large part of a cold start.
import type { EventBridgeClient, PutEventsRequestEntry } from '@aws-sdk/client-eventbridge';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Config } from './config.js';
import { logger, metrics, MetricUnit } from './observability.js';

export const CIRCUIT_UNLOAD_REQUESTED = 'CircuitUnloadRequested';
export const ROUTE_HEALTH_CHANGED = 'RouteHealthChanged';
/** scheduled-health asks for one more sweeper invocation (the health-sweeper function's rule). */
export const HEALTH_SWEEP_REQUESTED = 'HealthSweepRequested';

export interface OutgoingEvent {
  detailType: string;
  detail: Record<string, unknown>;
}

export class PublishError extends Error {
  override name = 'PublishError';
  constructor(
    message: string,
    readonly failed: OutgoingEvent[],
  ) {
    super(message);
  }
}

export interface Publisher {
  publish(events: readonly OutgoingEvent[]): Promise<{ published: number }>;
}

const BATCH = 10;
const ATTEMPTS = 4;

const loadSdk = () => import('@aws-sdk/client-eventbridge');

export function createPublisher(config: Pick<Config, 'eventBusName' | 'eventSource' | 'eventBridgeEndpoint'>, client?: EventBridgeClient): Publisher {
  let sdk: Promise<{ client: EventBridgeClient; PutEventsCommand: typeof import('@aws-sdk/client-eventbridge').PutEventsCommand }> | undefined;
  const getSdk = () =>
    (sdk ??= loadSdk().then(
      (m) => ({
        client:
          client ??
          new m.EventBridgeClient({
            ...(config.eventBridgeEndpoint !== undefined ? { endpoint: config.eventBridgeEndpoint } : {}),
            maxAttempts: 3,
          }),
        PutEventsCommand: m.PutEventsCommand,
      }),
      (err: unknown) => {
        sdk = undefined;
        throw err;
      },
    ));
  const toEntry = (e: OutgoingEvent): PutEventsRequestEntry => ({
    EventBusName: config.eventBusName,
    Source: config.eventSource,
    DetailType: e.detailType,
    Detail: JSON.stringify(e.detail),
  });
  return {
    async publish(events) {
      if (events.length === 0) return { published: 0 };
      const { client, PutEventsCommand } = await getSdk();
      let published = 0;
      const failed: OutgoingEvent[] = [];
      for (let i = 0; i < events.length; i += BATCH) {
        let pending = events.slice(i, i + BATCH);
        for (let attempt = 1; pending.length > 0; attempt++) {
          const res = await client.send(new PutEventsCommand({ Entries: pending.map(toEntry) }));
          const retry: OutgoingEvent[] = [];
          (res.Entries ?? []).forEach((r, j) => {
            if (r.ErrorCode !== undefined || r.EventId === undefined) retry.push(pending[j]!);
          });
          // An Entries array shorter than the request is treated as "the rest failed".
          for (let j = res.Entries?.length ?? 0; j < pending.length; j++) retry.push(pending[j]!);
          published += pending.length - retry.length;
          if (retry.length > 0 && attempt >= ATTEMPTS) {
            failed.push(...retry);
            break;
          }
          if (retry.length > 0) await sleep(50 * 2 ** attempt);
          pending = retry;
        }
      }
      if (published > 0) metrics.addMetric('PublishedEvents', MetricUnit.Count, published);
      if (failed.length > 0) {
        logger.error('events not published after retries', { failed: failed.length });
        throw new PublishError(`${failed.length} of ${events.length} events were not published`, failed);
      }
      return { published };
    },
  };
}

let shared: Publisher | undefined;
export function getPublisher(config: Config): Publisher {
  shared ??= createPublisher(config);
  return shared;
}
