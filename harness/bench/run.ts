// `npm run bench` — side-by-side benchmarks of circuitry's fenced write path.
//
//   npm run bench -- [--only propagate,contention,coldstart,scaling] [--runs 1000] [options]
//
// Parts (each selectable with --only; results of parts not re-run are kept in the JSON):
//   propagate   one uncontended propagate of a 10-route circuit: circuitry (full change and
//               no-op, warm and first-sight, and as a whole invocation) vs the reference way
//               (etcd3 Lock, database read, delete-then-put one key at a time, lease revoke),
//               interleaved in one run, plus the floor (one etcd range get, one SELECT 1).
//               etcd RPCs are counted on the SERVER (etcd's Prometheus metrics), database round
//               trips as WebSocket frames sent by the Neon driver.
//   contention  P processes x W writers (default 4 x 16), each K updateRoutes: all on ONE
//               circuit, then each on its own circuit. Throughput, lock wait, fairness, and a
//               lost-update check (database generation and etcd meta generation).
//   coldstart   `osls package`: zip size per function, fresh-process time to the handler
//               imported ("ready handler"), bundle composition (the packaged build's esbuild
//               metafile) and import CPU profile. Needs no services: run it alone with
//               `npm run bench -- --only coldstart`.
//   scaling     propagate cost as routes per circuit grow (1, 10, 100, 200) and sweep cost as
//               circuits grow (100, 1,000, 10,000; all backends healthy: no lock expected).
//
// Options: --runs N (part 1 runs per variant, default 1000), --count-runs N (part 1 counting
// batch, default 200), --warmup N (default 50), --procs P --writers W --k K (contention,
// default 4, 16, 20), --cold-rounds N (default 15), --profile-rounds N (default 3; 0 = none),
// --cold-save DIR (copy the packaged zips to DIR), --cold-baseline DIR (also measure DIR/<fn>.zip,
// e.g. saved from another commit, as "<fn> (baseline)" rows interleaved in the same rounds, and
// print after/before ratios), --metafile DIR (keep each function's esbuild metafile and build
// options in DIR; `npm run bundle:report` prints the same summaries without timing anything),
// --cold-deps (also time the main dependencies imported alone: etcd3, zod, Neon + ws, middy +
// Powertools, and an empty module, built with the packaged options, in the same rounds),
// --route-sizes 1,10,100,200 --route-runs N (default 200), --sweep-sizes 100,1000,10000,
// --sweep-routes N (routes per circuit, default 1), --backends N (default 200),
// --wait-quiet (before each part, poll the 1-minute load average every 30 s until below 1.0,
// for at most --quiet-max-min minutes, default 20),
// --what-if false (skip part 1's second pass with the Neon driver's coalesceWrites off),
// --out bench/results.json, --prof-dir DIR (CPU profiles of the contention writers' measured
// window; slows them down: diagnostics only, use with --out elsewhere).
//
// Benchmarks print and record; they never fail on a number. Only broken invariants (a lost
// update, a write not applied, an unexpected lock in an all-healthy sweep) are flagged.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createHash, randomUUID } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import pLimit from 'p-limit';
import {
  ROOT,
  cpuMsOf,
  diffEtcd,
  fmtRpcs,
  log,
  ratio,
  round,
  scrapeEtcd,
  sleep,
  startChild,
  summarize,
  table,
  type EtcdDiff,
  type Summary,
} from './lib/common.js';
import type { VariantResult } from './parts/propagate-child.js';
import type { ContentionInput, UpdateSample } from './parts/contention-child.js';
import type { ColdStartResult } from './parts/coldstart.js';
import type { SweepStats } from '../../lib/health/index.js';

// ---- arguments -------------------------------------------------------------------------------

const PARTS = ['propagate', 'contention', 'coldstart', 'scaling'] as const;
type Part = (typeof PARTS)[number];

function usage(): string {
  // The header comment of this file is the documentation.
  const lines = fs.readFileSync(new URL(import.meta.url), 'utf8').split('\n');
  const end = lines.findIndex((l) => !l.startsWith('//'));
  return lines
    .slice(0, end)
    .map((l) => l.replace(/^\/\/ ?/, ''))
    .join('\n');
}

function parseArgs(argv: string[]) {
  if (argv.includes('--help') || argv.includes('-h')) {
    console.log(usage());
    process.exit(0);
  }
  const a = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i]!;
    if (!k.startsWith('--')) throw new Error(`unexpected argument ${k}`);
    const [name, inline] = k.slice(2).split('=', 2) as [string, string | undefined];
    if (inline !== undefined) a.set(name, inline);
    else if (argv[i + 1] !== undefined && !argv[i + 1]!.startsWith('--')) a.set(name, argv[++i]!);
    else a.set(name, 'true');
  }
  const num = (k: string, d: number) => (a.has(k) ? Number(a.get(k)) : d);
  const list = (k: string, d: number[]) => (a.has(k) ? a.get(k)!.split(',').map(Number) : d);
  const only = (a.get('only') ?? PARTS.join(',')).split(',').map((s) => s.trim()) as Part[];
  for (const p of only) if (!PARTS.includes(p)) throw new Error(`unknown part ${p}; parts: ${PARTS.join(', ')}`);
  const runs = num('runs', 1000);
  const countRuns = num('count-runs', Math.min(200, runs));
  return {
    only,
    runs,
    countRuns,
    warmup: num('warmup', Math.min(50, runs)),
    firstSight: num('first-sight', runs + countRuns),
    procs: num('procs', 4),
    writers: num('writers', 16),
    k: num('k', 20),
    coldRounds: num('cold-rounds', 15),
    profileRounds: num('profile-rounds', 3),
    coldSave: a.has('cold-save') ? path.resolve(a.get('cold-save')!) : undefined,
    coldBaseline: a.has('cold-baseline') ? path.resolve(a.get('cold-baseline')!) : undefined,
    metafileDir: a.has('metafile') ? path.resolve(a.get('metafile')!) : undefined,
    coldDeps: a.get('cold-deps') === 'true',
    routeSizes: list('route-sizes', [1, 10, 100, 200]),
    routeRuns: num('route-runs', 200),
    sweepSizes: list('sweep-sizes', [100, 1000, 10_000]),
    sweepRoutes: num('sweep-routes', 1),
    backends: num('backends', 200),
    waitQuiet: a.get('wait-quiet') === 'true',
    whatIf: a.get('what-if') !== 'false',
    quietMaxMin: num('quiet-max-min', 20),
    out: path.resolve(ROOT, a.get('out') ?? 'bench/results.json'),
    /** Diagnostics: CPU profiles of the contention writers (node --cpu-prof) into this directory. */
    profDir: a.has('prof-dir') ? path.resolve(a.get('prof-dir')!) : undefined,
  };
}
type Args = ReturnType<typeof parseArgs>;

