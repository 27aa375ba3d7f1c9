// The scheduled-health Lambda handler, driven with an EventBridge schedule event, on its own
// database (a sweep claims every due circuit of its database). EventBridge is mocked.
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mockClient } from 'aws-sdk-client-mock';
import { EventBridgeClient, PutEventsCommand } from '@aws-sdk/client-eventbridge';
import { isolatedRuntime, seedHealthCircuit, startBackends, type Backend, type IsolatedRuntime } from '../support/fake-backends.js';
import { keysUnder } from '../support/rt.js';
import { eventBridgeEvent, lambdaContext } from '../support/lambda.js';
import { workerRoot } from '../../lib/traefik/names.js';

let iso: IsolatedRuntime;
let backends: Backend[];
const eb = mockClient(EventBridgeClient);
eb.on(PutEventsCommand).callsFake((input: { Entries: unknown[] }) => ({ FailedEntryCount: 0, Entries: input.Entries.map(() => ({ EventId: randomUUID() })) }));

beforeAll(async () => {
  iso = await isolatedRuntime();
  Object.assign(process.env, iso.env, { AWS_REGION: 'us-east-1', AWS_ACCESS_KEY_ID: 'test', AWS_SECRET_ACCESS_KEY: 'test', POWERTOOLS_LOG_LEVEL: 'ERROR' });
  backends = await startBackends(2);
});
afterAll(async () => {
  eb.restore();
  const { getRuntime, closeRuntime } = await import('../../lib/runtime.js');
  await closeRuntime(getRuntime());
  await Promise.all(backends.map((b) => b.close()));
  await iso.close();
});

describe('scheduled-health handler', () => {
  it('runs one pass when less than an interval remains, takes a failing route out and publishes RouteHealthChanged', async () => {
    const { handler } = await import('../../functions/scheduled-health.js');
    const c = await seedHealthCircuit(iso.rt, {
      routes: backends.map((b) => ({ host: b.host, port: b.port })),
      healthCheck: { unhealthyThreshold: 1, healthyThreshold: 1, intervalSeconds: 30 },
    });
    const root = `${workerRoot(iso.rt.config.traefikRoot, c.worker)}/`;
    const tick = () => handler(eventBridgeEvent('Scheduled Event', {}) as never, lambdaContext(8000, 'scheduled-health')) as Promise<{ passes: number; statusChanges: number }>;

    const first = await tick();
    expect(first.passes).toBe(1);
    expect(first.statusChanges).toBe(2);
    const urls = async () => [...(await keysUnder(iso.rt.etcd, root))].filter(([k]) => k.endsWith('/url')).map(([, v]) => v).sort();
    expect(await urls()).toEqual(backends.map((b) => `http://${b.host}:${b.port}/`).sort());

    backends[1]!.set(500);
    await iso.rt.db.query('UPDATE circuits SET next_probe_at = now() WHERE id = $1', [c.id]);
    const second = await tick();
    expect(second.statusChanges).toBe(1);
    expect(await urls()).toEqual([`http://${backends[0]!.host}:${backends[0]!.port}/`]);

    const detail = eb
      .commandCalls(PutEventsCommand)
      .flatMap((call) => call.args[0].input.Entries ?? [])
      .filter((e) => e.DetailType === 'RouteHealthChanged')
      .map((e) => JSON.parse(e.Detail!) as { routeId: string; from: string; to: string });
    expect(detail.filter((d) => d.to === 'healthy')).toHaveLength(2);
    expect(detail.filter((d) => d.from === 'healthy' && d.to === 'unhealthy')).toHaveLength(1);
  });
});
