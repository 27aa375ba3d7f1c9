// One OS process running the real health-sweeper function (functions/health-sweeper.ts) on the
// event given as its argument, as Lambda would after the dispatcher's HealthSweepRequested.
//   health-sweeper-fn '<EventBridge event JSON>'
// Prints {"ready":true}, waits for "go" on stdin (so several sweepers start together), then
// prints the handler's answer as one JSON line.
import { lambdaContext } from '../../../harness/devstack/lambda-events.js';
import { handler } from '../../../functions/health-sweeper.js';
import { getRuntime, closeRuntime } from '../../../lib/runtime.js';
import { closeProbers } from '../../../lib/health/probers.js';
import { waitForGo } from './wait-for-go.js';

const out = (o: unknown) => process.stdout.write(JSON.stringify(o) + '\n');

async function main(): Promise<void> {
  const event = JSON.parse(process.argv[2] ?? 'null') as unknown;
  await getRuntime().db.query('SELECT 1');
  out({ ready: true });
  await waitForGo();
  // Less time left than one health-check interval: exactly one pass.
  const result = await handler(event as never, lambdaContext(1_000, 'health-sweeper') as never);
  out({ result });
}

main()
  .catch((err) => {
    process.stderr.write(`${(err as Error).stack}\n`);
    process.exitCode = 1;
  })
  .finally(async () => {
    closeProbers();
    await closeRuntime(getRuntime());
  });