// ---- environment --------------------------------------------------------------------------------

const load = () => os.loadavg().map((x) => round(x, 2));

async function waitQuiet(maxMin = 20): Promise<{ waitedS: number; quiet: boolean; load: number[] }> {
  const t0 = Date.now();
  for (;;) {
    const l = os.loadavg()[0]!;
    if (l < 1.0) return { waitedS: Math.round((Date.now() - t0) / 1000), quiet: true, load: load() };
    if (Date.now() - t0 >= maxMin * 60_000) {
      log(`load average still ${l.toFixed(2)} after ${maxMin} min: measuring anyway (numbers taken under load)`);
      return { waitedS: Math.round((Date.now() - t0) / 1000), quiet: false, load: load() };
    }
    log(`waiting for a quiet machine: 1-min load ${l.toFixed(2)} >= 1.0`);
    await sleep(30_000);
  }
}

type Services = Awaited<ReturnType<typeof import('../devstack/services.js').startServices>>;

async function withServices<T>(fn: (s: Services) => Promise<T>): Promise<T> {
  const { startServices } = await import('../devstack/services.js');
  const { migrate } = await import('../../lib/db/index.js');
  log('starting etcd + PostgreSQL + WebSocket proxy ...');
  const s = await startServices({ log: () => {} });
  try {
    Object.assign(process.env, s.env);
    await migrate(s.env.DATABASE_URL!, s.env.NEON_WS_PROXY);
    return await fn(s);
  } finally {
    await s.stop();
  }
}

function tmpJson(obj: unknown): string {
  const f = path.join(os.tmpdir(), `circuitry-bench-${process.pid}-${randomUUID().slice(0, 8)}.json`);
  fs.writeFileSync(f, JSON.stringify(obj));
  return f;
}

// ---- part 1: one uncontended propagate -----------------------------------------------------------

interface PropagatePart {
  routes: number;
  runs: number;
  countRuns: number;
  variants: VariantResult[];
  crossCheck: Record<string, number>;
  /** Per stage of the warm circuitry variants (the interleaved pass). */
  stages: Record<string, Record<string, Summary>>;
  /** Client CPU of a warm full propagate by package (sampling profile of a separate batch). */
  cpuProfile: Array<{ where: string; msPerOp: number }>;
  derived: Record<string, number>;
  /** The same pass with the Neon driver's coalesceWrites off (--what-if, default on). */
  whatIfNoCoalesce?: { variants: VariantResult[]; stages: Record<string, Record<string, Summary>>; derived: Record<string, number> };
}

async function partPropagate(args: Args): Promise<PropagatePart> {
  const main = await propagatePass(args, {});
  if (!args.whatIf) return main;
  // What-if: the same pass with the Neon driver's write coalescing off. The driver batches a
  // query's protocol messages and flushes them with setTimeout(0), which is >= 1 ms in Node:
  // every database round trip waits for that timer before its first byte leaves.
  const noCoalesce = await propagatePass(args, { BENCH_NEON_COALESCE_WRITES: 'false' });
  return { ...main, whatIfNoCoalesce: { variants: noCoalesce.variants, stages: noCoalesce.stages, derived: noCoalesce.derived } };
}

async function propagatePass(args: Args, env: Record<string, string>): Promise<PropagatePart> {
  const { benchConfig, benchRuntime, routeSet, seedCircuit } = await import('./lib/fixtures.js');
  const { Invocation, closeRuntime } = await import('../../lib/runtime.js');
  const { propagate } = await import('../../lib/circuits/index.js');
  const ROUTES = 10;
  const label = Object.keys(env).length > 0 ? ` (what-if ${JSON.stringify(env)})` : '';
  // First-sight circuits are seeded and published HERE, so the measuring process has never
  // seen them (its worker cache is per process, like a fresh Lambda container's).
  log(`propagate${label}: seeding ${2 * args.firstSight} first-sight circuits ...`);
  const rt = benchRuntime(benchConfig(), 16);
  const inv = new Invocation(rt);
  const limit = pLimit(16);
  const set = routeSet(ROUTES, 0);
  const seedOne = () =>
    limit(async () => {
      const v = await seedCircuit(rt, set);
      const r = await propagate(inv, v.circuit.id, { workerHint: v.circuit.worker });
      if (!r.applied) throw new Error(`seed publish failed: ${r.notAppliedReason}`);
      return v.circuit.id;
    });
  const full = await Promise.all(Array.from({ length: args.firstSight }, seedOne));
  const noop = await Promise.all(Array.from({ length: args.firstSight }, seedOne));
  await inv.close();
  await closeRuntime(rt);

  log(`propagate${label}: measuring (${args.runs} interleaved runs per variant) ...`);
  const input = tmpJson({ runs: args.runs, countRuns: args.countRuns, warmup: args.warmup, routes: ROUTES, firstSight: { full, noop } });
  let res: Pick<PropagatePart, 'variants' | 'crossCheck' | 'stages' | 'cpuProfile'>;
  try {
    const child = startChild('parts/propagate-child.ts', ['uncontended', input], env);
    res = await child.next();
    await child.exited;
  } finally {
    fs.rmSync(input, { force: true });
  }

  const v = (n: string) => res.variants.find((x) => x.name === n)!;
  const etcdRtt = v('floor: etcd range get').latencyMs.p50;
  const dbRtt = v('floor: SELECT 1').latencyMs.p50;
  const floor = 2 * etcdRtt + dbRtt;
  const derived = {
    floorEtcdRttMs: etcdRtt,
    floorDbRttMs: dbRtt,
    floor2Etcd1DbMs: round(floor),
    fullP50OverBaseline: ratio(v('circuitry full').latencyMs.p50, v('baseline full').latencyMs.p50),
    noopP50OverBaseline: ratio(v('circuitry no-op').latencyMs.p50, v('baseline no-op').latencyMs.p50),
    fullP99OverBaseline: ratio(v('circuitry full').latencyMs.p99, v('baseline full').latencyMs.p99),
    fullP50InFloorUnits: ratio(v('circuitry full').latencyMs.p50, floor),
    noopP50InFloorUnits: ratio(v('circuitry no-op').latencyMs.p50, floor),
    firstSightFullP50InFloorUnits: ratio(v('circuitry first-sight full').latencyMs.p50, floor),
    // What the two guarded transactions and the database write really are: writes.
    etcdWriteRttMs: v('floor: etcd put (write)').latencyMs.p50,
    dbWriteRttMs: v('floor: DB 1-row UPDATE').latencyMs.p50,
    floor2EtcdWrites1DbWriteMs: round(2 * v('floor: etcd put (write)').latencyMs.p50 + v('floor: DB 1-row UPDATE').latencyMs.p50),
    fullP50InWriteFloorUnits: ratio(v('circuitry full').latencyMs.p50, 2 * v('floor: etcd put (write)').latencyMs.p50 + v('floor: DB 1-row UPDATE').latencyMs.p50),
    invocationP50OverBaseline: ratio(v('circuitry invocation (grant+full+revoke)').latencyMs.p50, v('baseline full').latencyMs.p50),
  };
  return { routes: ROUTES, runs: args.runs, countRuns: args.countRuns, variants: res.variants, crossCheck: res.crossCheck, stages: res.stages, cpuProfile: res.cpuProfile, derived };
}

