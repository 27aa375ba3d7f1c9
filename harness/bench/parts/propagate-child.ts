// Child process of `npm run bench` for part 1 (one uncontended propagate) and part 4a (routes
// per circuit). A fresh process, like a Lambda container: its own etcd client and Neon pool,
// its own in-process worker cache. The parent holds etcd, Postgres and the WebSocket proxy.
//
//   node --import tsx harness/bench/parts/propagate-child.ts uncontended <input.json>
//   node --import tsx harness/bench/parts/propagate-child.ts routes <input.json>
//
// Every measured operation is timed on its own (performance.now around one await). Server-side
// etcd RPCs are counted by this process scraping etcd's /metrics before and after a batch
// (nothing else talks to this etcd meanwhile). Database round trips are counted as
// WebSocket frames sent by the driver (lib/common.ts) and, for circuitry, by PropagateResult.
import { closeRuntime, Invocation, type Runtime } from '../../../lib/runtime.js';
import { propagate, type PropagateResult } from '../../../lib/circuits/index.js';
import { updateRoutes } from '../../../lib/circuits/index.js';
import { deadline } from '../../../lib/etcd/index.js';
import { enc } from '../../../lib/etcd/index.js';
import type { RouteInput } from '../../../lib/model.js';
import { readForHolder, type DbFence, replaceRoutes, type Queryable } from '../../../lib/db/index.js';
import type { CircuitView } from '../../../lib/model.js';
import {
  ROOT,
  countWebSocketFrames,
  diffEtcd,
  emit,
  perOp,
  round,
  scrapeEtcd,
  summarize,
  type EtcdDiff,
  type Summary,
} from '../lib/common.js';
import { baselineWrite, benchConfig, benchRuntime, routeSet, seedCircuit } from '../lib/fixtures.js';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

interface OpInfo {
  etcdRpcs?: number;
  dbQueries?: number;
  txns?: number;
  unchanged?: boolean;
  applied?: boolean;
}
type Op = () => Promise<OpInfo>;

export interface VariantResult {
  name: string;
  latencyMs: Summary;
  /** Server-side etcd RPCs per operation (a separate, non-interleaved counting batch). */
  etcdPerOp: EtcdDiff;
  /** Database round trips per operation: WebSocket frames sent by the driver. */
  dbFramesPerOp: number;
  /** Client-side counts (PropagateResult or the baseline's own tally), mean per operation. */
  client: { etcdRpcs?: number; dbQueries?: number; txns?: number };
  /** This process's CPU (user + system, all threads) per operation, from the counting batch. */
  clientCpuMsPerOp: number;
  countRuns: number;
}

const ETCD = process.env.ETCD_ENDPOINTS!.split(',')[0]!;
const LIB_URL = pathToFileURL(path.join(ROOT, 'lib')).href + '/';

const rpcs = (r: PropagateResult): OpInfo => ({ etcdRpcs: r.etcdRpcs, dbQueries: r.dbQueries, txns: r.txns, unchanged: r.unchanged, applied: r.applied });

function check(r: PropagateResult, wantChange: boolean): PropagateResult {
  if (!r.applied) throw new Error(`propagate of ${r.circuitId} not applied: ${r.notAppliedReason}`);
  if (r.unchanged === wantChange) throw new Error(`propagate of ${r.circuitId}: unchanged=${r.unchanged}, expected ${!wantChange}`);
  return r;
}

/** Runs op `runs` times alone, counting server-side RPCs and WebSocket frames. */
async function countBatch(op: Op, runs: number, frames: () => { sent: number }): Promise<{ etcd: EtcdDiff; framesPerOp: number; cpuMsPerOp: number; client: OpInfo[] }> {
  const client: OpInfo[] = [];
  const before = await scrapeEtcd(ETCD);
  const f0 = frames().sent;
  const c0 = process.cpuUsage();
  for (let i = 0; i < runs; i++) client.push(await op());
  const c = process.cpuUsage(c0);
  const f1 = frames().sent;
  const after = await scrapeEtcd(ETCD);
  return { etcd: perOp(diffEtcd(before, after), runs), framesPerOp: round((f1 - f0) / runs), cpuMsPerOp: round((c.user + c.system) / 1000 / runs), client };
}

