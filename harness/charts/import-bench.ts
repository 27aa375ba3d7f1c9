// Condenses the benchmarks' JSON (`npm run bench` -> bench/results.json, `npm run bench:health`
// -> bench/health.json) into the chart snapshots docs/data/{propagate,contention,sweep}.json.
//
// The bench files are read leniently (extra fields are ignored, so the benchmarks can grow) but
// every field a chart needs is checked, and a missing or malformed one is named with its file and
// JSON path. A part that a file does not have is reported and its snapshot is left as it is.
import fs from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import {
  InputError,
  contentionSchema,
  parseAs,
  propagateSchema,
  sweepSchema,
  readJson,
  type ContentionData,
  type ContentionRow,
  type PropagateData,
  type PropagateVariant,
  type SweepData,
  type SweepRow,
} from './schema.js';

const num = z.number().finite();
const int = z.number().int();

const summarySchema = z.object({ n: int.positive(), p50: num, p90: num, p99: num, mean: num, min: num, max: num });
const codeSchema = z.object({ commit: z.string().optional() }).optional();

const propagatePartSchema = z.object({
  measuredAt: z.string().optional(),
  code: codeSchema,
  routes: int.positive(),
  variants: z
    .array(
      z.object({
        name: z.string().min(1),
        latencyMs: summarySchema,
        /** Raw latencies of the interleaved pass, ms (not written by the bench yet; used when present). */
        samplesMs: z.array(num).optional(),
      }),
    )
    .min(1),
  derived: z.object({ floor2Etcd1DbMs: num.optional() }).optional(),
});

const contentionPartSchema = z.object({
  measuredAt: z.string().optional(),
  code: codeSchema,
  scenarios: z
    .array(
      z.object({
        scenario: z.string().min(1),
        processes: int.positive(),
        writersPerProcess: int.positive(),
        updatesPerWriter: int.nonnegative(),
        circuits: int.positive(),
        attempted: int.nonnegative(),
        committed: int.nonnegative(),
        throughputPerS: num.nonnegative(),
        lockWaitMs: summarySchema,
        lostUpdateCheck: z.object({ ok: z.boolean() }),
      }),
    )
    .min(1),
});

const scalingPartSchema = z.object({
  measuredAt: z.string().optional(),
  code: codeSchema,
  sweep: z
    .array(z.object({ circuits: int.positive(), routes: int.positive(), wallMs: num.nonnegative(), probeMs: num.nonnegative().optional(), driftMs: num.nonnegative().optional() }))
    .optional(),
});

const machineSchema = z.object({ cpu: z.string(), cpus: int }).partial().optional();

const resultsSchema = z.object({
  date: z.string().optional(),
  machine: machineSchema,
  node: z.string().optional(),
  parts: z.object({ propagate: z.unknown().optional(), contention: z.unknown().optional(), scaling: z.unknown().optional() }).passthrough(),
});

const healthSchema = z.object({
  date: z.string().optional(),
  settings: z.object({ timeoutMs: num.nonnegative().optional() }).optional(),
  machine: machineSchema,
  node: z.string().optional(),
  runs: z
    .array(
      z.object({
        routes: int.positive(),
        circuits: int.positive(),
        /** A later bench:health may call it concurrency; today it is sweepers. */
        concurrency: int.positive().optional(),
        sweepers: int.positive().optional(),
        wallMs: num.nonnegative(),
        probeMs: num.nonnegative().optional(),
        driftMs: num.nonnegative().optional(),
        behaviours: z.object({ healthy: int.nonnegative(), flapping: int.nonnegative(), hanging: int.nonnegative() }).optional(),
      }),
    )
    .min(1),
});

const machineOf = (m: z.infer<typeof machineSchema>): string | undefined => (m?.cpu ? `${m.cpu} x${m.cpus ?? '?'}` : undefined);
const r3 = (x: number): number => Math.round(x * 1000) / 1000;

/**
 * Nearest-rank quantiles of raw samples: the min (q = 0), every 0.5 % up to 99.5 %, 99.1 ... 99.9 %,
 * and the max placed at q = 1 - 1/n (where the largest of n samples stands), all below 1 - 1/n.
 */
export function quantilesOf(samples: readonly number[]): Array<[number, number]> {
  const s = [...samples].sort((a, b) => a - b);
  const n = s.length;
  const top = 1 - 1 / n;
  const at = (q: number) => s[Math.min(n - 1, Math.max(0, Math.ceil(q * n) - 1))]!;
  const qs = [0, ...Array.from({ length: 199 }, (_, i) => (i + 1) / 200), 0.991, 0.992, 0.993, 0.994, 0.996, 0.997, 0.998, 0.999]
    .filter((q) => q < top)
    .sort((a, b) => a - b);
  return [...qs.map((q): [number, number] => [q, r3(q === 0 ? s[0]! : at(q))]), [Math.round(top * 1e6) / 1e6, r3(s[n - 1]!)]];
}