function printPropagate(p: PropagatePart): void {
  const floor = p.derived.floor2Etcd1DbMs!;
  console.log(
    table(
      `1. One uncontended propagate, ${p.routes}-route circuit (${p.runs} interleaved runs; counts from a separate batch of ${p.countRuns})`,
      ['variant', 'p50 ms', 'p99 ms', 'mean', 'n', 'x floor', 'etcd unary RPCs/op (server)', 'RPCs by method (server)', 'DB frames/op', 'client etcd/db', 'client CPU ms/op'],
      p.variants.map((x) => [
        x.name,
        x.latencyMs.p50,
        x.latencyMs.p99,
        x.latencyMs.mean,
        x.latencyMs.n,
        round(x.latencyMs.p50 / floor, 2),
        x.etcdPerOp.unaryTotal,
        fmtRpcs(x.etcdPerOp),
        x.dbFramesPerOp,
        `${x.client.etcdRpcs ?? '-'}/${x.client.dbQueries ?? '-'}`,
        x.clientCpuMsPerOp,
      ]),
    ),
  );
  const d = p.derived;
  console.log(
    `floor (2 etcd RTT + 1 DB RTT) = 2 x ${d.floorEtcdRttMs} + ${d.floorDbRttMs} = ${d.floor2Etcd1DbMs} ms | circuitry/baseline p50: full ${d.fullP50OverBaseline}, no-op ${d.noopP50OverBaseline} (p99 full ${d.fullP99OverBaseline}) | circuitry p50 in floor units: full ${d.fullP50InFloorUnits}, no-op ${d.noopP50InFloorUnits}, first-sight full ${d.firstSightFullP50InFloorUnits}`,
  );
  console.log(
    `with write round trips instead (2 etcd puts + 1 single-row UPDATE = 2 x ${d.etcdWriteRttMs} + ${d.dbWriteRttMs} = ${d.floor2EtcdWrites1DbWriteMs} ms): circuitry full p50 = ${d.fullP50InWriteFloorUnits} of it | one whole invocation (grant+full+revoke) / baseline p50 = ${d.invocationP50OverBaseline}`,
  );
  for (const [k, st] of Object.entries(p.stages)) {
    console.log(
      `circuitry ${k} by stage, p50 (p99) ms: lock txn ${st.lockMs!.p50} (${st.lockMs!.p99}) | database ${st.dbMs!.p50} (${st.dbMs!.p99}) | apply+release ${st.applyAndReleaseMs!.p50} (${st.applyAndReleaseMs!.p99})`,
    );
  }
  console.log(`client CPU of a warm full propagate by package (ms/op, sampled): ${p.cpuProfile.map((x) => `${x.where} ${x.msPerOp}`).join(', ')}`);
  const c = p.crossCheck;
  console.log(
    `cross-check of the interleaved pass: server unary RPCs ${c.serverUnaryRpcs} vs ${c.expectedUnaryRpcs} expected from the per-variant counts; WebSocket frames ${c.wsFramesSent} vs ${c.expectedWsFrames}; background: ${c.keepAliveMsgs} LeaseKeepAlive msgs on ${c.keepAliveStreams} new streams, ${c.watchStreams} watch streams over ${round(c.passMs! / 1000, 1)} s`,
  );
  const w = p.whatIfNoCoalesce;
  if (w) {
    const main = new Map(p.variants.map((x) => [x.name, x]));
    console.log(
      table(
        '1b. What-if (a second pass in this run, same services): the Neon driver with coalesceWrites = false (its setTimeout(0) write batching costs >= 1 ms per query in Node)',
        ['variant', 'p50 ms', 'p99 ms', 'p50 as measured above', 'delta p50'],
        w.variants.map((x) => [x.name, x.latencyMs.p50, x.latencyMs.p99, main.get(x.name)?.latencyMs.p50 ?? '-', round(x.latencyMs.p50 - (main.get(x.name)?.latencyMs.p50 ?? NaN), 2)]),
      ),
    );
    const wd = w.derived;
    console.log(
      `what-if floor = 2 x ${wd.floorEtcdRttMs} + ${wd.floorDbRttMs} = ${wd.floor2Etcd1DbMs} ms | circuitry/baseline p50: full ${wd.fullP50OverBaseline}, no-op ${wd.noopP50OverBaseline} | circuitry full p50 in floor units ${wd.fullP50InFloorUnits} | by stage: lock ${w.stages.full?.lockMs?.p50} | database ${w.stages.full?.dbMs?.p50} | apply+release ${w.stages.full?.applyAndReleaseMs?.p50}`,
    );
  }
}

// ---- part 2: contention ----------------------------------------------------------------------------

