// `npm run bench:health`: one full scheduled-health sweep over 10,000 routes (2,000 circuits x 5),
// then 20,000 routes, then 10,000 routes split between two concurrent sweepers, against fake backends on loopback (about 94 % healthy, 5 % flapping,
// 1 % hanging past the 1 s timeout), on real etcd + PostgreSQL started for the run.
//
// Processes (so that what is measured is a sweep, not the set-up):
//   this process   services (etcd, Postgres, WebSocket proxy), seeding, warm-up, verification
//   2 backends     `--backends k`: minimal HTTP/1.1 servers (canned responses over raw TCP), one
//                  per route port (127.0.0.1:11000+i), split over 2 processes to stay under the
//                  descriptor limit
//   sweeper(s)     `--sweep`: a fresh process per run (like a Lambda): connects, runs ONE
//                  runSweep, samples its memory, prints its numbers. The third run starts two
//                  at once over 10,000 routes: the claim splits the circuits between them (the
//                  designed way to scale a sweep out), and only one runs the drift check.
//
// Before the measured sweep every circuit is published to etcd and every route has a steady
// health state (healthy routes: healthy; flapping and hanging ones: a mix of states, some one
// failure away from their threshold), so the sweep sees a realistic share of status changes.
// Afterwards the script checks that etcd write transactions == circuits whose status changed
// (from the database, before vs after) and that a drift check finds etcd converged.
//
// Output: a table on stdout, and bench/health.json (machine, node, date, both runs, ratios).
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import v8 from 'node:v8';
import { fileURLToPath } from 'node:url';

const SELF = fileURLToPath(import.meta.url);
/** AWS Lambda arm64 duration price, USD per GB-second (first pricing tier, us-east-1). */
const LAMBDA_ARM64_USD_PER_GB_S = 0.0000133334;
const ROOT = path.resolve(path.dirname(SELF), '../..');
const BASE_PORT = 11_000;
const BACKEND_PROCS = 2;
const ROUTES_PER_CIRCUIT = 5;
const WORKERS = 20;
/** routes x sweeper processes; BENCH_PLANS="10000x1,20000x1,10000x2,10000x4" (the default). */
const PLANS = (process.env.BENCH_PLANS ?? '10000x1,20000x1,10000x2,10000x4').split(',').map((p) => {
  const [routes, sweepers] = p.split('x').map(Number);
  return { routes: routes!, sweepers: sweepers ?? 1 };
});
const TIMEOUT_MS = 1000;

// ---- deterministic behaviour of route i -------------------------------------------------------

type Behaviour = 'healthy' | 'flapping' | 'hanging';

function mix(i: number, salt: number): number {
  let h = Math.imul(i ^ salt, 0x9e3779b1);
  h ^= h >>> 15;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  return (h >>> 0) % 10_000;
}

function behaviourOf(i: number): Behaviour {
  const r = mix(i, 0x1234) % 100;
  return r < 94 ? 'healthy' : r < 99 ? 'flapping' : 'hanging';
}

/** The health state a route has before the measured sweep. */
function seededHealth(i: number): [string, number, number] {
  const r = mix(i, 0x5678);
  switch (behaviourOf(i)) {
    case 'healthy':
      return ['healthy', 10, 0];
    case 'flapping':
      return ([['healthy', 0, 2], ['healthy', 5, 0], ['unhealthy', 1, 0], ['unhealthy', 0, 5]] as const)[r % 4]!.slice() as [string, number, number];
    case 'hanging':
      return ['healthy', 0, r % 3];
  }
}

// ---- mode: backends ----------------------------------------------------------------------------

// Raw TCP servers writing canned HTTP/1.1 responses: as cheap as a backend can be, so that the
// two cores go to the sweeper rather than to the fakes. One request per read (the prober never
// pipelines); connections stay open (keep-alive) until the client closes them.
const OK = Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 2\r\nKeep-Alive: timeout=15\r\n\r\nok');
const FAIL = Buffer.from('HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\nKeep-Alive: timeout=15\r\n\r\n');

