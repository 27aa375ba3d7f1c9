// The operator's view, on the real etcd and PostgreSQL: the `circuitry` CLI as its own process
// (status, drift, locks, redrive, import; --help and errors), the API's operator routes and its
// answers for real clients (GET /v2/health without a token, problem+json for unknown routes and
// methods with the request id as instance), and the unload dead-letter redrive.
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { mockClient } from 'aws-sdk-client-mock';
import { DeleteMessageCommand, ReceiveMessageCommand, SQSClient } from '@aws-sdk/client-sqs';
import { Invocation } from '../../lib/runtime.js';
import { propagate } from '../../lib/circuits/propagate.js';
import { requestUnload } from '../../lib/circuits/unload.js';
import { redrive, circuitIdOfDeadLetter, type DeadLetterMessage } from '../../lib/circuits/redrive.js';
import { sqsDeadLetters } from '../../lib/dead-letters.js';
import { readCircuit } from '../../lib/db/index.js';
import { acquire, epochKey, lockPrefix } from '../../lib/etcd/index.js';
import { workerRoot } from '../../lib/traefik/names.js';
import type { Publisher } from '../../lib/events.js';
import { isolatedRuntime, seedHealthCircuit, type IsolatedRuntime } from '../support/fake-backends.js';
import { route, seedCircuit } from '../support/rt.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const dropping: Publisher = { publish: async () => ({ published: 0 }) };

let iso: IsolatedRuntime;
let inv: Invocation;
beforeAll(async () => {
  iso = await isolatedRuntime();
  inv = new Invocation(iso.rt, 'test');
});
afterAll(async () => {
  await inv.close();
  await iso.close();
});