interface ContentionScenario {
  scenario: string;
  processes: number;
  writersPerProcess: number;
  updatesPerWriter: number;
  circuits: number;
  attempted: number;
  committed: number;
  applied: number;
  errors: Record<string, number>;
  wallMs: number;
  throughputPerS: number;
  lockWaitMs: Summary;
  latencyMs: Summary;
  fairnessMaxOverMeanWait: number;
  perWriterMeanWaitMaxOverMin: number;
  etcdPerUpdate: EtcdDiff;
  clientEtcdRpcsPerUpdate: number;
  /** CPU ms per committed update, by process: what bounds throughput on this 2-core machine. */
  cpuMsPerUpdate: { writers: number; etcd: number; postgres: number; wsProxy: number; total: number };
  cpuUtilisation: number;
  lostUpdateCheck: { ok: boolean; circuits: number; mismatches: string[] };
  /** Writers that waited: what the lock cost them (etcd RPCs: queue, wait, take or be served). */
  waiters: { count: number; served: number; lockRpcsMean: number; lockRpcsMax: number };
  /** Updates per lock hold (1 without combining). */
  updatesPerHold: number;
  /** From one holder's release to the next holder's ownership, on a hot circuit (ms). */
  handoffMs: Summary | null;
}

async function partContention(args: Args, services: Services): Promise<ContentionScenario[]> {
  const { benchConfig, benchRuntime, routeSet, seedCircuit, q } = await import('./lib/fixtures.js');
  const { Invocation, closeRuntime } = await import('../../lib/runtime.js');
  const { propagate } = await import('../../lib/circuits/index.js');
  const { readCircuit } = await import('../../lib/db/index.js');
  const { metaKey } = await import('../../lib/etcd/index.js');
  const { decodeMeta } = await import('../../lib/etcd/index.js');
  const { render } = await import('../../lib/traefik/index.js');
  const { circuitKeyPrefixes, workerRoot } = await import('../../lib/traefik/index.js');
  const { enc, prefixEnd, kvKey, kvValue } = await import('../../lib/etcd/index.js');
  const rt = benchRuntime(benchConfig(), 16);
  const inv = new Invocation(rt);
  const ROUTES = 10;
  const LOCK_WAIT_MS = 600_000;
  const P = args.procs;
  const W = args.writers;
  const out: ContentionScenario[] = [];
  try {
    for (const scenario of ['one circuit', 'one circuit, no combining', 'one circuit per writer'] as const) {
      const nCircuits = scenario === 'one circuit per writer' ? P * W : 1;
      const seeded: Array<{ id: string; worker: string }> = [];
      for (let i = 0; i < nCircuits; i++) {
        const v = await seedCircuit(rt, routeSet(ROUTES, 0));
        const r = await propagate(inv, v.circuit.id, { workerHint: v.circuit.worker });
        if (!r.applied) throw new Error('seed publish failed');
        seeded.push(v.circuit);
      }
      const circuits = Array.from({ length: P * W }, (_, i) => seeded[i % nCircuits]!.id);
      const input: ContentionInput = { circuits, writersPerProc: W, k: args.k, routes: ROUTES, lockWaitMs: LOCK_WAIT_MS, combine: scenario !== 'one circuit, no combining' };
      const file = tmpJson(input);
      log(`contention: ${scenario}: ${P} processes x ${W} writers x ${args.k} updates ...`);
      const prof: Record<string, string> = args.profDir ? { BENCH_PROFILE_DIR: path.join(args.profDir, scenario.replace(/\W+/g, '-')) } : {};
      const children = Array.from({ length: P }, (_, p) => startChild('parts/contention-child.ts', [file, String(p)], prof));
      await Promise.all(children.map((c) => c.next()));
      const before = await scrapeEtcd(process.env.ETCD_ENDPOINTS!);
      const cpu0 = { etcd: cpuMsOf(services.etcd!.pid), pg: cpuMsOf(services.postgres!.pid, true), self: process.cpuUsage() };
      for (const c of children) c.send({ go: true });
      const results = await Promise.all(children.map((c) => c.next<{ startedAt: number; endedAt: number; cpuMs: number; samples: UpdateSample[] }>()));
      const selfCpu = process.cpuUsage(cpu0.self);
      const cpu1 = { etcd: cpuMsOf(services.etcd!.pid), pg: cpuMsOf(services.postgres!.pid, true) };
      const after = await scrapeEtcd(process.env.ETCD_ENDPOINTS!);
      for (const c of children) c.send({ done: true });
      await Promise.all(children.map((c) => c.exited));
      fs.rmSync(file, { force: true });

      const samples = results.flatMap((r) => r.samples);
      const ok = samples.filter((s) => s.committed);
      const applied = samples.filter((s) => s.applied);
      const errors: Record<string, number> = {};
      for (const s of samples) if (s.error) errors[s.error.split(':')[0]!] = (errors[s.error.split(':')[0]!] ?? 0) + 1;
      const wallMs = Math.max(...results.map((r) => r.endedAt)) - Math.min(...results.map((r) => r.startedAt));
      const waits = ok.map((s) => s.lockWaitMs);
      const w = summarize(waits);
      const perWriter = new Map<number, number[]>();
      for (const s of ok) perWriter.set(s.writer, [...(perWriter.get(s.writer) ?? []), s.lockWaitMs]);
      const writerMeans = [...perWriter.values()].map((xs) => xs.reduce((a, b) => a + b, 0) / xs.length);

      // Lost updates: database generation == 1 + committed updates; etcd meta and keys match it.
      const mismatches: string[] = [];
      for (const c of seeded) {
        const n = ok.filter((s) => s.circuitId === c.id).length;
        const view = await readCircuit(q(rt), c.id);
        const metaKv = (await rt.etcd.kv.range({ key: enc(metaKey(rt.config.metaPrefix, c.id)) })).kvs[0];
        const meta = metaKv ? decodeMeta(kvValue(metaKv)) : null;
        const expected = 1 + n;
        if (view?.circuit.generation !== expected) mismatches.push(`${c.id}: database generation ${view?.circuit.generation}, expected ${expected}`);
        if (meta?.generation !== view?.circuit.generation) mismatches.push(`${c.id}: etcd meta generation ${meta?.generation}, database ${view?.circuit.generation}`);
        if (view) {
          const desired = render(view.circuit, view.worker, { traefikRoot: rt.config.traefikRoot, extraMiddlewares: rt.config.traefikExtraMiddlewares });
          const actual = new Map<string, string>();
          for (const p of circuitKeyPrefixes(workerRoot(rt.config.traefikRoot, c.worker), c.id)) {
            for (const kv of (await rt.etcd.kv.range({ key: enc(p), range_end: prefixEnd(enc(p)) })).kvs) actual.set(kvKey(kv), kvValue(kv));
          }
          const same = actual.size === desired.size && [...desired].every(([k, v]) => actual.get(k) === v);
          if (!same) mismatches.push(`${c.id}: etcd keys differ from render(database) (${actual.size} vs ${desired.size} keys)`);
        }
      }
      const d = diffEtcd(before, after);
      const per = (x: number) => round(x / Math.max(1, ok.length), 2);
      const waited = ok.filter((s) => s.lockWaitMs > 0 || s.served);
      const lockRpcs = waited.map((s) => s.lockRpcs).filter((x) => Number.isFinite(x));
      const holds = ok.filter((s) => !s.served);
      // Handoffs on a single hot circuit: the next holder's ownership after the previous release.
      const handoffs: number[] = [];
      if (nCircuits === 1) {
        const spans = holds.map((s) => ({ owned: s.startedAt + s.lockWaitMs, released: s.startedAt + s.latencyMs })).sort((a, b) => a.owned - b.owned);
        for (let i = 1; i < spans.length; i++) handoffs.push(Math.max(0, spans[i]!.owned - spans[i - 1]!.released));
      }
      const cpu = {
        writers: results.reduce((a, r) => a + r.cpuMs, 0),
        etcd: cpu1.etcd - cpu0.etcd,
        postgres: cpu1.pg - cpu0.pg,
        wsProxy: (selfCpu.user + selfCpu.system) / 1000,
      };
      const cpuTotal = cpu.writers + cpu.etcd + cpu.postgres + cpu.wsProxy;
      out.push({
        scenario,
        processes: P,
        writersPerProcess: W,
        updatesPerWriter: args.k,
        circuits: nCircuits,
        attempted: samples.length,
        committed: ok.length,
        applied: applied.length,
        errors,
        wallMs,
        throughputPerS: round((ok.length / wallMs) * 1000, 1),
        lockWaitMs: w,
        latencyMs: summarize(ok.map((s) => s.latencyMs)),
        fairnessMaxOverMeanWait: w.mean > 0 ? round(w.max / w.mean, 2) : 0,
        perWriterMeanWaitMaxOverMin: Math.min(...writerMeans) > 0 ? round(Math.max(...writerMeans) / Math.min(...writerMeans), 2) : 0,
        etcdPerUpdate: {
          unary: Object.fromEntries(Object.entries(d.unary).map(([k, v]) => [k, round(v / Math.max(1, ok.length), 2)])),
          unaryTotal: round(d.unaryTotal / Math.max(1, ok.length), 2),
          streamsStarted: Object.fromEntries(Object.entries(d.streamsStarted).map(([k, v]) => [k, round(v / Math.max(1, ok.length), 2)])),
          streamMsgs: Object.fromEntries(Object.entries(d.streamMsgs).map(([k, v]) => [k, round(v / Math.max(1, ok.length), 2)])),
        },
        clientEtcdRpcsPerUpdate: round(ok.reduce((a, s) => a + s.etcdRpcs, 0) / Math.max(1, ok.length), 2),
        cpuMsPerUpdate: { writers: per(cpu.writers), etcd: per(cpu.etcd), postgres: per(cpu.postgres), wsProxy: per(cpu.wsProxy), total: per(cpuTotal) },
        cpuUtilisation: round(cpuTotal / wallMs / os.cpus().length, 2),
        lostUpdateCheck: { ok: mismatches.length === 0, circuits: seeded.length, mismatches: mismatches.slice(0, 10) },
        waiters: {
          count: waited.length,
          served: ok.filter((s) => s.served).length,
          lockRpcsMean: lockRpcs.length ? round(lockRpcs.reduce((a, b) => a + b, 0) / lockRpcs.length, 2) : 0,
          lockRpcsMax: lockRpcs.length ? Math.max(...lockRpcs) : 0,
        },
        updatesPerHold: round(ok.length / Math.max(1, holds.length), 2),
        handoffMs: handoffs.length ? summarize(handoffs) : null,
      });
    }
  } finally {
    await inv.close();
    await closeRuntime(rt);
  }
  return out;
}

