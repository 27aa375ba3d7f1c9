// End to end through serverless-offline over HTTP: the local stack (`npm start`) as its own
// process tree, driven with real HTTP requests, then stopped with SIGINT like Ctrl-C.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Etcd3 } from 'etcd3';
import { enc, prefixEnd } from '../../lib/etcd/keys.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'circuitry-offline-test-'));
const stateFile = join(dir, 'state.json');
let stack: ChildProcess;
let output = '';
let state: { apiUrl: string; token: string; etcdEndpoint: string; traefikRoot: string };
let etcd: Etcd3;

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const p = (s.address() as { port: number }).port;
  await new Promise((r) => s.close(r));
  return p;
}

beforeAll(async () => {
  const [httpPort, lambdaPort] = [await freePort(), await freePort()];
  stack = spawn(process.execPath, ['--import', 'tsx', `${ROOT}harness/devstack/stack.ts`, '--http-port', String(httpPort), '--lambda-port', String(lambdaPort)], {
    cwd: ROOT,
    env: { ...process.env, LOCAL_STACK_STATE: stateFile, API_TOKENS: 'offline-test-token-0123456789', POWERTOOLS_LOG_LEVEL: 'WARN', TRAEFIK_ROOT: 'traefik', META_PREFIX: 'circuitry' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  stack.stdout!.on('data', (d: Buffer) => (output += d.toString()));
  stack.stderr!.on('data', (d: Buffer) => (output += d.toString()));
  for (let i = 0; !existsSync(stateFile); i++) {
    if (stack.exitCode !== null || i > 900) throw new Error(`local stack did not start:\n${output.slice(-3000)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  state = JSON.parse(readFileSync(stateFile, 'utf8'));
  etcd = new Etcd3({ hosts: state.etcdEndpoint });
}, 120_000);

afterAll(async () => {
  etcd?.close();
  if (stack.exitCode === null) {
    stack.kill('SIGINT');
    await new Promise((r) => setTimeout(r, 8000).unref() && stack.once('exit', r));
    if (stack.exitCode === null) stack.kill('SIGKILL');
  }
  rmSync(dir, { recursive: true, force: true });
}, 30_000);

async function http(method: string, path: string, body?: unknown, token = state.token) {
  const res = await fetch(`${state.apiUrl}${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  const text = await res.text();
  return { status: res.status, type: res.headers.get('content-type'), json: text ? JSON.parse(text) : null };
}

describe('serverless-offline end to end', () => {
  it('serves the API over HTTP, publishes to etcd, and unloads through the local EventBridge', async () => {
    expect((await http('GET', '/v2/circuits', undefined, 'wrong-token-0123456789')).status).toBe(401);
    const worker = `e2e-${randomUUID().slice(0, 6)}`;
    expect((await http('PUT', `/v2/workers/${worker}`, { hostname: 'proxy.example.com' })).status).toBe(201);
    const created = await http('POST', '/v2/circuits', {
      worker,
      protocol: 'http',
      appMode: 'interactive',
      frontend: { mode: 'port', port: 10205 },
      routes: [{ routeId: randomUUID(), sessionId: randomUUID(), host: '127.0.0.1', port: 30001, trafficRatio: 1 }],
    });
    expect(created.status).toBe(201);
    const id = created.json.id as string;
    const root = `${state.traefikRoot}/worker_${worker}/`;
    const keys = async () => (await etcd.kv.range({ key: enc(root), range_end: prefixEnd(enc(root)), keys_only: true })).kvs.length;
    expect(await keys()).toBeGreaterThan(0);

    const put = await http('PUT', `/v2/circuits/${id}/routes`, { routes: [] });
    expect(put.status).toBe(200);
    expect(put.json).toMatchObject({ generation: 2, applied: true });
    const bad = await http('PUT', `/v2/circuits/${id}/routes`, { routes: 'x' });
    expect(bad.status).toBe(400);
    expect(bad.type).toBe('application/problem+json');

    await http('PUT', `/v2/circuits/${id}/routes`, { routes: [{ routeId: randomUUID(), sessionId: randomUUID(), host: '127.0.0.1', port: 30002 }] });
    expect((await http('DELETE', `/v2/circuits/${id}`)).status).toBe(202);
    for (let i = 0; i < 100 && (await keys()) > 0; i++) await new Promise((r) => setTimeout(r, 100));
    expect(await keys()).toBe(0);
    const after = await http('GET', `/v2/circuits/${id}`);
    expect(after.json.deletedAt).not.toBeNull();
  });

  it('stops everything on SIGINT', async () => {
    const pid = stack.pid!;
    stack.kill('SIGINT');
    const code = await new Promise<number | null>((r) => stack.once('exit', r));
    expect(code).toBe(0);
    expect(existsSync(stateFile)).toBe(false);
    expect(() => process.kill(pid, 0)).toThrow();
    const alive = await fetch(state.apiUrl).then(() => true, () => false);
    expect(alive).toBe(false);
  }, 30_000);
});