interface BenchFile {
  file: string;
  kind: 'results' | 'health';
  value: unknown;
}

function listBenchFiles(input: string, rel: (f: string) => string): BenchFile[] {
  let files: string[];
  if (!fs.existsSync(input)) throw new InputError(`${input}: no such file or directory`);
  if (fs.statSync(input).isDirectory()) {
    files = fs
      .readdirSync(input)
      .filter((f) => f.endsWith('.json'))
      .sort()
      .map((f) => path.join(input, f));
    if (files.length === 0) throw new InputError(`${input}: no *.json file (expected results.json from npm run bench, health.json from npm run bench:health)`);
  } else files = [input];
  const out: BenchFile[] = [];
  for (const file of files) {
    const value = readJson(file, rel(file));
    const o = (typeof value === 'object' && value !== null ? value : {}) as Record<string, unknown>;
    if (typeof o.parts === 'object' && o.parts !== null) out.push({ file, kind: 'results', value });
    else if (Array.isArray(o.runs)) out.push({ file, kind: 'health', value });
    else if (files.length === 1) throw new InputError(`${rel(file)}: neither a bench result (no "parts") nor a bench:health result (no "runs")`);
  }
  return out;
}

export interface BenchImport {
  propagate?: PropagateData;
  contention?: ContentionData;
  sweep?: SweepData;
  notes: string[];
}