function printContention(cs: ContentionScenario[]): void {
  console.log(
    table(
      `2. Contention: ${cs[0]?.processes} processes x ${cs[0]?.writersPerProcess} writers x ${cs[0]?.updatesPerWriter} updateRoutes each (own lease per writer)`,
      ['scenario', 'committed/attempted', 'updates/s', 'updates/hold', 'wait p50', 'wait p99', 'wait max', 'max/mean', 'writer spread', 'latency p50', 'latency p99', 'lock RPCs/waiter (max)', 'handoff p50/p99', 'etcd RPCs/update (server)', 'CPU ms/update: writers+etcd+pg+proxy (util)', 'lost-update check', 'errors'],
      cs.map((c) => [
        c.scenario,
        `${c.committed}/${c.attempted}`,
        c.throughputPerS,
        c.updatesPerHold,
        c.lockWaitMs.p50,
        c.lockWaitMs.p99,
        c.lockWaitMs.max,
        c.fairnessMaxOverMeanWait,
        c.perWriterMeanWaitMaxOverMin,
        c.latencyMs.p50,
        c.latencyMs.p99,
        c.waiters.count ? `${c.waiters.lockRpcsMean} (${c.waiters.lockRpcsMax})` : '-',
        c.handoffMs ? `${c.handoffMs.p50}/${c.handoffMs.p99}` : '-',
        `${c.etcdPerUpdate.unaryTotal} (${fmtRpcs(c.etcdPerUpdate)})`,
        `${c.cpuMsPerUpdate.writers}+${c.cpuMsPerUpdate.etcd}+${c.cpuMsPerUpdate.postgres}+${c.cpuMsPerUpdate.wsProxy} = ${c.cpuMsPerUpdate.total} (${Math.round(c.cpuUtilisation * 100)}%)`,
        c.lostUpdateCheck.ok ? `ok (${c.circuits} circuits)` : `LOST: ${c.lostUpdateCheck.mismatches.join('; ')}`,
        Object.keys(c.errors).length === 0 ? 'none' : JSON.stringify(c.errors),
      ]),
    ),
  );
}

// ---- part 3: cold start -----------------------------------------------------------------------------

async function partColdStart(args: Args): Promise<ColdStartResult> {
  const { coldStart } = await import('./parts/coldstart.js');
  return coldStart({
    rounds: args.coldRounds,
    profileRounds: args.profileRounds,
    ...(args.coldSave ? { saveDir: args.coldSave } : {}),
    ...(args.coldBaseline ? { baselineDir: args.coldBaseline } : {}),
    ...(args.metafileDir ? { metafileDir: args.metafileDir } : {}),
    deps: args.coldDeps,
  });
}

