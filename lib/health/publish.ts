// RouteHealthChanged events onto the EventBridge publisher (batches of 10, failed entries retried).
import { ROUTE_HEALTH_CHANGED, type Publisher } from '../events.js';
import type { PublishHealthEvents } from './events.js';

export function healthEventPublisher(publisher: Publisher): PublishHealthEvents {
  return async (events) => {
    await publisher.publish(events.map((e) => ({ detailType: ROUTE_HEALTH_CHANGED, detail: { ...e } })));
  };
}