async function runBackends(k: number, count: number): Promise<void> {
  const ports: Record<number, number> = {};
  let spare = BASE_PORT + count + 1000 + k * 500;
  for (let i = k; i < count; i += BACKEND_PROCS) {
    const b = behaviourOf(i);
    let flips = 0;
    const server = net.createServer({ noDelay: true }, (sock) => {
      sock.on('error', () => {});
      if (b === 'hanging') return; // never answer; the prober gives up after its timeout and closes
      sock.on('data', () => {
        sock.write(b === 'healthy' ? OK : flips++ % 2 === 0 ? FAIL : OK);
      });
    });
    for (let port = BASE_PORT + i; ; port = spare++) {
      const ok = await new Promise<boolean>((resolve) => {
        server.once('error', () => resolve(false));
        server.listen(port, '127.0.0.1', 4096, () => resolve(true));
      });
      if (ok) {
        if (port !== BASE_PORT + i) ports[i] = port;
        break;
      }
    }
  }
  process.stdout.write(JSON.stringify({ ready: k, moved: ports }) + '\n');
  process.stdin.resume();
  process.stdin.on('end', () => process.exit(0));
}

// ---- mode: sweeper ------------------------------------------------------------------------------

async function runSweeper(): Promise<void> {
  const { parseConfig } = await import('../../lib/config.js');
  const { createRuntime, closeRuntime, Invocation } = await import('../../lib/runtime.js');
  const { runSweep, closeProbers } = await import('../../lib/health/index.js');
  const rt = createRuntime(parseConfig(process.env));
  const inv = new Invocation(rt);
  // A warm container: connections open, code loaded.
  await rt.db.query('SELECT 1');
  await rt.etcd.kv.range({ key: Buffer.from('warm') });
  // A warm container has run sweeps before: warm the JIT up on the HTTP client path first (4,000
  // probes to healthy backends, with a prober thrown away afterwards so that no kept-alive
  // connection is reused by the measured sweep). BENCH_COLD=1 measures a fresh process instead.
  if (process.env.BENCH_COLD !== '1') {
    const { Prober } = await import('../../lib/health/index.js');
    const { PriorityLimiter } = await import('../../lib/health/index.js');
    const warm = new Prober({ allowedCidrs: ['127.0.0.0/8'] });
    const q = new PriorityLimiter(256);
    const routes = Number(process.env.BENCH_ROUTES ?? 0);
    const healthy = Array.from({ length: routes }, (_, i) => i).filter((i) => behaviourOf(i) === 'healthy').slice(0, 4000);
    const moved = JSON.parse(process.env.BENCH_MOVED ?? '{}') as Record<number, number>;
    await Promise.all(
      healthy.map((i) =>
        q.run(() =>
          warm.probe({ protocol: 'http', host: '127.0.0.1', port: moved[i] ?? BASE_PORT + i, path: '/health', timeoutMs: TIMEOUT_MS, expectedStatus: 200 }),
        ),
      ),
    );
    warm.close();
  }
  if (process.argv.includes('--wait-go')) {
    process.stdout.write(JSON.stringify({ ready: true }) + '\n');
    await new Promise<void>((resolve) => {
      process.stdin.on('data', (d: Buffer) => d.toString().includes('go') && resolve());
    });
    process.stdin.pause();
  }
  global.gc?.();
  const base = process.memoryUsage();
  let rssPeak = base.rss;
  let heapPeak = base.heapUsed;
  const sample = () => {
    const rss = process.memoryUsage.rss();
    const heap = v8.getHeapStatistics().used_heap_size;
    if (rss > rssPeak) rssPeak = rss;
    if (heap > heapPeak) heapPeak = heap;
  };
  const timer = setInterval(sample, 50);
  let events = 0;
  let publishCalls = 0;
  const t0 = performance.now();
  const startedAt = Date.now();
  const cpu0 = process.cpuUsage();
  const stats = await runSweep(inv, {
    ...(JSON.parse(process.env.BENCH_SWEEP_OPTIONS ?? '{}') as object),
    publish: async (e) => {
      events += e.length;
      publishCalls++;
    },
  });
  const wallMs = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  sample();
  clearInterval(timer);
  const maxRssKb = process.resourceUsage().maxRSS;
  global.gc?.();
  const retainedHeap = process.memoryUsage().heapUsed;
  process.stdout.write(
    JSON.stringify({
      stats,
      wallMs,
      startedAt,
      endedAt: Date.now(),
      cpuMs: { user: Math.round(cpu.user / 1000), system: Math.round(cpu.system / 1000) },
      loadavg: os.loadavg(),
      events,
      publishCalls,
      memory: { baseRss: base.rss, baseHeap: base.heapUsed, rssPeak, heapPeak, maxRss: maxRssKb * 1024, retainedHeap },
    }) + '\n',
  );
  closeProbers();
  await inv.close();
  await closeRuntime(rt);
}

