// A loopback stand-in for EventBridge in the local stack: accepts PutEvents from the AWS SDK
// (EVENTBRIDGE_ENDPOINT points here), delivers CircuitUnloadRequested to the `unload` function
// the way the deployed rule does (asynchronously, retried) and HealthSweepRequested to
// `health-sweeper` (asynchronously, not retried), keeps recent events for the demo,
// and fires `scheduled-health` on request (serverless-offline itself runs its 1-minute schedule).
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { randomUUID } from 'node:crypto';

export interface LocalEvent {
  id: string;
  source: string;
  'detail-type': string;
  detail: unknown;
  time: string;
}

export interface LocalEventBridge {
  url: string;
  port: number;
  recent(): LocalEvent[];
  fireSchedule(): Promise<unknown>;
  close(): Promise<void>;
}

type Invoke = (fn: string, event: unknown, async: boolean) => Promise<unknown>;

const readBody = (req: IncomingMessage): Promise<string> =>
  new Promise((resolve, reject) => {
    let s = '';
    req.setEncoding('utf8');
    req.on('data', (d: string) => {
      s += d;
      if (s.length > 1_048_576) req.destroy(new Error('body too large'));
    });
    req.on('end', () => resolve(s));
    req.on('error', reject);
  });

export async function startLocalEventBridge(opts: {
  invoke: Invoke;
  log: (line: string) => void;
}): Promise<LocalEventBridge> {
  const events: LocalEvent[] = [];
  const deliver = async (e: LocalEvent) => {
    const lambdaEvent = { version: '0', account: '000000000000', region: 'local', resources: [], ...e };
    for (let attempt = 1; attempt <= 3; attempt++) {
      try {
        await opts.invoke('unload', lambdaEvent, false);
        return;
      } catch (err) {
        opts.log(`eventbridge: delivery of ${e.id} to unload failed (attempt ${attempt}): ${(err as Error).message}`);
        await new Promise((r) => setTimeout(r, 500 * attempt));
      }
    }
  };
  // On demand: exactly one sweep pass (the minute schedule, run by serverless-offline, loops).
  const fireSchedule = () =>
    opts.invoke(
      'scheduled-health',
      { version: '0', id: randomUUID(), 'detail-type': 'Scheduled Event', source: 'aws.events', time: new Date().toISOString(), detail: { singlePass: true } },
      false,
    );

  const server: Server = createServer((req, res) => {
    void (async () => {
      try {
        if (req.method === 'POST' && req.headers['x-amz-target'] === 'AWSEvents.PutEvents') {
          const body = JSON.parse(await readBody(req)) as { Entries?: Array<{ Source?: string; DetailType?: string; Detail?: string }> };
          const entries = (body.Entries ?? []).map((en) => {
            const e: LocalEvent = {
              id: randomUUID(),
              source: en.Source ?? '',
              'detail-type': en.DetailType ?? '',
              detail: JSON.parse(en.Detail ?? '{}') as unknown,
              time: new Date().toISOString(),
            };
            events.push(e);
            if (events.length > 200) events.shift();
            opts.log(`eventbridge: ${e['detail-type']} ${JSON.stringify(e.detail)}`);
            if (e['detail-type'] === 'CircuitUnloadRequested') void deliver(e);
            if (e['detail-type'] === 'HealthSweepRequested') {
              const lambdaEvent = { version: '0', account: '000000000000', region: 'local', resources: [], ...e };
              void opts.invoke('health-sweeper', lambdaEvent, true).catch((err: Error) => opts.log(`eventbridge: health-sweeper not started: ${err.message}`));
            }
            return { EventId: e.id };
          });
          res.writeHead(200, { 'content-type': 'application/x-amz-json-1.1' });
          res.end(JSON.stringify({ FailedEntryCount: 0, Entries: entries }));
        } else if (req.method === 'GET' && req.url === '/_local/events') {
          res.writeHead(200, { 'content-type': 'application/json' });
          res.end(JSON.stringify(events));
        } else if (req.method === 'POST' && req.url === '/_local/fire-schedule') {
          const result = await fireSchedule();
          res.writeHead(200, { 'content-type': 'application/json' });
          res.end(JSON.stringify(result ?? null));
        } else {
          res.writeHead(404).end();
        }
      } catch (err) {
        res.writeHead(500, { 'content-type': 'text/plain' }).end((err as Error).message);
      }
    })();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    recent: () => [...events],
    fireSchedule,
    close: () =>
      new Promise((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}
