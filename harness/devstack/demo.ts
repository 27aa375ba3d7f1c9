// npm run demo: against the running local stack (npm start), walk through a circuit's life and
// show what Traefik would read from etcd at each step.
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { Etcd3 } from 'etcd3';
import { enc, kvKey, kvValue, prefixEnd } from '../../lib/etcd/index.js';

const STATE_FILE = process.env.LOCAL_STACK_STATE ?? fileURLToPath(new URL('../../.tmp/local-stack.json', import.meta.url));
interface StackState {
  apiUrl: string;
  token: string;
  etcdEndpoint: string;
  traefikRoot: string;
  eventBridgeUrl: string;
}
if (process.argv.includes('--help') || process.argv.includes('-h')) {
  console.log(`usage: npm run demo
  Against the running local stack (npm start, in another terminal): registers a worker, starts
  three backends on loopback, creates a circuit with them as weighted routes, health-checks them,
  stops one and lets the sweep drop it, deletes the circuit; prints the Traefik keys in etcd after
  each step.
  Environment: LOCAL_STACK_STATE (default .tmp/local-stack.json, written by npm start).`);
  process.exit(0);
}
let state: StackState;
try {
  state = JSON.parse(readFileSync(STATE_FILE, 'utf8')) as StackState;
} catch {
  console.error('demo: the local stack is not running. Start it first with `npm start` (in another terminal).');
  process.exit(2);
}

const etcd = new Etcd3({ hosts: state.etcdEndpoint });
const backends: Server[] = [];
let stepNo = 0;
const step = (title: string) => console.log(`\n\x1b[1m[${++stepNo}] ${title}\x1b[0m`);
const info = (line: string) => console.log(`    ${line}`);

async function api(method: string, path: string, body?: unknown): Promise<{ status: number; json: Record<string, unknown> }> {
  const res = await fetch(`${state.apiUrl}${path}`, {
    method,
    headers: { authorization: `Bearer ${state.token}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  const text = await res.text();
  const json = text ? (JSON.parse(text) as Record<string, unknown>) : {};
  if (res.status >= 400) throw new Error(`${method} ${path} -> ${res.status}: ${json.detail ?? text}`);
  return { status: res.status, json };
}

function startBackend(name: string): Promise<{ server: Server; port: number }> {
  const server = createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end(req.url === '/health' ? 'ok' : `hello from ${name}\n`);
  });
  backends.push(server);
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({ server, port: (server.address() as { port: number }).port })));
}

async function printKeys(root: string, circuitId: string): Promise<Map<string, string>> {
  const r = await etcd.kv.range({ key: enc(`${root}/`), range_end: prefixEnd(enc(`${root}/`)) });
  const rows = r.kvs.map((kv) => [kvKey(kv).slice(root.length + 1), kvValue(kv)] as const).filter(([k]) => k.includes(circuitId));
  if (rows.length === 0) {
    info('(no keys for this circuit under the worker root)');
    return new Map();
  }
  const width = Math.max(...rows.map(([k]) => k.length));
  info(`${('key (under ' + root + '/)').padEnd(width)}  value`);
  for (const [k, v] of rows) info(`${k.padEnd(width)}  ${v}`);
  return new Map(rows);
}

const servers = (keys: Map<string, string>) => [...keys].filter(([k]) => k.endsWith('/url')).map(([, v]) => v);

async function sweep(label: string) {
  info(`firing scheduled-health (${label})…`);
  await fetch(`${state.eventBridgeUrl}/_local/fire-schedule`, { method: 'POST' });
}

async function main() {
  const worker = 'demo-worker';
  const root = `${state.traefikRoot}/worker_${worker}`;

  step('Register a worker (one Traefik reads its own root in etcd)');
  await api('PUT', `/v2/workers/${worker}`, { hostname: 'proxy.localhost', wildcardDomain: 'apps.localhost', tls: false });
  info(`worker ${worker}: Traefik root ${root}`);

  step('Start three fake model backends on 127.0.0.1');
  const b = await Promise.all(['replica-a', 'replica-b', 'replica-c'].map(startBackend));
  b.forEach((x, i) => info(`replica-${'abc'[i]} on 127.0.0.1:${x.port}`));

  step('Create a circuit with the three backends as weighted routes');
  const subdomain = `demo-${randomUUID().slice(0, 6)}`;
  const created = await api('POST', '/v2/circuits', {
    worker,
    protocol: 'http',
    appMode: 'inference',
    frontend: { mode: 'wildcard', subdomain },
    healthCheck: { path: '/health', intervalSeconds: 1, timeoutMs: 500, unhealthyThreshold: 1, healthyThreshold: 1, initialDelaySeconds: 0 },
    routes: b.map((x, i) => ({ routeId: randomUUID(), sessionId: randomUUID(), host: '127.0.0.1', port: x.port, trafficRatio: [1, 0.5, 0.25][i] })),
  });
  const id = created.json.id as string;
  info(`circuit ${id} (generation ${created.json.generation}) → https://${subdomain}.apps.localhost`);
  info('no route has been probed yet, so all three are listed (panic mode) with a Traefik healthCheck:');
  await printKeys(root, id);

  step('Health-check the routes');
  await sweep('first probe');
  await new Promise((r) => setTimeout(r, 1100));
  await sweep('second probe');
  let keys = await printKeys(root, id);
  info(`listed servers: ${servers(keys).join(', ')}`);

  step('Stop replica-b and watch it leave the pool');
  await new Promise<void>((r) => b[1]!.server.close(() => r()));
  b[1]!.server.closeAllConnections();
  info(`replica-b (127.0.0.1:${b[1]!.port}) stopped`);
  for (let i = 0; i < 5; i++) {
    await new Promise((r) => setTimeout(r, 1100));
    await sweep(`probe ${i + 1}`);
    keys = await printKeys(root, id);
    if (!servers(keys).some((u) => u.includes(`:${b[1]!.port}/`))) break;
  }
  info(`listed servers now: ${servers(keys).join(', ')}`);
  const events = (await (await fetch(`${state.eventBridgeUrl}/_local/events`)).json()) as Array<{ 'detail-type': string; detail: Record<string, unknown> }>;
  for (const e of events.filter((x) => x['detail-type'] === 'RouteHealthChanged' && x.detail.circuitId === id)) {
    info(`event RouteHealthChanged: route ${String(e.detail.routeId).slice(0, 8)}… ${e.detail.from} → ${e.detail.to}`);
  }

  step('Delete the circuit (202: the unload runs from the CircuitUnloadRequested event)');
  const del = await api('DELETE', `/v2/circuits/${id}`);
  info(`DELETE → ${del.status} ${JSON.stringify(del.json)}`);
  for (let i = 0; i < 50; i++) {
    await new Promise((r) => setTimeout(r, 200));
    const r = await etcd.kv.range({ key: enc(`${root}/`), range_end: prefixEnd(enc(`${root}/`)), keys_only: true });
    if (!r.kvs.some((kv) => kvKey(kv).includes(id))) break;
  }
  await printKeys(root, id);
  const after = await api('GET', `/v2/circuits/${id}`);
  info(`circuit now: deletedAt ${after.json.deletedAt}, sync ${JSON.stringify(after.json.sync)}`);
  console.log('\ndemo: done.');
}

main()
  .catch((err: Error) => {
    console.error(`\ndemo: failed: ${err.message}`);
    process.exitCode = 1;
  })
  .finally(() => {
    for (const s of backends) {
      s.closeAllConnections();
      s.close();
    }
    etcd.close();
  });