/** Client CPU of an op by package (inspector sampling profile), ms per op. */
async function profileBatch(op: Op, runs: number): Promise<Array<{ where: string; msPerOp: number }>> {
  const { Session } = await import('node:inspector');
  const session = new Session();
  session.connect();
  const post = <T,>(method: string, params: object = {}) =>
    new Promise<T>((resolve, reject) => session.post(method, params, (err, r) => (err ? reject(err) : resolve(r as T))));
  await post('Profiler.enable');
  await post('Profiler.setSamplingInterval', { interval: 100 });
  await post('Profiler.start');
  for (let i = 0; i < runs; i++) await op();
  const { profile } = await post<{ profile: { nodes: Array<{ id: number; callFrame: { url: string; functionName: string } }>; samples: number[]; timeDeltas: number[] } }>('Profiler.stop');
  session.disconnect();
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const totals = new Map<string, number>();
  for (let i = 0; i < profile.samples.length; i++) {
    const n = byId.get(profile.samples[i]!)!;
    const url = n.callFrame.url;
    const m = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
    const where = m
      ? m[1]!
      : url.includes(LIB_URL)
        ? `circuitry lib/${url.slice(url.indexOf(LIB_URL) + LIB_URL.length).split('/')[0]}`
        : url.startsWith('node:')
          ? '(node internals: http2, streams, timers)'
          : n.callFrame.functionName.startsWith('(')
            ? n.callFrame.functionName
            : url === ''
              ? '(native)'
              : '(other)';
    totals.set(where, (totals.get(where) ?? 0) + (profile.timeDeltas[i + 1] ?? 0));
  }
  return [...totals]
    .filter(([w]) => w !== '(idle)')
    .sort((a, b) => b[1] - a[1])
    .slice(0, 12)
    .map(([where, us]) => ({ where, msPerOp: round(us / 1000 / runs) }));
}

const meanOf = (xs: OpInfo[], k: keyof OpInfo): number | undefined => {
  const v = xs.map((x) => x[k]).filter((x): x is number => typeof x === 'number');
  return v.length === 0 ? undefined : round(v.reduce((a, b) => a + b, 0) / v.length);
};

/**
 * Interleaves the ops (rotating their order every round, so no variant always runs right after
 * the same neighbour) for `runs` rounds; ops with a limited supply stop when it runs out.
 */
async function interleave(ops: Array<{ name: string; op: Op; limit?: number }>, runs: number): Promise<Map<string, number[]>> {
  const lat = new Map<string, number[]>(ops.map((o) => [o.name, []]));
  for (let i = 0; i < runs; i++) {
    for (let j = 0; j < ops.length; j++) {
      const o = ops[(i + j) % ops.length]!;
      const xs = lat.get(o.name)!;
      if (o.limit !== undefined && xs.length >= o.limit) continue;
      const t0 = performance.now();
      await o.op();
      xs.push(performance.now() - t0);
    }
  }
  return lat;
}