async function cli(args: string[], env: Record<string, string | undefined> = {}): Promise<{ code: number | null; stdout: string; stderr: string; json: () => Record<string, unknown> }> {
  const child = spawn(process.execPath, ['cli/circuitry.mjs', ...args], {
    cwd: ROOT,
    env: { ...process.env, ...iso.env, POWERTOOLS_LOG_LEVEL: 'ERROR', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const code = await new Promise<number | null>((r) => child.on('exit', (c) => r(c)));
  return { code, stdout, stderr, json: () => JSON.parse(stdout) as Record<string, unknown> };
}

describe('circuitry CLI', () => {
  it.each(['status', 'drift', 'locks', 'redrive', 'import', 'traefik-config'])('%s --help prints its usage and exits 0 without doing work', async (c) => {
    const r = await cli([c, '--help'], { DATABASE_URL: undefined, ETCD_ENDPOINTS: undefined });
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`^Usage: circuitry ${c}`));
  });

  it('traefik-config writes deploy/traefik/traefik.yml as committed, without the database, and names bad input (exit 2)', async () => {
    const args = ['traefik-config', '--worker', 'proxy-1', '--ports', '10200-10209', '--etcd-endpoints', 'https://etcd-1.internal:2379,https://etcd-2.internal:2379,https://etcd-3.internal:2379', '--traefik-root', 'traefik', '--etcd-username', 'traefik-proxy-1', '--etcd-ca', '/etc/traefik/etcd-ca.pem', '--etcd-cert', '/etc/traefik/etcd-client.pem', '--etcd-key', '/etc/traefik/etcd-client-key.pem'];
    const r = await cli(args, { DATABASE_URL: undefined, ETCD_ENDPOINTS: undefined });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(fs.readFileSync(`${ROOT}deploy/traefik/traefik.yml`, 'utf8'));
    const parsed = parseYaml(r.stdout) as { providers: { etcd: { rootKey: string; tls: Record<string, string> } }; entryPoints: Record<string, { address: string }> };
    expect(parsed.providers.etcd.rootKey).toBe('traefik/worker_proxy-1');
    expect(parsed.entryPoints.portproxy_10209).toEqual({ address: ':10209' });
    // ETCD_ENDPOINTS and TRAEFIK_ROOT are the defaults
    const env = await cli(['--json', 'traefik-config', '--worker', 'w1', '--ports', '10200', '--no-domain'], { ETCD_ENDPOINTS: 'http://127.0.0.1:2379', TRAEFIK_ROOT: 'edge' });
    expect(env.code).toBe(0);
    expect(env.json()).toMatchObject({ providers: { etcd: { endpoints: ['127.0.0.1:2379'], rootKey: 'edge/worker_w1' } }, entryPoints: { portproxy_10200: { address: ':10200' }, traefik: { address: ':8082' } } });
    expect((env.json().entryPoints as Record<string, unknown>).domainproxy).toBeUndefined();
    for (const [bad, message] of [
      [['--ports', '10300-10200'], /--ports.*must be a port or a range/],
      [['--ports', '10200-10209', '--worker', 'Proxy_1'], /--worker.*must match/],
      [['--ports', '10200-10209', '--domain-port', '10205'], /port 10205 is inside the frontend range/],
      [['--ports', '10200-10209', '--etcd-cert', '/c.pem'], /--etcd-cert and --etcd-key need --etcd-ca/],
      [['--ports', '10200-10209', '--etcd-endpoints', ''], /no etcd endpoint/],
    ] as Array<[string[], RegExp]>) {
      const b = await cli(['traefik-config', '--worker', 'w1', ...bad], { ETCD_ENDPOINTS: 'http://127.0.0.1:2379' });
      expect(b.code, bad.join(' ')).toBe(2);
      expect(b.stderr).toMatch(message);
      expect(b.stdout).toBe('');
    }
  });

  it('names what is wrong: a bad argument, a missing option, a missing variable (exit 2)', async () => {
    const bad = await cli(['locks', '--circuit', 'nope']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--circuit .*must be a circuit id/);
    const missing = await cli(['import']);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/required option '--worker <authority>'/);
    const authority = await cli(['import', '--worker', 'BAD!']);
    expect(authority.code).toBe(2);
    expect(authority.stderr).toMatch(/--worker/);
    const env = await cli(['status'], { DATABASE_URL: undefined });
    expect(env.code).toBe(2);
    expect(env.stderr).toMatch(/DATABASE_URL is required/);
  });

  it('status: circuits by status, sync lag, panic circuits and pending unloads', async () => {
    const serving = await seedCircuit(iso.rt, { routes: [route(1)] });
    const never = await seedCircuit(iso.rt, { routes: [route(2)] }); // committed, never published
    const panic = await seedHealthCircuit(iso.rt, { routes: [{ host: '127.0.0.1', port: 9 }] });
    const leaving = await seedCircuit(iso.rt, { routes: [route(3)] });
    for (const c of [serving, panic, leaving]) await propagate(inv, c.id);
    await requestUnload(iso.rt, dropping, leaving.id);
    const r = await cli(['status', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const s = r.json() as { circuits: { byStatus: Record<string, number> }; syncLag: { behind: number; sample: Array<{ circuitId: string }> }; panic: Array<{ circuitId: string }>; pendingUnloads: { count: number } };
    expect(s.circuits.byStatus).toMatchObject({ serving: 2, panic: 1, deleting: 1 });
    expect(s.syncLag.sample.map((x) => x.circuitId)).toContain(never.id);
    expect(s.panic.map((x) => x.circuitId)).toEqual([panic.id]);
    expect(s.pendingUnloads.count).toBe(1);
    const human = await cli(['status']);
    expect(human.stdout).toMatch(/pending unloads: 1/);
  });

  it('drift: reports what a sweep would change and what it leaves alone, writing nothing', async () => {
    const c = await seedCircuit(iso.rt, { routes: [route(4)] });
    await propagate(inv, c.id);
    const root = workerRoot(iso.rt.config.traefikRoot, c.worker);
    await iso.rt.etcd.delete().key(`${root}/http/routers/bai_router_${c.id}/rule`);
    await iso.rt.etcd.put(`${root}/http/routers/ops-static/rule`).value('Host(`ops.example.com`)');
    const rev = (await iso.rt.etcd.kv.range({ key: Buffer.from('\0') })).header.revision;
    const r = await cli(['drift', '--json', '--exit-code']);
    expect(r.code).toBe(1); // something to repair
    const d = r.json() as { repairs: Array<{ circuitId: string; reason: string }>; foreignKeys: { count: number; sample: string[] } };
    expect(d.repairs).toContainEqual(expect.objectContaining({ circuitId: c.id, reason: 'keys differ' }));
    expect(d.foreignKeys.sample).toContain(`${root}/http/routers/ops-static/rule`);
    expect((await iso.rt.etcd.kv.range({ key: Buffer.from('\0') })).header.revision).toBe(rev);
  });

  it('locks: the holder and the queue, with age and holder', async () => {
    const id = randomUUID();
    const opts = { prefix: lockPrefix(iso.rt.config.metaPrefix, id), epochKey: epochKey(iso.rt.config.metaPrefix), waitMs: 5000, rpcTimeoutMs: 1000, holder: 'test:holder' };
    const a = new Invocation(iso.rt);
    const b = new Invocation(iso.rt);
    try {
      const held = await acquire(await a.session(), opts);
      const queued = acquire(await b.session(), { ...opts, holder: 'test:waiter' });
      await new Promise((r) => setTimeout(r, 200));
      const r = await cli(['locks', '--json', '--circuit', id]);
      expect(r.code, r.stderr).toBe(0);
      const { locks } = r.json() as { locks: Array<{ position: number; holder: string; ageSeconds: number; ttlSeconds: number }> };
      expect(locks.map((l) => [l.position, l.holder])).toEqual([
        [0, 'test:holder'],
        [1, 'test:waiter'],
      ]);
      expect(locks[0]!.ttlSeconds).toBeGreaterThan(0);
      await held.lock.release(1000);
      await (await queued).lock.release(1000);
    } finally {
      await a.close();
      await b.close();
    }
  });

  it('redrive --all completes an unload whose event never came', async () => {
    const c = await seedCircuit(iso.rt, { routes: [route(5)] });
    await propagate(inv, c.id);
    await requestUnload(iso.rt, dropping, c.id);
    const r = await cli(['redrive', '--all', '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect((r.json() as { pending: { completed: number } }).pending.completed).toBeGreaterThanOrEqual(1);
    expect((await readCircuit(iso.rt.db, c.id))!.circuit.deletedAt).not.toBeNull();
  });
});

describe('the unload dead-letter queue', () => {
  it('completes the unloads its messages name and removes them; a message naming no circuit stays', async () => {
    const pending = await seedCircuit(iso.rt, { routes: [route(6)] });
    await propagate(inv, pending.id);
    const removed: string[] = [];
    const msg = (id: string, body: unknown): DeadLetterMessage => ({ id, body: JSON.stringify(body), remove: async () => void removed.push(id) });
    const queue = [
      msg('m1', { 'detail-type': 'CircuitUnloadRequested', source: 'circuitry', detail: { circuitId: pending.id } }),
      msg('m2', { version: '1.0', requestPayload: { detail: { circuitId: randomUUID() } } }), // a purged circuit
      msg('m3', { hello: 'world' }),
    ];
    const r = await redrive(inv, { olderThanSeconds: 3600, deadLetters: { receive: async (max) => queue.splice(0, max) } });
    expect(r.deadLetters).toMatchObject({ received: 3, completed: 2, removed: 2, unreadable: ['m3'], failed: [] });
    expect(removed.sort()).toEqual(['m1', 'm2']);
    expect((await readCircuit(iso.rt.db, pending.id))!.circuit.deletedAt).not.toBeNull();
    expect(circuitIdOfDeadLetter('not json')).toBeNull();
  });

  it('reads SQS and deletes what it completed', async () => {
    const sqs = mockClient(SQSClient);
    try {
      const id = randomUUID();
      sqs.on(ReceiveMessageCommand).resolvesOnce({ Messages: [{ MessageId: 'x', ReceiptHandle: 'rh-1', Body: JSON.stringify({ detail: { circuitId: id } }) }] });
      sqs.on(DeleteMessageCommand).resolves({});
      const source = sqsDeadLetters('https://sqs.eu-west-1.amazonaws.com/1/q', new SQSClient({ region: 'eu-west-1', credentials: { accessKeyId: 'a', secretAccessKey: 'b' } }));
      const [m] = await source.receive(10);
      expect(circuitIdOfDeadLetter(m!.body)).toBe(id);
      await m!.remove();
      expect(sqs.commandCalls(DeleteMessageCommand)[0]!.args[0].input).toEqual({ QueueUrl: 'https://sqs.eu-west-1.amazonaws.com/1/q', ReceiptHandle: 'rh-1' });
    } finally {
      sqs.restore();
    }
  });
});

describe('the API for real clients', () => {
  let api: (typeof import('../../functions/circuits-api.js'))['handler'];
  let call: (typeof import('../support/lambda.js'))['call'];
  const saved: Record<string, string | undefined> = {};
  beforeAll(async () => {
    for (const [k, v] of Object.entries(iso.env)) {
      saved[k] = process.env[k];
      process.env[k] = v;
    }
    const { resetConfigCache } = await import('../../lib/config.js');
    resetConfigCache();
    ({ handler: api } = await import('../../functions/circuits-api.js'));
    ({ call } = await import('../support/lambda.js'));
  });
  afterEach(async () => {});
  afterAll(async () => {
    const { getRuntime, closeRuntime } = await import('../../lib/runtime.js');
    await closeRuntime(getRuntime());
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
    (await import('../../lib/config.js')).resetConfigCache();
  });

  it('GET /v2/health answers without a token: reachability and latency, nothing else', async () => {
    const r = await call(api, { method: 'GET', path: '/v2/health', token: null });
    expect(r.statusCode).toBe(200);
    expect(r.json).toEqual({ status: 'ok', etcd: { ok: true, latencyMs: expect.any(Number) }, database: { ok: true, latencyMs: expect.any(Number) } });
  });

  it('every error is problem+json: an unknown route (404), a known path with another method (405 + Allow), with the request id as instance', async () => {
    const unknown = await call(api, { method: 'GET', path: '/v2/nothing-here' });
    expect(unknown.statusCode).toBe(404);
    expect(unknown.headers['content-type']).toBe('application/problem+json');
    expect(unknown.json.instance).toEqual(expect.any(String));
    const method = await call(api, { method: 'PATCH', path: `/v2/circuits/${randomUUID()}` });
    expect(method.statusCode).toBe(405);
    expect(method.headers.allow).toBe('GET, DELETE');
    const routes = await call(api, { method: 'GET', path: `/v2/circuits/${randomUUID()}/routes` });
    expect(routes.statusCode).toBe(405);
    expect(routes.headers.allow).toBe('PUT');
    const noToken = await call(api, { method: 'GET', path: '/v2/status', token: null });
    expect(noToken.statusCode).toBe(401);
  });

  it('GET /v2/status, /v2/locks and /v2/transitions answer the operator view', async () => {
    const status = await call(api, { method: 'GET', path: '/v2/status' });
    expect(status.statusCode).toBe(200);
    expect(status.json).toMatchObject({ circuits: { total: expect.any(Number) }, pendingUnloads: { count: expect.any(Number) } });
    const locks = await call(api, { method: 'GET', path: '/v2/locks' });
    expect(locks.statusCode).toBe(200);
    expect(locks.json.locks).toEqual(expect.any(Array));
    const bad = await call(api, { method: 'GET', path: '/v2/transitions', query: { limit: '0' } });
    expect(bad.statusCode).toBe(400);
    expect(bad.json.errors).toEqual([{ field: 'query.limit', message: 'out of range' }]);
    const t = await call(api, { method: 'GET', path: '/v2/transitions', query: { limit: '5' } });
    expect(t.statusCode).toBe(200);
    expect(t.json.transitions).toEqual(expect.any(Array));
  });
});
