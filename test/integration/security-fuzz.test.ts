// Fuzzing the HTTP functions in CI: >= 5,000 generated invalid requests, in-process with
// API Gateway v2 events, against the real etcd and PostgreSQL. Every one must be answered 4xx
// with a problem body, and nothing may change (etcd revision, database checksum, EventBridge,
// Object.prototype) across each batch. The generators and the checks live in harness/fuzz/run.ts,
// which `npm run fuzz -- --cases N` runs for longer on its own services.
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const TOKEN = `fuzz-${randomUUID()}`;
const tag = randomUUID().slice(0, 8);
Object.assign(process.env, {
  API_TOKENS: TOKEN,
  TRAEFIK_ROOT: `traefik-fz${tag}`,
  META_PREFIX: `circuitry-fz${tag}`,
  AWS_REGION: 'us-east-1',
  AWS_ACCESS_KEY_ID: 'test',
  AWS_SECRET_ACCESS_KEY: 'test',
  POWERTOOLS_LOG_LEVEL: 'CRITICAL',
  POWERTOOLS_METRICS_DISABLED: 'true',
});

const { createHarness, runFuzz, formatReport } = await import('../../harness/fuzz/run.js');

/** CI runs a fixed seed (reproducible); FUZZ_SEED / FUZZ_CASES explore further. */
const SEED = Number(process.env.FUZZ_SEED ?? 20_260_701);
const CASES = Number(process.env.FUZZ_CASES ?? 20_000);

let h: Awaited<ReturnType<typeof createHarness>>;
beforeAll(async () => {
  h = await createHarness({ token: TOKEN });
});
afterAll(async () => {
  await h?.close();
});

describe('fuzzing circuits-api and update-routes', () => {
  it('the batch check would see a change (a valid request changes the snapshot)', async () => {
    const { toEvent } = await import('../../harness/fuzz/run.js');
    const before = await h.snapshot();
    const id = h.fixtures.circuitId;
    const body = JSON.stringify({ routes: [{ routeId: randomUUID(), sessionId: randomUUID(), host: '127.0.0.9', port: 30009, trafficRatio: 1 }] });
    const res = (await h.handlers['update-routes'](
      toEvent({ cls: 'valid', fn: 'update-routes', method: 'PUT', path: `/v2/circuits/${id}/routes`, pathParameters: { id }, headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' }, body }),
      { getRemainingTimeInMillis: () => 15_000, awsRequestId: randomUUID(), functionName: 'fuzz' } as never,
    )) as { statusCode: number };
    expect(res.statusCode).toBe(200);
    expect(await h.snapshot()).not.toBe(before);
  });

  it(`${CASES} invalid requests: all 4xx problems, nothing changed`, { timeout: 120_000 }, async () => {
    const report = await runFuzz(h, { cases: CASES, seed: SEED, batch: 300 });
    const text = formatReport(report);
    console.log(text);
    expect(report.failures, text).toEqual([]);
    expect(report.cases).toBe(CASES);
    // Every attack class was exercised.
    for (const cls of ['auth', 'bad-value', 'wrong-type', 'huge-unicode', 'missing-field', 'unknown-field', 'proto-pollution', 'duplicate-key', 'too-deep', 'malformed-json', 'content-type', 'body-size', 'base64', 'extra-headers', 'if-match', 'path-param', 'method-path', 'method-body', 'query']) {
      expect(report.byClass[cls]?.cases ?? 0, cls).toBeGreaterThan(20);
    }
  });
});
