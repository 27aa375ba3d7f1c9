// The local stack behind `npm start`: etcd + PostgreSQL (+ the loopback WebSocket proxy the
// Neon driver speaks through), migrations, the function set under serverless-offline on
// 127.0.0.1, a local EventBridge (unload delivery, the schedule), and a state file that
// `npm run demo` reads. Ctrl-C stops everything by PID.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import { dirname } from 'node:path';
import { parseArgs } from 'node:util';
import { startServices } from './services.js';
import { startLocalEventBridge } from './local-eventbridge.js';
import { migrate } from '../../lib/db/index.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
// Where `npm run demo` finds the running stack (LOCAL_STACK_STATE overrides, e.g. in tests).
const STATE_FILE = process.env.LOCAL_STACK_STATE ?? `${ROOT}.tmp/local-stack.json`;

const { values: args } = parseArgs({
  options: {
    'http-port': { type: 'string', default: process.env.HTTP_PORT ?? '3000' },
    'lambda-port': { type: 'string', default: process.env.LAMBDA_PORT ?? '3002' },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (args.help) {
  console.log(`usage: npm start [-- --http-port 3000 --lambda-port 3002]
  Starts etcd, PostgreSQL and the functions on 127.0.0.1; prints the API URL and a dev token.`);
  process.exit(0);
}

const log = (line: string) => console.log(`[${new Date().toISOString().slice(11, 19)}] ${line}`);
const num = (name: string, v: string, min: number, max: number) => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < min || n > max) {
    console.error(`start: --${name} must be an integer from ${min} to ${max}, got "${v}"`);
    process.exit(2);
  }
  return n;
};
const httpPort = num('http-port', args['http-port'], 1, 65535);
const lambdaPort = num('lambda-port', args['lambda-port'], 1, 65535);

async function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}
for (const [name, port] of [['http-port', httpPort], ['lambda-port', lambdaPort]] as const) {
  if (!(await portFree(port))) {
    console.error(`start: port ${port} on 127.0.0.1 is in use; pass --${name} <port> (npm start -- --${name} 3100)`);
    process.exit(2);
  }
}

// eslint-disable-next-line prefer-const -- assigned after stop() (which reads it) is defined
let offline: ChildProcess | undefined;
let stopping = false;
const services = await startServices({ log: (l) => log(`services: ${l}`), etcdAutoCompaction: { mode: 'periodic', retention: '1h' } });
log(`etcd ${services.etcd.endpoint}, postgres ${services.postgres.url} (via ws proxy ${services.wsProxy.url})`);
log('migrating');
await migrate(services.postgres.url, services.wsProxy.url, (l) => log(`migrate: ${l}`));

const invoke = async (fn: string, event: unknown, isAsync: boolean) => {
  const res = await fetch(`http://127.0.0.1:${lambdaPort}/2015-03-31/functions/circuitry-local-${fn}/invocations`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(isAsync ? { 'x-amz-invocation-type': 'Event' } : {}) },
    body: JSON.stringify(event),
  });
  const text = await res.text();
  if (!res.ok || res.headers.get('x-amz-function-error')) throw new Error(`${fn}: ${res.status} ${text.slice(0, 500)}`);
  return text ? (JSON.parse(text) as unknown) : null;
};
const eventBridge = await startLocalEventBridge({ invoke, log });

const token = process.env.API_TOKENS?.split(',')[0] ?? `dev-${randomBytes(16).toString('hex')}`;
const env: NodeJS.ProcessEnv = {
  ...process.env,
  ...services.env,
  API_TOKENS: process.env.API_TOKENS ?? token,
  ALLOWED_BACKEND_CIDRS: process.env.ALLOWED_BACKEND_CIDRS ?? '127.0.0.0/8,10.0.0.0/8,172.16.0.0/12,192.168.0.0/16',
  EVENTBRIDGE_ENDPOINT: eventBridge.url,
  EVENT_BUS_NAME: 'circuitry-local',
  AWS_REGION: process.env.AWS_REGION ?? 'us-east-1',
  AWS_ACCESS_KEY_ID: process.env.AWS_ACCESS_KEY_ID ?? 'local',
  AWS_SECRET_ACCESS_KEY: process.env.AWS_SECRET_ACCESS_KEY ?? 'local',
  HTTP_PORT: String(httpPort),
  LAMBDA_PORT: String(lambdaPort),
  POWERTOOLS_METRICS_DISABLED: 'true',
  POWERTOOLS_LOG_LEVEL: process.env.POWERTOOLS_LOG_LEVEL ?? 'INFO',
};

async function stop(code: number): Promise<never> {
  if (!stopping) {
    stopping = true;
    log('stopping');
    if (offline?.pid !== undefined && offline.exitCode === null) {
      try {
        process.kill(-offline.pid, 'SIGTERM');
      } catch {}
      await new Promise((r) => setTimeout(r, 300));
      try {
        process.kill(-offline.pid, 'SIGKILL');
      } catch {}
    }
    await eventBridge.close();
    await services.stop();
    rmSync(STATE_FILE, { force: true });
    log('stopped');
  }
  process.exit(code);
}
process.on('SIGINT', () => void stop(0));
process.on('SIGTERM', () => void stop(0));

log('starting the functions under serverless-offline');
offline = spawn(process.execPath, [`${ROOT}node_modules/osls/bin/serverless.js`, 'offline', 'start', '--stage', 'local'], {
  cwd: ROOT,
  env,
  detached: true, // its own process group, so Ctrl-C handling stops its children too
  stdio: ['ignore', 'pipe', 'pipe'],
});
const prefix = (d: Buffer) => d.toString().split('\n').filter((l) => l.trim() !== '').map((l) => `  offline │ ${l}`).join('\n');
offline.stdout!.on('data', (d: Buffer) => console.log(prefix(d)));
offline.stderr!.on('data', (d: Buffer) => console.error(prefix(d)));
offline.on('exit', (code) => {
  if (!stopping) {
    log(`serverless-offline exited (${code}); stopping`);
    void stop(1);
  }
});

const apiUrl = `http://127.0.0.1:${httpPort}`;
for (let i = 0; ; i++) {
  try {
    const r = await fetch(`${apiUrl}/v2/circuits`, { headers: { authorization: `Bearer ${token}` } });
    if (r.status < 500) break;
  } catch {}
  if (i > 600) {
    log('serverless-offline did not come up within 60 s');
    await stop(1);
  }
  await new Promise((r) => setTimeout(r, 100));
}

mkdirSync(dirname(STATE_FILE), { recursive: true });
writeFileSync(
  STATE_FILE,
  JSON.stringify(
    {
      apiUrl,
      token,
      etcdEndpoint: services.etcd.endpoint,
      traefikRoot: env.TRAEFIK_ROOT ?? 'traefik',
      metaPrefix: env.META_PREFIX ?? 'circuitry',
      eventBridgeUrl: eventBridge.url,
      pid: process.pid,
    },
    null,
    2,
  ),
);
console.log(`
  circuitry is running on 127.0.0.1
    API         ${apiUrl}   (try: curl -H "Authorization: Bearer ${token}" ${apiUrl}/v2/circuits)
    dev token   ${token}
    status page ${apiUrl}/v2/ui   (open it in a browser and sign in with the dev token)
    etcd        ${services.etcd.endpoint}   (Traefik root: ${env.TRAEFIK_ROOT ?? 'traefik'}/worker_<authority>)
    schedule    scheduled-health every minute (serverless-offline); on demand: curl -X POST ${eventBridge.url}/_local/fire-schedule
  In another terminal: npm run demo.   Ctrl-C stops everything.
`);