function printColdStart(c: ColdStartResult): void {
  const kb = (b: number) => round(b / 1024, 0);
  const hasBaseline = c.functions.some((f) => f.vsBaseline);
  console.log(
    table(
      `3. Cold start (osls package --stage ci in ${c.packageSeconds} s; ${c.bare.readyMs.n} fresh processes per row, interleaved; bare node: ready ${c.bare.readyMs.p50} ms after process start, CPU ${c.bare.readyCpuMs.p50} ms, spawn-to-exit ${c.bare.wallMs.p50} ms)`,
      [
        'function',
        'zip KiB',
        'bundle KiB',
        'ready p50 ms',
        'ready p90',
        'import p50',
        'ready - bare',
        'spawn-to-exit p50',
        'ready CPU p50 ms',
        ...(hasBaseline ? ['zip / baseline', 'ready p50 / baseline', 'import p50 / baseline', 'ready CPU / baseline'] : []),
        'top packages (minified bytes share)',
      ],
      c.functions.map((f) => [
        f.name,
        kb(f.zipBytes),
        kb(f.bundleBytes),
        f.readyMs.p50,
        f.readyMs.p90,
        f.importMs.p50,
        f.readyMinusBareMs,
        f.wallMs.p50,
        f.readyCpuMs.p50,
        ...(hasBaseline ? (f.vsBaseline ? [f.vsBaseline.zip, f.vsBaseline.readyP50, f.vsBaseline.importP50, f.vsBaseline.readyCpuP50] : ['', '', '', '']) : []),
        (f.packages ?? [])
          .slice(0, 5)
          .map((p) => `${p.package} ${Math.round(p.share * 100)}%`)
          .join(', '),
      ]),
    ),
  );
  for (const f of c.functions) {
    if (f.topInputs) {
      console.log(`   ${f.name} top input files (bytes in the minified output): ${f.topInputs.slice(0, 8).map((x) => `${x.input.replace(/^node_modules\//, '')} ${round(x.bytes / 1024, 1)} KiB`).join(', ')}`);
    }
  }
  for (const f of c.functions) {
    if (f.importProfile) {
      console.log(`   ${f.name} import self-time (CPU profile of a whitespace-kept build): ${f.importProfile.slice(0, 8).map((x) => `${x.where} ${x.ms} ms`).join(', ')}`);
    }
  }
  if (c.metafileDir) console.log(`   esbuild metafiles and build options: ${c.metafileDir}/<function>.{meta,options}.json`);
}

// ---- part 4: scaling ------------------------------------------------------------------------------------

interface RoutesRow {
  routes: number;
  keys: number;
  firstPublishTxns: number;
  rows: Array<{ variant: string; latencyMs: Summary; txns?: number; clientEtcdRpcs?: number; etcdPerOp: EtcdDiff; dbFramesPerOp: number }>;
}

interface SweepRow {
  circuits: number;
  routes: number;
  wallMs: number;
  cpuMs: number;
  probes: number;
  probeFailures: number;
  statusChanges: number;
  lockAcquisitions: number;
  etcdTxnsClient: number;
  etcdRpcsClient: number;
  etcdServer: EtcdDiff;
  dbRoundTripsClient: number;
  wsFramesSent: number;
  countersWritten: number;
  driftChecked: number;
  driftRepaired: number;
  probeMs: number;
  driftMs: number;
  memory: { baseRssMb: number; rssPeakMb: number; baseHeapMb: number; heapPeakMb: number; heapGrowthMb: number };
  noLockTaken: boolean;
  errors: string[];
}

async function partScalingRoutes(args: Args): Promise<RoutesRow[]> {
  log(`scaling: routes per circuit ${args.routeSizes.join(', ')} (${args.routeRuns} runs each) ...`);
  const input = tmpJson({ sizes: args.routeSizes, runs: args.routeRuns, warmup: Math.min(20, args.routeRuns) });
  const child = startChild('parts/propagate-child.ts', ['routes', input]);
  const res = await child.next<RoutesRow[]>();
  await child.exited;
  fs.rmSync(input, { force: true });
  return res;
}

async function partScalingSweep(args: Args, services: Services): Promise<SweepRow[]> {
  const { createPool } = await import('../../lib/db/index.js');
  const { migrate } = await import('../../lib/db/index.js');
  const { createRuntime, closeRuntime, Invocation } = await import('../../lib/runtime.js');
  const { runSweep, closeProbers } = await import('../../lib/health/index.js');
  const { benchConfig } = await import('./lib/fixtures.js');
  const backends = startChild('parts/sweep-child.ts', ['backends', String(args.backends)]);
  const { ports } = await backends.next<{ ports: number[] }>();
  const admin = createPool({ databaseUrl: services.env.DATABASE_URL!, neonWsProxy: services.env.NEON_WS_PROXY, max: 1 });
  const rows: SweepRow[] = [];
  const WORKERS = 20;
  try {
    for (const n of args.sweepSizes) {
      const tag = `benchsweep${n}`;
      log(`scaling: sweep over ${n} circuits x ${args.sweepRoutes} routes (all healthy) ...`);
      await admin.query(`DROP DATABASE IF EXISTS ${tag} WITH (FORCE)`);
      await admin.query(`CREATE DATABASE ${tag}`);
      const databaseUrl = services.env.DATABASE_URL!.replace(/\/[^/?]+$/, `/${tag}`);
      await migrate(databaseUrl, services.env.NEON_WS_PROXY);
      const env = { DATABASE_URL: databaseUrl, TRAEFIK_ROOT: `traefik-${tag}`, META_PREFIX: `circuitry-${tag}` };
      const rt = createRuntime(benchConfig(env));
      const db = rt.db;
      await db.query(
        `INSERT INTO workers (authority, hostname, wildcard_domain, tls)
         SELECT 'bench-w-' || g, 'bench-w-' || g || '.example.com', 'apps.example.com', false FROM generate_series(0, ${WORKERS - 1}) g`,
      );
      const circuits = Array.from({ length: n }, (_, c) => ({ id: randomUUID(), worker: `bench-w-${c % WORKERS}`, port: 10_000 + Math.floor(c / WORKERS) }));
      await db.query(
        `INSERT INTO circuits (id, worker, protocol, app_mode, frontend_mode, frontend_port, hc_path, hc_interval_seconds,
                               hc_timeout_ms, hc_expected_status, hc_unhealthy_threshold, hc_healthy_threshold,
                               hc_initial_delay_seconds, created_at, next_probe_at)
         SELECT x.id, x.worker, 'http', 'inference', 'port', x.port, '/health', 10, 1000, 200, 3, 2, 0,
                now() - interval '1 hour', now() + interval '1 day'
           FROM jsonb_to_recordset($1::jsonb) AS x(id uuid, worker text, port int)`,
        [JSON.stringify(circuits)],
      );
      const routes = circuits.flatMap((c, ci) =>
        Array.from({ length: args.sweepRoutes }, (_, j) => ({ c: c.id, r: randomUUID(), s: randomUUID(), p: ports[(ci * args.sweepRoutes + j) % ports.length]!, pos: j })),
      );
      for (let i = 0; i < routes.length; i += 20_000) {
        await db.query(
          `INSERT INTO routes (circuit_id, route_id, session_id, host, port, traffic_ratio, position, health_status,
                               consecutive_successes, consecutive_failures, last_checked_at, created_at)
           SELECT x.c, x.r, x.s, '127.0.0.1', x.p, 1, x.pos, 'healthy', 10, 0, now() - interval '10 seconds', now() - interval '1 hour'
             FROM jsonb_to_recordset($1::jsonb) AS x(c uuid, r uuid, s uuid, p int, pos int)`,
          [JSON.stringify(routes.slice(i, i + 20_000))],
        );
      }
      // Publish every circuit (a drift-only pass: nothing is due yet), then make all due.
      const inv = new Invocation(rt);
      const warm = await runSweep(inv, { publish: async () => {}, propagateConcurrency: 32 });
      if (warm.driftRepaired !== n || warm.errors.length > 0) {
        throw new Error(`publishing ${n} circuits: ${warm.driftRepaired} repaired, errors ${warm.errors.slice(0, 3).join('; ')}`);
      }
      await inv.close();
      closeProbers();
      await db.query("UPDATE circuits SET next_probe_at = now() - interval '1 second'");
      await closeRuntime(rt);

      const sw = startChild('parts/sweep-child.ts', ['sweep'], env, ['--expose-gc']);
      await sw.next();
      const before = await scrapeEtcd(services.env.ETCD_ENDPOINTS!);
      sw.send({ go: true });
      const r = await sw.next<{
        stats: SweepStats;
        wallMs: number;
        cpuMs: number;
        wsFramesSent: number;
        memory: { baseRss: number; baseHeap: number; rssPeak: number; heapPeak: number };
      }>();
      const after = await scrapeEtcd(services.env.ETCD_ENDPOINTS!);
      sw.send({ done: true });
      await sw.exited;
      const s = r.stats;
      const etcdServer = diffEtcd(before, after);
      const mb = (b: number) => round(b / 1024 / 1024, 1);
      rows.push({
        circuits: n,
        routes: n * args.sweepRoutes,
        wallMs: Math.round(r.wallMs),
        cpuMs: Math.round(r.cpuMs),
        probes: s.probes,
        probeFailures: s.probeFailures,
        statusChanges: s.statusChanges,
        lockAcquisitions: s.lockAcquisitions,
        etcdTxnsClient: s.etcdTxns,
        etcdRpcsClient: s.etcdRpcs,
        etcdServer,
        dbRoundTripsClient: s.dbRoundTrips,
        wsFramesSent: r.wsFramesSent,
        countersWritten: s.countersWritten,
        driftChecked: s.driftChecked,
        driftRepaired: s.driftRepaired,
        probeMs: s.probeMs,
        driftMs: s.driftMs,
        memory: {
          baseRssMb: mb(r.memory.baseRss),
          rssPeakMb: mb(r.memory.rssPeak),
          baseHeapMb: mb(r.memory.baseHeap),
          heapPeakMb: mb(r.memory.heapPeak),
          heapGrowthMb: mb(r.memory.heapPeak - r.memory.baseHeap),
        },
        noLockTaken: s.lockAcquisitions === 0 && (etcdServer.unary.Txn ?? 0) === 0,
        errors: s.errors.slice(0, 5),
      });
      await admin.query(`DROP DATABASE IF EXISTS ${tag} WITH (FORCE)`).catch(() => {});
    }
  } finally {
    await admin.end();
    backends.child.stdin!.end();
    await backends.exited;
  }
  return rows;
}

function printScaling(s: { routes?: RoutesRow[]; sweep?: SweepRow[]; growth?: Record<string, unknown> }): void {
  if (s.routes) {
    console.log(
      table(
        '4a. Propagate cost vs routes per circuit (warm session, worker cached)',
        ['routes', 'keys', 'variant', 'p50 ms', 'p99 ms', 'txns', 'etcd unary RPCs/op (server)', 'by method', 'DB frames/op'],
        s.routes.flatMap((r) =>
          r.rows.map((x) => [r.routes, r.keys, x.variant, x.latencyMs.p50, x.latencyMs.p99, x.txns ?? '-', x.etcdPerOp.unaryTotal, fmtRpcs(x.etcdPerOp), x.dbFramesPerOp]),
        ),
      ),
    );
  }
  if (s.sweep) {
    console.log(
      table(
        '4b. One scheduled-health sweep vs number of circuits (all backends healthy: no status change, no lock expected)',
        ['circuits', 'routes', 'wall ms', 'cpu ms', 'probe phase', 'drift phase', 'DB round trips', 'WS frames', 'etcd RPCs (server)', 'locks', 'heap peak MB', 'RSS peak MB', 'no lock taken'],
        s.sweep.map((r) => [
          r.circuits,
          r.routes,
          r.wallMs,
          r.cpuMs,
          r.probeMs,
          r.driftMs,
          r.dbRoundTripsClient,
          r.wsFramesSent,
          `${r.etcdServer.unaryTotal} (${fmtRpcs(r.etcdServer)})`,
          r.lockAcquisitions,
          r.memory.heapPeakMb,
          r.memory.rssPeakMb,
          String(r.noLockTaken),
        ]),
      ),
    );
  }
  if (s.growth) console.log(`growth ratios: ${JSON.stringify(s.growth)}`);
}

function growthOf(routes?: RoutesRow[], sweep?: SweepRow[]): Record<string, unknown> {
  const g: Record<string, unknown> = {};
  if (routes && routes.length > 1) {
    const base = routes[0]!;
    g.routesP50VsSmallest = Object.fromEntries(
      routes.map((r) => [
        r.routes,
        Object.fromEntries(r.rows.map((x) => [x.variant, ratio(x.latencyMs.p50, base.rows.find((b) => b.variant === x.variant)!.latencyMs.p50, 2)])),
      ]),
    );
  }
  if (sweep && sweep.length > 1) {
    const steps = sweep.slice(1).map((r, i) => {
      const p = sweep[i]!;
      return {
        from: p.circuits,
        to: r.circuits,
        circuitsX: ratio(r.circuits, p.circuits, 1),
        wallX: ratio(r.wallMs, p.wallMs, 2),
        cpuX: ratio(r.cpuMs, p.cpuMs, 2),
        dbRoundTripsX: ratio(r.dbRoundTripsClient, p.dbRoundTripsClient, 2),
        etcdRpcsX: ratio(r.etcdServer.unaryTotal, p.etcdServer.unaryTotal, 2),
        heapGrowthX: ratio(r.memory.heapGrowthMb, p.memory.heapGrowthMb, 2),
      };
    });
    g.sweep = steps;
  }
  return g;
}

/** What was measured: the commit, whether the tree was dirty, and digests of the hot files. */
function codeVersion(): Record<string, unknown> {
  const git = (...a: string[]) => {
    try {
      return execFileSync('git', a, { cwd: ROOT, encoding: 'utf8' }).trim();
    } catch {
      return 'unknown';
    }
  };
  const files = ['lib/circuits/propagate.ts', 'lib/etcd/mutex.ts', 'lib/etcd/fenced-apply.ts', 'lib/etcd/session.ts', 'lib/db/circuits.ts', 'lib/health/sweep.ts', 'lib/health/drift.ts', 'lib/traefik/plan.ts'];
  return {
    commit: git('rev-parse', 'HEAD'),
    dirtyFiles: git('status', '--porcelain').split('\n').filter((l) => l !== '').length,
    sha1: Object.fromEntries(files.map((f) => [f, fs.existsSync(path.join(ROOT, f)) ? createHash('sha1').update(fs.readFileSync(path.join(ROOT, f))).digest('hex').slice(0, 12) : null])),
  };
}

// ---- main -------------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const cpus = os.cpus();
  const quiet = { waitedS: 0, quiet: os.loadavg()[0]! < 1.0, load: load() };
  const previous = fs.existsSync(args.out) ? (JSON.parse(fs.readFileSync(args.out, 'utf8')) as { parts?: Record<string, unknown> }) : {};
  const parts: Record<string, unknown> = { ...(previous.parts ?? {}) };
  // With --wait-quiet, every part waits for a quiet machine (the machine is shared).
  const quietBefore: Record<string, unknown> = {};
  const stamp = async (part: string) => {
    if (args.waitQuiet) quietBefore[part] = await waitQuiet(args.quietMaxMin);
    // The code is measured as it is on disk when the part starts (others may be committing).
    return { measuredAt: new Date().toISOString(), loadAvg: load(), code: codeVersion(), ...(args.waitQuiet ? { waitedForQuiet: quietBefore[part] } : {}) };
  };

  const needServices = args.only.some((p) => p !== 'coldstart');
  const servicesParts = async (services: Services | null) => {
    if (args.only.includes('propagate')) {
      const s = await stamp('propagate');
      const p = await partPropagate(args);
      parts.propagate = { ...s, loadAvgAfter: load(), ...p };
      printPropagate(p);
    }
    if (args.only.includes('contention')) {
      const s = await stamp('contention');
      const c = await partContention(args, services!);
      const tp = (name: string) => c.find((x) => x.scenario === name)?.throughputPerS ?? NaN;
      // Same writers, same run: a hot circuit against the same writers spread over one circuit each.
      const ratios = {
        hotOverSpread: round(tp('one circuit') / tp('one circuit per writer'), 2),
        hotWithoutCombiningOverSpread: round(tp('one circuit, no combining') / tp('one circuit per writer'), 2),
        combiningSpeedup: round(tp('one circuit') / tp('one circuit, no combining'), 2),
      };
      parts.contention = { ...s, loadAvgAfter: load(), scenarios: c, ratios };
      printContention(c);
      console.log(`hot circuit / spread: ${ratios.hotOverSpread} (target >= 0.8); without combining ${ratios.hotWithoutCombiningOverSpread}; combining x${ratios.combiningSpeedup}`);
    }
    if (args.only.includes('scaling') && services) {
      const s = await stamp('scaling');
      const routes = await partScalingRoutes(args);
      printScaling({ routes });
      const sweep = await partScalingSweep(args, services);
      const growth = growthOf(routes, sweep);
      parts.scaling = { ...s, loadAvgAfter: load(), routes, sweep, growth, sweepRoutesPerCircuit: args.sweepRoutes, backendPorts: args.backends };
      printScaling({ sweep, growth });
    }
  };
  if (needServices) await withServices((s) => servicesParts(s));
  if (args.only.includes('coldstart')) {
    const s = await stamp('coldstart');
    const c = await partColdStart(args);
    parts.coldstart = { ...s, loadAvgAfter: load(), ...c };
    printColdStart(c);
  }

  const report = {
    date: new Date().toISOString(),
    code: codeVersion(),
    machine: {
      cpu: cpus[0]?.model ?? 'unknown',
      cpus: cpus.length,
      memoryGb: round(os.totalmem() / 1024 ** 3, 1),
      platform: `${os.platform()} ${os.release()}`,
    },
    node: process.version,
    loadAtStart: quiet,
    loadAvgAtEnd: load(),
    args: { ...args, out: path.relative(ROOT, args.out) },
    parts,
  };
  fs.mkdirSync(path.dirname(args.out), { recursive: true });
  fs.writeFileSync(args.out, JSON.stringify(report, null, 2) + '\n');
  const partLoads = Object.entries(parts)
    .filter(([k]) => args.only.includes(k as Part))
    .map(([k, v]) => {
      const p = v as { loadAvg: number[]; loadAvgAfter: number[] };
      return `${k} ${p.loadAvg[0]} -> ${p.loadAvgAfter[0]}`;
    });
  console.log(`\n${report.machine.cpu} x${report.machine.cpus}, ${report.machine.memoryGb} GB, node ${report.node}, ${report.date}; 1-min load at start -> end of each part: ${partLoads.join(', ')} (this bench itself adds ~1-2 while it runs; the machine is shared)`);
  console.log(`written ${path.relative(process.cwd(), args.out)}`);
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  },
);