// ---- mode: orchestrator ---------------------------------------------------------------------------

function spawnSelf(args: string[], env: Record<string, string> = {}): { child: ChildProcess; lines: AsyncGenerator<string> } {
  const prof =
    args[0] === '--sweep'
      ? [
          ...(process.env.BENCH_CPU_PROF ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_CPU_PROF}`] : []),
          ...(process.env.BENCH_SWEEPER_FLAGS ?? '').split(' ').filter(Boolean),
        ]
      : [];
  const child = spawn(process.execPath, ['--expose-gc', ...prof, '--import', 'tsx', SELF, ...args], {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  async function* lines(): AsyncGenerator<string> {
    let buf = '';
    for await (const d of child.stdout!) {
      buf += (d as Buffer).toString();
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        yield buf.slice(0, i);
        buf = buf.slice(i + 1);
      }
    }
  }
  return { child, lines: lines() };
}

/** The first JSON line of a child (node flags such as --trace-gc print lines of their own). */
async function firstLine(g: AsyncGenerator<string>, echo = false): Promise<string> {
  for (;;) {
    const r = await g.next();
    if (r.done) throw new Error('child exited without output');
    if (r.value.startsWith('{')) return r.value;
    if (echo) process.stderr.write(`  | ${r.value}\n`);
  }
}

const mb = (b: number) => Math.round((b / 1024 / 1024) * 10) / 10;

interface SweeperOutput {
  stats: import('../../lib/health/index.js').SweepStats;
  wallMs: number;
  startedAt: number;
  endedAt: number;
  cpuMs: { user: number; system: number };
  loadavg: number[];
  events: number;
  publishCalls: number;
  memory: { baseRss: number; baseHeap: number; rssPeak: number; heapPeak: number; maxRss: number; retainedHeap: number };
}

interface RunResult {
  label: string;
  routes: number;
  circuits: number;
  sweepers: number;
  claimedPerSweeper: number[];
  behaviours: Record<Behaviour, number>;
  wallMs: number;
  sweeperCpuMs: { user: number; system: number };
  loadavg1m: { before: number; after: number };
  probeMs: number;
  driftMs: number;
  probesPerSecond: number;
  probes: number;
  probeFailures: number;
  statusChanges: number;
  circuitsChanged: number;
  circuitsChangedInDatabase: number;
  etcdWriteTxns: number;
  etcdRpcs: number;
  lockAcquisitions: number;
  dbRoundTrips: number;
  eventsPublished: number;
  publishCalls: number;
  converged: boolean;
  errors: string[];
  memory: { baseRssMb: number; rssPeakMb: number; maxRssMb: number; baseHeapMb: number; heapPeakMb: number; rssGrowthMb: number; heapGrowthMb: number; heapAfterGcMb: number };
}

const USAGE = `usage: npm run bench:health
  One full scheduled-health sweep per plan over fake backends on loopback (about 94 % healthy,
  5 % flapping, 1 % hanging), on etcd + PostgreSQL started for the run; prints a table and writes
  bench/health.json. Environment:
    BENCH_PLANS    routes x sweeper processes, comma-separated (default 10000x1,20000x1,10000x2,10000x4)
    BENCH_MEMORY_MB the Lambda memory the cost is computed at (default 1769, as serverless.yml)
    BENCH_COLD=1   measure a fresh sweeper process (default: one warm-up sweep first)
    BENCH_CPU_PROF a directory: the sweepers write CPU profiles there
`;

async function main(): Promise<void> {
  const mode = process.argv[2];
  if (mode === '--help' || mode === '-h') return void process.stdout.write(USAGE);
  if (mode === '--backends') return runBackends(Number(process.argv[3]), Number(process.argv[4]));
  if (mode === '--sweep') return runSweeper();

  const { startServices } = await import('../devstack/services.js');
  const { migrate } = await import('../../lib/db/index.js');
  const { createPool } = await import('../../lib/db/index.js');
  const { parseConfig } = await import('../../lib/config.js');
  const { createRuntime, closeRuntime, Invocation } = await import('../../lib/runtime.js');
  const { runSweep, closeProbers, invocationsFor } = await import('../../lib/health/index.js');

  const log = (s: string) => process.stderr.write(`${s}\n`);
  log('bench:health: starting etcd + PostgreSQL ...');
  const services = await startServices({ log: () => {} });
  const backends: ChildProcess[] = [];
  const cleanup = async () => {
    for (const b of backends) b.kill('SIGKILL');
    await services.stop();
  };
  try {
    const maxRoutes = Math.max(...PLANS.map((p) => p.routes));
    log(`bench:health: starting ${maxRoutes} fake backends in ${BACKEND_PROCS} processes ...`);
    const moved: Record<number, number> = {};
    await Promise.all(
      Array.from({ length: BACKEND_PROCS }, async (_, k) => {
        const p = spawnSelf(['--backends', String(k), String(maxRoutes)]);
        backends.push(p.child);
        const r = JSON.parse(await firstLine(p.lines)) as { moved: Record<number, number> };
        Object.assign(moved, r.moved);
      }),
    );
    const portOf = (i: number) => moved[i] ?? BASE_PORT + i;

    const admin = createPool({ databaseUrl: services.env.DATABASE_URL!, neonWsProxy: services.env.NEON_WS_PROXY, max: 1 });
    const runs: RunResult[] = [];
    for (const plan of PLANS) {
      const { routes, sweepers } = plan;
      const circuits = routes / ROUTES_PER_CIRCUIT;
      const tag = `bench${routes}x${sweepers}`;
      await admin.query(`DROP DATABASE IF EXISTS ${tag} WITH (FORCE)`);
      await admin.query(`CREATE DATABASE ${tag}`);
      const databaseUrl = services.env.DATABASE_URL!.replace(/\/[^/?]+$/, `/${tag}`);
      await migrate(databaseUrl, services.env.NEON_WS_PROXY);
      const env = {
        ...services.env,
        DATABASE_URL: databaseUrl,
        TRAEFIK_ROOT: `traefik-${tag}`,
        META_PREFIX: `circuitry-${tag}`,
        ALLOWED_BACKEND_CIDRS: '127.0.0.0/8',
      };
      const rt = createRuntime(parseConfig({ ...process.env, ...env }));
      const q = rt.db;

      // Seed: workers, circuits (health checking: defaults, timeout 1 s), routes with steady health.
      log(`bench:health: seeding ${circuits} circuits x ${ROUTES_PER_CIRCUIT} routes ...`);
      await q.query(
        `INSERT INTO workers (authority, hostname, wildcard_domain, tls)
         SELECT 'bench-w-' || g, 'bench-w-' || g || '.example.com', 'apps.example.com', false FROM generate_series(0, ${WORKERS - 1}) g`,
      );
      const circuitRows = Array.from({ length: circuits }, (_, c) => ({
        id: randomUUID(),
        worker: `bench-w-${c % WORKERS}`,
        port: 10_000 + Math.floor(c / WORKERS),
      }));
      await q.query(
        `INSERT INTO circuits (id, worker, protocol, app_mode, frontend_mode, frontend_port, hc_path, hc_interval_seconds,
                               hc_timeout_ms, hc_expected_status, hc_unhealthy_threshold, hc_healthy_threshold,
                               hc_initial_delay_seconds, created_at, next_probe_at)
         SELECT x.id, x.worker, 'http', 'inference', 'port', x.port, '/health', 10, $2, 200, 3, 2, 60,
                now() - interval '1 hour', now() + interval '1 day'
           FROM jsonb_to_recordset($1::jsonb) AS x(id uuid, worker text, port int)`,
        [JSON.stringify(circuitRows), TIMEOUT_MS],
      );
      const behaviours: Record<Behaviour, number> = { healthy: 0, flapping: 0, hanging: 0 };
      const routeRows = Array.from({ length: routes }, (_, i) => {
        behaviours[behaviourOf(i)]++;
        const [st, s, f] = seededHealth(i);
        return { c: circuitRows[Math.floor(i / ROUTES_PER_CIRCUIT)]!.id, r: randomUUID(), s2: randomUUID(), p: portOf(i), pos: i % ROUTES_PER_CIRCUIT, st, s, f };
      });
      await q.query(
        `INSERT INTO routes (circuit_id, route_id, session_id, host, port, traffic_ratio, position, health_status,
                             consecutive_successes, consecutive_failures, last_checked_at, created_at)
         SELECT x.c, x.r, x.s2, '127.0.0.1', x.p, 1, x.pos, x.st, x.s, x.f, now() - interval '10 seconds', now() - interval '1 hour'
           FROM jsonb_to_recordset($1::jsonb) AS x(c uuid, r uuid, s2 uuid, p int, pos int, st text, s int, f int)`,
        [JSON.stringify(routeRows)],
      );

      // Warm-up: publish every circuit (a drift-only pass: nothing is due yet).
      log('bench:health: publishing every circuit to etcd (drift pass) ...');
      const inv = new Invocation(rt);
      const warm = await runSweep(inv, { publish: async () => {}, propagateConcurrency: 32 });
      if (warm.driftRepaired !== circuits || warm.errors.length > 0) {
        throw new Error(`warm-up published ${warm.driftRepaired}/${circuits} circuits: ${warm.errors.slice(0, 3).join('; ')}`);
      }
      const snapshot = 'SELECT r.circuit_id AS c, r.route_id AS r, r.health_status AS st FROM routes r';
      const before = await q.query<{ c: string; r: string; st: string }>(snapshot);
      await q.query("UPDATE circuits SET next_probe_at = now() - interval '1 second'");

      // The measured sweep(s), each in a fresh process; with several, they start together and
      // only the first one runs the drift check.
      log(`bench:health: measuring one sweep over ${routes} routes with ${sweepers} sweeper process(es) ...`);
      const loadBefore = os.loadavg()[0]!;
      const procs = Array.from({ length: sweepers }, (_, k) =>
        spawnSelf(['--sweep', '--wait-go'], {
          ...env,
          BENCH_ROUTES: String(routes),
          BENCH_MOVED: JSON.stringify(moved),
          // As a fan-out runs: the dispatcher does everything, the others only probe.
          ...(k > 0 ? { BENCH_SWEEP_OPTIONS: JSON.stringify({ maintenance: false }) } : {}),
        }),
      );
      for (const p of procs) JSON.parse(await firstLine(p.lines, true));
      for (const p of procs) p.child.stdin!.write('go\n');
      const outs = await Promise.all(procs.map(async (p) => JSON.parse(await firstLine(p.lines, true)) as SweeperOutput));
      await Promise.all(procs.map((p) => new Promise((r) => (p.child.exitCode !== null ? r(null) : p.child.once('exit', r)))));

      // Verification: write transactions == circuits whose status changed; etcd converged.
      const after = await q.query<{ c: string; r: string; st: string }>(snapshot);
      const prev = new Map(before.rows.map((x) => [`${x.c}/${x.r}`, x.st]));
      const changedCircuits = new Set(after.rows.filter((x) => prev.get(`${x.c}/${x.r}`) !== x.st).map((x) => x.c));
      await q.query("UPDATE circuits SET next_probe_at = now() + interval '1 day'");
      const check = await runSweep(inv, { publish: async () => {} });
      await inv.close();
      closeProbers();
      await closeRuntime(rt);

      const sum = (f: (o: SweeperOutput) => number) => outs.reduce((n, o) => n + f(o), 0);
      const max = (f: (o: SweeperOutput) => number) => Math.max(...outs.map(f));
      const first = outs[0]!;
      const probeMs = max((o) => o.stats.probeMs);
      runs.push({
        label: `${routes / 1000}k routes, ${sweepers} sweeper${sweepers > 1 ? 's' : ''}`,
        routes,
        circuits,
        sweepers,
        behaviours,
        wallMs: max((o) => o.endedAt) - Math.min(...outs.map((o) => o.startedAt)),
        sweeperCpuMs: { user: sum((o) => o.cpuMs.user), system: sum((o) => o.cpuMs.system) },
        loadavg1m: { before: Math.round(loadBefore * 100) / 100, after: Math.round(first.loadavg[0]! * 100) / 100 },
        probeMs,
        driftMs: first.stats.driftMs,
        probesPerSecond: Math.round(sum((o) => o.stats.probes) / (probeMs / 1000)),
        claimedPerSweeper: outs.map((o) => o.stats.circuitsClaimed),
        probes: sum((o) => o.stats.probes),
        probeFailures: sum((o) => o.stats.probeFailures),
        statusChanges: sum((o) => o.stats.statusChanges),
        circuitsChanged: sum((o) => o.stats.circuitsChanged),
        circuitsChangedInDatabase: changedCircuits.size,
        etcdWriteTxns: sum((o) => o.stats.etcdTxns),
        etcdRpcs: sum((o) => o.stats.etcdRpcs),
        lockAcquisitions: sum((o) => o.stats.lockAcquisitions),
        dbRoundTrips: sum((o) => o.stats.dbRoundTrips),
        eventsPublished: sum((o) => o.events),
        publishCalls: sum((o) => o.publishCalls),
        converged: check.driftRepaired === 0 && check.orphansRemoved === 0 && check.etcdTxns === 0 && check.errors.length === 0,
        errors: outs.flatMap((o) => o.stats.errors),
        memory: {
          baseRssMb: mb(max((o) => o.memory.baseRss)),
          rssPeakMb: mb(max((o) => o.memory.rssPeak)),
          maxRssMb: mb(max((o) => o.memory.maxRss)),
          baseHeapMb: mb(max((o) => o.memory.baseHeap)),
          heapPeakMb: mb(max((o) => o.memory.heapPeak)),
          rssGrowthMb: mb(max((o) => o.memory.rssPeak - o.memory.baseRss)),
          heapGrowthMb: mb(max((o) => o.memory.heapPeak - o.memory.baseHeap)),
          heapAfterGcMb: mb(max((o) => o.memory.retainedHeap)),
        },
      });
    }
    await admin.end();

    // ---- report ---------------------------------------------------------------------------------
    const single = runs.filter((r) => r.sweepers === 1);
    const a = single.find((r) => r.routes === 10_000) ?? runs[0]!;
    const b = single.find((r) => r.routes === 20_000) ?? a;
    const ratio = (x: number, y: number) => Math.round((y / x) * 100) / 100;
    const ratios = {
      wall: ratio(a.wallMs, b.wallMs),
      rssPeak: ratio(a.memory.rssPeakMb, b.memory.rssPeakMb),
      heapPeak: ratio(a.memory.heapPeakMb, b.memory.heapPeakMb),
      rssGrowth: ratio(a.memory.rssGrowthMb, b.memory.rssGrowthMb),
    };
    // Fan-out: one invocation's capacity (routes per second of wall time, drift included) from the
    // single-sweeper run; throughput and efficiency with k sweepers over the same routes.
    const base = a;
    const perInvocation = Math.round(base.routes / (base.wallMs / 1000));
    const scaling = runs
      .filter((r) => r.routes === base.routes)
      .map((r) => {
        const throughput = r.routes / (r.wallMs / 1000);
        return { sweepers: r.sweepers, wallMs: r.wallMs, routesPerSecond: Math.round(throughput), perInvocationRoutesPerSecond: Math.round(throughput / r.sweepers), efficiency: Math.round((throughput / (r.sweepers * perInvocation)) * 100) / 100 };
      });
    const memoryMb = Number(process.env.BENCH_MEMORY_MB ?? 1769);
    const gb = memoryMb / 1024;
    const invocations100k = invocationsFor(100_000, 10, perInvocation);
    const probesPerHour = (100_000 * 3600) / 10;
    const fanOut = {
      perInvocationRoutesPerSecond: perInvocation,
      scaling,
      invocationsFor100kRoutesAt10s: invocations100k,
      lambdaMemoryMb: memoryMb,
      // Sweepers live the whole minute (they sleep between passes, and sleep is billed).
      gbSecondsPer100kRoutesPerHour: Math.round(invocations100k * 3600 * gb),
      // The part of it spent sweeping.
      busyGbSecondsPer100kRoutesPerHour: Math.round((probesPerHour / perInvocation) * gb),
      usdPer100kRoutesPerHourArm64: Math.round(invocations100k * 3600 * gb * LAMBDA_ARM64_USD_PER_GB_S * 10000) / 10000,
      note: `per-invocation capacity from the ${base.label} run on this machine; every sweeper process here shares ${os.cpus().length} cores, a Lambda invocation has its own vCPU at ${memoryMb} MB`,
    };
    const cpus = os.cpus();
    const report = {
      date: new Date().toISOString(),
      machine: { cpu: cpus[0]?.model ?? 'unknown', cpus: cpus.length, memoryGb: Math.round(os.totalmem() / 1024 ** 3), platform: `${os.platform()} ${os.release()}` },
      node: process.version,
      settings: { jitWarmSweeper: process.env.BENCH_COLD !== '1', timeoutMs: TIMEOUT_MS, routesPerCircuit: ROUTES_PER_CIRCUIT, workers: WORKERS, probeConcurrency: 256, thresholds: '3 down / 2 up', backendProcesses: BACKEND_PROCS },
      runs,
      ratios20kOver10k: ratios,
      fanOut,
      targets: {
        sweepWithin3s: Object.fromEntries(runs.map((r) => [r.label, r.wallMs <= 3000])),
        tenThousandRoutesWithin3s: base.routes === 10_000 ? base.wallMs <= 3000 : null,
        etcdTxnsEqualChangedCircuits: runs.every((r) => r.etcdWriteTxns === r.circuitsChangedInDatabase),
        converged: runs.every((r) => r.converged),
      },
    };
    const rows: Array<[string, (r: RunResult) => string | number]> = [
      ['run', (r) => r.label],
      ['routes (circuits)', (r) => `${r.routes} (${r.circuits})`],
      ['circuits claimed per sweeper', (r) => r.claimedPerSweeper.join(' + ')],
      ['healthy / flapping / hanging', (r) => `${r.behaviours.healthy} / ${r.behaviours.flapping} / ${r.behaviours.hanging}`],
      ['sweep wall time', (r) => `${r.wallMs} ms`],
      ['  probing + writes', (r) => `${r.probeMs} ms`],
      ['  drift check', (r) => `${r.driftMs} ms`],
      ['sweeper CPU user + sys', (r) => `${r.sweeperCpuMs.user} + ${r.sweeperCpuMs.system} ms`],
      ['load average (1 min) before/after', (r) => `${r.loadavg1m.before} / ${r.loadavg1m.after}`],
      ['probes/s (probe phase)', (r) => r.probesPerSecond],
      ['probe failures', (r) => r.probeFailures],
      ['status changes (events)', (r) => `${r.statusChanges} (${r.eventsPublished} in ${r.publishCalls} batches)`],
      ['circuits changed: sweep / database', (r) => `${r.circuitsChanged} / ${r.circuitsChangedInDatabase}`],
      ['etcd write transactions', (r) => r.etcdWriteTxns],
      ['etcd RPCs (incl. locks, reads)', (r) => r.etcdRpcs],
      ['database round trips', (r) => r.dbRoundTrips],
      ['RSS base -> peak (maxRSS)', (r) => `${r.memory.baseRssMb} -> ${r.memory.rssPeakMb} MB (${r.memory.maxRssMb})`],
      ['heap base -> peak -> after GC', (r) => `${r.memory.baseHeapMb} -> ${r.memory.heapPeakMb} -> ${r.memory.heapAfterGcMb} MB`],
      ['converged afterwards', (r) => String(r.converged)],
    ];
    const w0 = Math.max(...rows.map(([l]) => l.length));
    const cols = runs.map((r) => rows.map(([, f]) => String(f(r))));
    const w = cols.map((c) => Math.max(...c.map((x) => x.length)));
    const line = (l: string, vals: string[]) => `${l.padEnd(w0)}  ${vals.map((v, i) => v.padStart(w[i]!)).join('  ')}`;
    console.log(`\nscheduled-health sweep — ${report.machine.cpu} x${report.machine.cpus}, node ${report.node}, ${report.date}`);
    rows.forEach(([l], i) => console.log(line(l, cols.map((c) => c[i]!))));
    console.log(`ratios 20k/10k: wall ${ratios.wall}, RSS peak ${ratios.rssPeak}, heap peak ${ratios.heapPeak}, RSS growth ${ratios.rssGrowth}`);
    console.log(`fan-out: one invocation ${perInvocation} routes/s; ${scaling.map((x) => `${x.sweepers} sweeper(s): ${x.routesPerSecond} routes/s (${x.perInvocationRoutesPerSecond} each, efficiency ${x.efficiency})`).join('; ')}`);
    console.log(`fan-out: 100,000 routes every 10 s need ${invocations100k} invocations: ${fanOut.gbSecondsPer100kRoutesPerHour} GB-s per hour at ${memoryMb} MB (${fanOut.busyGbSecondsPer100kRoutesPerHour} GB-s busy), $${fanOut.usdPer100kRoutesPerHourArm64}/h on arm64`);
    console.log(`targets: ${JSON.stringify(report.targets)}`);
    const outDir = path.join(ROOT, 'bench');
    fs.mkdirSync(outDir, { recursive: true });
    fs.writeFileSync(path.join(outDir, 'health.json'), JSON.stringify(report, null, 2) + '\n');
    console.log(`written ${path.relative(process.cwd(), path.join(outDir, 'health.json'))}`);
  } finally {
    await cleanup();
  }
}

main().then(
  () => {
    if (process.argv[2] !== '--backends') process.exit(process.exitCode ?? 0);
  },
  (err: unknown) => {
    process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  },
);