async function uncontended(rt: Runtime, input: { runs: number; countRuns: number; warmup: number; firstSight: { full: string[]; noop: string[] }; routes: number }) {
  const frames = await countWebSocketFrames();
  const { runs, countRuns, warmup } = input;
  const inv = new Invocation(rt); // the warm case: a session already open in this invocation
  const setA = routeSet(input.routes, 0);
  const setB = routeSet(input.routes, 1);

  const circ = await seedCircuit(rt, setA);
  const base = await seedCircuit(rt, setA);
  const cId = circ.circuit.id;
  const bId = base.circuit.id;
  const bWorker = base.circuit.worker;
  check(await propagate(inv, cId, { workerHint: circ.circuit.worker }), true);
  await baselineWrite(rt, bId, bWorker);

  let cFlip = 0;
  let bFlip = 0;
  let iFlip = 0;
  const inv2Circuit = await seedCircuit(rt, setA);
  const i2Id = inv2Circuit.circuit.id;
  check(await propagate(inv, i2Id, { workerHint: inv2Circuit.circuit.worker }), true);
  const fsFull = [...input.firstSight.full];
  const fsNoop = [...input.firstSight.noop];
  const fsSet = routeSet(input.routes, 2);
  const floorWorker = base.circuit.worker;

  // Stage timings of the warm variants: what updateRoutes / propagate do, with the database step
  // wrapped in a clock (lock acquired -> change starts; change done -> apply + release).
  const stages = { full: { lock: [] as number[], db: [] as number[], apply: [] as number[] }, noop: { lock: [] as number[], db: [] as number[], apply: [] as number[] } };
  const staged = async (which: 'full' | 'noop', change: (db: Queryable, fence: DbFence) => Promise<CircuitView | null>, wantChange: boolean) => {
    const t0 = performance.now();
    let t1 = 0;
    let t2 = 0;
    const r = check(
      await propagate(inv, cId, {
        change: async (db, fence) => {
          t1 = performance.now();
          const v = await change(db, fence);
          t2 = performance.now();
          return v;
        },
      }),
      wantChange,
    );
    const t3 = performance.now();
    stages[which].lock.push(t1 - t0);
    stages[which].db.push(t2 - t1);
    stages[which].apply.push(t3 - t2);
    return rpcs(r);
  };

  const ops: Record<string, Op> = {
    // circuitry, warm: session open, worker cached from the publish above. Exactly what
    // updateRoutes(inv, id, routes) and propagate(inv, id) do, with the database step timed.
    'circuitry full': () => staged('full', (db, fence) => replaceRoutes(db, cId, cFlip++ % 2 === 0 ? setB : setA, undefined, fence), true),
    'circuitry no-op': () => staged('noop', (db, fence) => readForHolder(db, cId, fence), false),
    // circuitry as one whole request, as the handlers end it: lease grant, update, lease revoke
    // sent without waiting for its answer (Invocation.finish)
    'circuitry invocation (grant+full+revoke)': async () => {
      const one = new Invocation(rt);
      try {
        return rpcs(check(await updateRoutes(one, i2Id, iFlip++ % 2 === 0 ? setB : setA), true));
      } finally {
        one.finish();
      }
    },
    // first sight: this process has never seen the circuit (no hint, not cached)
    'circuitry first-sight full': async () => {
      const id = fsFull.shift();
      if (id === undefined) throw new Error('out of first-sight circuits');
      return rpcs(check(await updateRoutes(inv, id, fsSet), true));
    },
    'circuitry first-sight no-op': async () => {
      const id = fsNoop.shift();
      if (id === undefined) throw new Error('out of first-sight circuits');
      return rpcs(check(await propagate(inv, id), false));
    },
    'baseline full': async () => {
      const r = await baselineWrite(rt, bId, bWorker, bFlip++ % 2 === 0 ? setB : setA);
      return { etcdRpcs: r.etcdCalls, dbQueries: r.dbQueries };
    },
    'baseline no-op': async () => {
      const r = await baselineWrite(rt, bId, bWorker);
      return { etcdRpcs: r.etcdCalls, dbQueries: r.dbQueries };
    },
    'floor: etcd range get': async () => {
      await rt.etcd.kv.range({ key: enc('bench/floor') }, deadline(3000));
      return { etcdRpcs: 1 };
    },
    // Not part of the target's floor: one etcd WRITE (raft commit + WAL fsync), what each of
    // circuitry's two transactions actually is.
    'floor: etcd put (write)': async () => {
      await rt.etcd.kv.put({ key: enc('bench/floor-put'), value: enc('x') }, deadline(3000));
      return { etcdRpcs: 1 };
    },
    'floor: SELECT 1': async () => {
      await rt.db.query('SELECT 1');
      return { dbQueries: 1 };
    },
    // Not part of the target's floor either: one single-row write transaction (autocommit).
    'floor: DB 1-row UPDATE': async () => {
      await rt.db.query('UPDATE workers SET updated_at = now() WHERE authority = $1', [floorWorker]);
      return { dbQueries: 1 };
    },
  };
  const limited = new Set(['circuitry first-sight full', 'circuitry first-sight no-op']);

  // Warm-up: JIT, connections, etcd3's channel.
  for (let i = 0; i < warmup; i++) for (const [name, op] of Object.entries(ops)) if (!limited.has(name)) await op();

  // Counting batches, one variant at a time (server-side counters need the variant alone).
  const counts = new Map<string, Awaited<ReturnType<typeof countBatch>>>();
  const fsCount = Math.min(countRuns, Math.floor(fsFull.length / 5));
  for (const [name, op] of Object.entries(ops)) {
    counts.set(name, await countBatch(op, limited.has(name) ? fsCount : countRuns, frames));
  }

  // Where the client's CPU goes in a warm full propagate (a separate, profiled batch).
  const cpuProfile = await profileBatch(ops['circuitry full']!, countRuns);

  // Timing: all variants interleaved; the whole pass is counted too, as a cross-check. Stage
  // timings are kept from this pass only (the profiled batch above is slowed by the profiler).
  for (const st of Object.values(stages)) for (const xs of Object.values(st)) xs.length = 0;
  const before = await scrapeEtcd(ETCD);
  const f0 = frames().sent;
  const t0 = performance.now();
  const lat = await interleave(
    Object.entries(ops).map(([name, op]) => ({ name, op, ...(limited.has(name) ? { limit: name.endsWith('full') ? fsFull.length : fsNoop.length } : {}) })),
    runs,
  );
  const passMs = performance.now() - t0;
  const after = await scrapeEtcd(ETCD);
  const passFrames = frames().sent - f0;
  const pass = diffEtcd(before, after);

  const variants: VariantResult[] = Object.keys(ops).map((name) => {
    const c = counts.get(name)!;
    const client: VariantResult['client'] = {};
    for (const k of ['etcdRpcs', 'dbQueries', 'txns'] as const) {
      const m = meanOf(c.client, k);
      if (m !== undefined) client[k] = m;
    }
    return { name, latencyMs: summarize(lat.get(name)!), etcdPerOp: c.etcd, dbFramesPerOp: c.framesPerOp, client, clientCpuMsPerOp: c.cpuMsPerOp, countRuns: c.client.length };
  });
  // Expected totals of the interleaved pass from the per-variant counts.
  const expectedUnary = variants.reduce((s, v) => s + v.etcdPerOp.unaryTotal * v.latencyMs.n, 0);
  const expectedFrames = variants.reduce((s, v) => s + v.dbFramesPerOp * v.latencyMs.n, 0);
  await inv.close();
  const stageSummary = Object.fromEntries(
    Object.entries(stages).map(([k, v]) => [k, { lockMs: summarize(v.lock), dbMs: summarize(v.db), applyAndReleaseMs: summarize(v.apply) }]),
  );
  return {
    variants,
    stages: stageSummary,
    cpuProfile,
    crossCheck: {
      passMs: round(passMs),
      serverUnaryRpcs: pass.unaryTotal,
      expectedUnaryRpcs: round(expectedUnary),
      keepAliveMsgs: pass.streamMsgs.LeaseKeepAlive ?? 0,
      keepAliveStreams: pass.streamsStarted.LeaseKeepAlive ?? 0,
      watchStreams: pass.streamsStarted.Watch ?? 0,
      wsFramesSent: passFrames,
      expectedWsFrames: round(expectedFrames),
    },
  };
}

