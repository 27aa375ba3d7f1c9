// Child process of `npm run bench` part 2 (contention): W writers in this process, each its own
// Invocation (its own etcd lease, like separate Lambda invocations), each doing K updateRoutes
// on its assigned circuit once the parent says go.
//
//   node --import tsx harness/bench/parts/contention-child.ts <input.json> <procIndex>
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { closeRuntime, Invocation } from '../../../lib/runtime.js';
import { propagate } from '../../../lib/circuits/index.js';
import { updateRoutes } from '../../../lib/circuits/index.js';
import { enc } from '../../../lib/etcd/index.js';
import type { RouteInput } from '../../../lib/model.js';
import { emit, parentMessages } from '../lib/common.js';
import { benchConfig, benchRuntime, routeSet } from '../lib/fixtures.js';

export interface ContentionInput {
  /** Circuit of each global writer index. */
  circuits: string[];
  writersPerProc: number;
  k: number;
  routes: number;
  lockWaitMs: number;
  /** false: every writer takes the lock itself (the protocol before combining). */
  combine: boolean;
}

export interface UpdateSample {
  writer: number;
  k: number;
  circuitId: string;
  latencyMs: number;
  lockWaitMs: number;
  etcdRpcs: number;
  /** RPCs the lock cost this writer (queue, wait, take); NaN on error. */
  lockRpcs: number;
  /** Applied by the holder ahead (combining): this writer never held the lock. */
  served: boolean;
  /** When it began (epoch ms): with lockWaitMs and latencyMs, when it held the lock. */
  startedAt: number;
  committed: boolean;
  applied: boolean;
  generation: number | null;
  error?: string;
}

async function startProfiler(): Promise<() => Promise<unknown>> {
  mkdirSync(process.env.BENCH_PROFILE_DIR!, { recursive: true });
  const { Session } = await import('node:inspector');
  const session = new Session();
  session.connect();
  const post = (method: string, params: object = {}) =>
    new Promise<unknown>((resolve, reject) => session.post(method, params, (err, r) => (err ? reject(err) : resolve(r))));
  await post('Profiler.enable');
  await post('Profiler.setSamplingInterval', { interval: 200 });
  await post('Profiler.start');
  return async () => ((await post('Profiler.stop')) as { profile: unknown }).profile;
}

async function main(): Promise<void> {
  const input = JSON.parse(readFileSync(process.argv[2]!, 'utf8')) as ContentionInput;
  const proc = Number(process.argv[3]);
  const W = input.writersPerProc;
  const rt = benchRuntime(benchConfig({ LOCK_WAIT_MS: String(input.lockWaitMs) }), W);
  const next = parentMessages();
  await Promise.all(Array.from({ length: W }, () => rt.db.query('SELECT 1')));
  await rt.etcd.kv.range({ key: enc('warm') });

  const writers = Array.from({ length: W }, (_, i) => {
    const global = proc * W + i;
    return { global, circuitId: input.circuits[global]!, inv: new Invocation(rt), base: routeSet(input.routes, 0) };
  });
  // Sessions open and the circuits' workers known, as in a warm container.
  for (const w of writers) await w.inv.session();
  await Promise.all(writers.map((w) => propagate(w.inv, w.circuitId)));
  emit({ ready: proc });
  await next();

  const samples: UpdateSample[] = [];
  // Diagnostics: BENCH_PROFILE_DIR=<dir> writes a CPU profile of this process's measured window.
  const profiler = process.env.BENCH_PROFILE_DIR ? await startProfiler() : undefined;
  const cpu0 = process.cpuUsage();
  const startedAt = Date.now();
  await Promise.all(
    writers.map(async (w) => {
      for (let k = 0; k < input.k; k++) {
        // A route set no other update uses: every update is a real change.
        const routes: RouteInput[] = w.base.map((r, i) => ({ ...r, port: 1024 + ((w.global * 1009 + k * 17 + i) % 64_000) }));
        const t0 = performance.now();
        const startedAt = Date.now();
        try {
          const r = await updateRoutes(w.inv, w.circuitId, routes, undefined, { combine: input.combine });
          samples.push({
            writer: w.global,
            k,
            circuitId: w.circuitId,
            latencyMs: performance.now() - t0,
            lockWaitMs: r.lockWaitMs,
            etcdRpcs: r.etcdRpcs,
            lockRpcs: r.lockRpcs ?? NaN,
            served: r.servedBy !== undefined,
            startedAt,
            committed: r.found && r.generation !== null,
            applied: r.applied,
            generation: r.generation,
            ...(r.applied ? {} : { error: `not applied: ${r.notAppliedReason}` }),
          });
        } catch (err) {
          const e = err as Error & { cause?: Error };
          samples.push({
            writer: w.global,
            k,
            circuitId: w.circuitId,
            latencyMs: performance.now() - t0,
            lockWaitMs: NaN,
            etcdRpcs: NaN,
            lockRpcs: NaN,
            served: false,
            startedAt,
            committed: false,
            applied: false,
            generation: null,
            error: `${e.name}: ${e.message}${e.cause ? ` (${e.cause.name})` : ''}`,
          });
        }
      }
    }),
  );
  const endedAt = Date.now();
  const cpu = process.cpuUsage(cpu0);
  if (profiler) writeFileSync(path.join(process.env.BENCH_PROFILE_DIR!, `contention-${proc}-${process.pid}.cpuprofile`), JSON.stringify(await profiler()));
  emit({ proc, startedAt, endedAt, cpuMs: (cpu.user + cpu.system) / 1000, samples });
  await next(); // the parent has scraped etcd's counters: the lease revokes come after
  for (const w of writers) await w.inv.close();
  await closeRuntime(rt);
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  },
);