/** Reads a bench file or a directory of them (bench/). Throws InputError naming file and field. */
export function importBench(input: string, rel: (f: string) => string = (f) => f): BenchImport {
  const files = listBenchFiles(input, rel);
  const notes: string[] = [];
  const results = files.filter((f) => f.kind === 'results').map((f) => ({ file: f.file, r: parseAs(resultsSchema, f.value, rel(f.file)) }));
  const healths = files.filter((f) => f.kind === 'health').map((f) => ({ file: f.file, h: parseAs(healthSchema, f.value, rel(f.file)) }));

  // ---- propagate: the newest measurement among the files
  let propagate: PropagateData | undefined;
  const props = results
    .filter((x) => x.r.parts.propagate !== undefined)
    .map((x) => ({ ...x, p: parseAs(propagatePartSchema, x.r.parts.propagate, `${rel(x.file)}: parts.propagate`) }))
    .sort((a, b) => (a.p.measuredAt ?? a.r.date ?? '').localeCompare(b.p.measuredAt ?? b.r.date ?? ''));
  const newestProp = props[props.length - 1];
  if (newestProp) {
    const { p, r, file } = newestProp;
    const variants: PropagateVariant[] = p.variants.map((v) => ({
      name: v.name,
      n: v.latencyMs.n,
      min: v.latencyMs.min,
      p50: v.latencyMs.p50,
      p90: v.latencyMs.p90,
      p99: v.latencyMs.p99,
      max: v.latencyMs.max,
      mean: v.latencyMs.mean,
      ...(v.samplesMs && v.samplesMs.length > 0 ? { quantiles: quantilesOf(v.samplesMs) } : {}),
    }));
    if (!variants.some((v) => v.quantiles)) notes.push(`${rel(file)}: parts.propagate.variants[].samplesMs absent: the latency chart plots min, p50, p90, p99 and max`);
    propagate = {
      kind: 'propagate',
      source: source(rel(file), p.measuredAt ?? r.date, p.code?.commit, r.machine, r.node),
      routes: p.routes,
      ...(p.derived?.floor2Etcd1DbMs !== undefined ? { floorMs: p.derived.floor2Etcd1DbMs } : {}),
      variants,
    };
  } else notes.push(`${input}: no parts.propagate in any bench file: docs/data/propagate.json not updated`);

  // ---- contention: rows of every file, one per (variant, writers); the newest measurement wins
  let contention: ContentionData | undefined;
  const conts = results
    .filter((x) => x.r.parts.contention !== undefined)
    .map((x) => ({ ...x, c: parseAs(contentionPartSchema, x.r.parts.contention, `${rel(x.file)}: parts.contention`) }))
    .sort((a, b) => (a.c.measuredAt ?? a.r.date ?? '').localeCompare(b.c.measuredAt ?? b.r.date ?? ''));
  if (conts.length > 0) {
    const rows = new Map<string, ContentionRow>();
    for (const { c } of conts) {
      for (const s of c.scenarios) {
        const writers = s.processes * s.writersPerProcess;
        rows.set(`${s.scenario}|${writers}`, {
          variant: s.scenario,
          writers,
          processes: s.processes,
          circuits: s.circuits,
          updatesPerWriter: s.updatesPerWriter,
          committed: s.committed,
          attempted: s.attempted,
          updatesPerS: s.throughputPerS,
          lockWaitP50Ms: s.lockWaitMs.p50,
          lockWaitP99Ms: s.lockWaitMs.p99,
          lostUpdateCheckOk: s.lostUpdateCheck.ok,
        });
      }
    }
    const newest = conts[conts.length - 1]!;
    contention = {
      kind: 'contention',
      source: {
        ...source(conts.map((x) => rel(x.file)).filter((f, i, a) => a.indexOf(f) === i).join(', '), newest.c.measuredAt ?? newest.r.date, newest.c.code?.commit, newest.r.machine, newest.r.node),
      },
      rows: [...rows.values()].sort((a, b) => a.writers - b.writers || a.variant.localeCompare(b.variant)),
    };
  } else notes.push(`${input}: no parts.contention in any bench file: docs/data/contention.json not updated`);

  // ---- sweep: the newest bench:health run, plus npm run bench's all-healthy scaling rows if any
  let sweep: SweepData | undefined;
  const rows: SweepRow[] = [];
  const newestHealth = healths.sort((a, b) => (a.h.date ?? '').localeCompare(b.h.date ?? ''))[healths.length - 1];
  if (newestHealth) {
    newestHealth.h.runs.forEach((x, i) => {
      if (x.concurrency !== undefined && x.sweepers !== undefined && x.concurrency !== x.sweepers) {
        throw new InputError(`${rel(newestHealth.file)}: runs[${i}]: concurrency ${x.concurrency} and sweepers ${x.sweepers} disagree`);
      }
      rows.push({
        series: 'health',
        routes: x.routes,
        circuits: x.circuits,
        concurrency: x.concurrency ?? x.sweepers ?? 1,
        wallMs: x.wallMs,
        ...(x.probeMs !== undefined ? { probeMs: x.probeMs } : {}),
        ...(x.driftMs !== undefined ? { driftMs: x.driftMs } : {}),
        ...(x.behaviours ? { behaviours: { healthy: x.behaviours.healthy, flapping: x.behaviours.flapping, hanging: x.behaviours.hanging } } : {}),
      });
    });
  } else notes.push(`${input}: no bench:health file (health.json): the sweep chart has no bench:health series`);
  const scal = results
    .filter((x) => x.r.parts.scaling !== undefined)
    .map((x) => ({ ...x, s: parseAs(scalingPartSchema, x.r.parts.scaling, `${rel(x.file)}: parts.scaling`) }))
    .filter((x) => x.s.sweep !== undefined && x.s.sweep.length > 0)
    .sort((a, b) => (a.s.measuredAt ?? a.r.date ?? '').localeCompare(b.s.measuredAt ?? b.r.date ?? ''));
  const newestScal = scal[scal.length - 1];
  for (const x of newestScal?.s.sweep ?? []) {
    rows.push({
      series: 'scaling',
      routes: x.routes,
      circuits: x.circuits,
      concurrency: 1,
      wallMs: x.wallMs,
      ...(x.probeMs !== undefined ? { probeMs: x.probeMs } : {}),
      ...(x.driftMs !== undefined ? { driftMs: x.driftMs } : {}),
    });
  }
  if (rows.length > 0) {
    const files = [newestHealth?.file, newestScal?.file].filter((f): f is string => f !== undefined).map(rel);
    sweep = {
      kind: 'sweep',
      source: source(files.join(', '), newestHealth?.h.date ?? newestScal?.s.measuredAt, newestScal?.s.code?.commit, newestHealth?.h.machine ?? newestScal?.r.machine, newestHealth?.h.node ?? newestScal?.r.node),
      ...(newestHealth?.h.settings?.timeoutMs !== undefined ? { probeTimeoutMs: newestHealth.h.settings.timeoutMs } : {}),
      rows: rows.sort((a, b) => a.series.localeCompare(b.series) || a.concurrency - b.concurrency || a.routes - b.routes),
    };
  } else notes.push(`${input}: neither bench:health runs nor parts.scaling.sweep: docs/data/sweep.json not updated`);

  if (!propagate && !contention && !sweep) throw new InputError(`${input}: no benchmark data found (parts.propagate, parts.contention, parts.scaling.sweep, or bench:health runs)`);
  // What is written is what the renderer will accept.
  const check = <T>(schema: z.ZodType<T>, d: T | undefined, name: string) => (d === undefined ? undefined : parseAs(schema, d, `${rel(input)} (condensed ${name})`));
  const p = check(propagateSchema, propagate, 'propagate');
  const c = check(contentionSchema, contention, 'contention');
  const w = check(sweepSchema, sweep, 'sweep');
  return { ...(p ? { propagate: p } : {}), ...(c ? { contention: c } : {}), ...(w ? { sweep: w } : {}), notes };
}

function source(file: string, measuredAt: string | undefined, commit: string | undefined, machine: z.infer<typeof machineSchema>, node: string | undefined) {
  const m = machineOf(machine);
  return { file, ...(measuredAt ? { measuredAt } : {}), ...(commit ? { commit } : {}), ...(m ? { machine: m } : {}), ...(node ? { node } : {}) };
}