/** Part 4a: cost as routes per circuit grow. */
async function routesScaling(rt: Runtime, input: { sizes: number[]; runs: number; warmup: number }) {
  const frames = await countWebSocketFrames();
  const inv = new Invocation(rt);
  const out = [];
  for (const n of input.sizes) {
    const setA = routeSet(n, 0);
    const setB = routeSet(n, 1);
    // One route's port changed (same route id): a one-key diff on an n-route circuit.
    const setA1: RouteInput[] = setA.map((r, i) => (i === 0 ? { ...r, port: r.port + 500 } : r));
    const v = await seedCircuit(rt, setA);
    const id = v.circuit.id;
    const first = check(await propagate(inv, id, { workerHint: v.circuit.worker }), true);
    let flip = 0;
    let flip1 = 0;
    const variants: Record<string, Op> = {
      'all routes replaced': async () => rpcs(check(await updateRoutes(inv, id, flip++ % 2 === 0 ? setB : setA), true)),
      'one route changed': async () => rpcs(check(await updateRoutes(inv, id, flip1++ % 2 === 0 ? setA1 : setA), true)),
      'no-op': async () => rpcs(check(await propagate(inv, id), false)),
    };
    for (let i = 0; i < input.warmup; i++) {
      for (const op of Object.values(variants)) await op();
    }
    const rows = [];
    for (const [name, op] of Object.entries(variants)) {
      // Every batch starts from setA (unmeasured), so each measured call is the change it names.
      check(await updateRoutes(inv, id, setA), true);
      flip = 0;
      flip1 = 0;
      const lat: number[] = [];
      const info: OpInfo[] = [];
      const before = await scrapeEtcd(ETCD);
      const f0 = frames().sent;
      for (let i = 0; i < input.runs; i++) {
        const t0 = performance.now();
        info.push(await op());
        lat.push(performance.now() - t0);
      }
      const f1 = frames().sent;
      const after = await scrapeEtcd(ETCD);
      rows.push({
        variant: name,
        latencyMs: summarize(lat),
        txns: meanOf(info, 'txns'),
        clientEtcdRpcs: meanOf(info, 'etcdRpcs'),
        etcdPerOp: perOp(diffEtcd(before, after), input.runs),
        dbFramesPerOp: round((f1 - f0) / input.runs),
      });
    }
    const keys = await rt.etcd.kv.range({ key: enc(`${rt.config.traefikRoot}/worker_${v.circuit.worker}/`), range_end: enc(`${rt.config.traefikRoot}/worker_${v.circuit.worker}0`), count_only: true });
    out.push({ routes: n, keys: Number(keys.count), firstPublishTxns: first.txns, rows });
  }
  await inv.close();
  return out;
}

async function main(): Promise<void> {
  const mode = process.argv[2];
  if (process.env.BENCH_NEON_COALESCE_WRITES === 'false') {
    // What-if (run.ts part 1b): the driver's global default; lib/db/neon.ts sets no per-client value.
    const { neonConfig } = await import('@neondatabase/serverless');
    neonConfig.coalesceWrites = false;
  }
  const input = JSON.parse(readFileSync(process.argv[3]!, 'utf8')) as Record<string, unknown>;
  const rt = benchRuntime(benchConfig());
  // Connections up before anything is measured.
  await rt.db.query('SELECT 1');
  await rt.etcd.kv.range({ key: enc('warm') });
  try {
    if (mode === 'uncontended') emit(await uncontended(rt, input as unknown as Parameters<typeof uncontended>[1]));
    else if (mode === 'routes') emit(await routesScaling(rt, input as unknown as Parameters<typeof routesScaling>[1]));
    else throw new Error(`unknown mode ${mode}`);
  } finally {
    await closeRuntime(rt);
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  },
);
