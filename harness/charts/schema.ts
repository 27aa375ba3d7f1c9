// The curated data snapshots under docs/data/ that `npm run charts` renders: one small JSON file
// per chart, written by the importers (import-bench.ts, import-chaos.ts) from the benchmarks'
// bench/*.json and a chaos run's output directory, and committed so that the SVGs can be
// reproduced without re-running anything. Every file is validated here before rendering; a bad
// one fails with its path and the offending field.
import fs from 'node:fs';
import { z } from 'zod';

const num = z.number().finite();
const nonNeg = num.nonnegative();

/** Where a snapshot came from (shown nowhere in the SVG: provenance for the reader of the JSON). */
export const sourceSchema = z
  .object({
    file: z.string(),
    measuredAt: z.string().optional(),
    commit: z.string().optional(),
    machine: z.string().optional(),
    node: z.string().optional(),
    note: z.string().optional(),
  })
  .strict();

// ---- 1. propagate latency -------------------------------------------------------------------------

export const propagateVariantSchema = z
  .object({
    /** The bench's variant name, e.g. "circuitry full", "baseline full". */
    name: z.string().min(1),
    n: z.number().int().positive(),
    min: nonNeg,
    p50: nonNeg,
    p90: nonNeg,
    p99: nonNeg,
    max: nonNeg,
    mean: nonNeg,
    /** [quantile in [0, 1], ms] pairs from raw samples, when the bench recorded them. */
    quantiles: z.array(z.tuple([num.min(0).max(1), nonNeg])).optional(),
  })
  .strict();

export const propagateSchema = z
  .object({
    kind: z.literal('propagate'),
    source: sourceSchema,
    routes: z.number().int().positive(),
    /** 2 etcd + 1 database round trips, p50 (the bench's derived.floor2Etcd1DbMs). */
    floorMs: nonNeg.optional(),
    variants: z.array(propagateVariantSchema).min(1),
  })
  .strict();
export type PropagateData = z.infer<typeof propagateSchema>;
export type PropagateVariant = z.infer<typeof propagateVariantSchema>;

// ---- 2. sweep time vs routes ------------------------------------------------------------------------

export const sweepRowSchema = z
  .object({
    /** "health": npm run bench:health (realistic mix); "scaling": npm run bench's all-healthy sweep. */
    series: z.enum(['health', 'scaling']),
    routes: z.number().int().positive(),
    circuits: z.number().int().positive(),
    /** Sweepers running at once over the same fleet (bench:health's `concurrency`, or `sweepers`). */
    concurrency: z.number().int().positive(),
    wallMs: nonNeg,
    probeMs: nonNeg.optional(),
    driftMs: nonNeg.optional(),
    /** Routes by backend behaviour (bench:health's runs[].behaviours). */
    behaviours: z.object({ healthy: z.number().int().nonnegative(), flapping: z.number().int().nonnegative(), hanging: z.number().int().nonnegative() }).strict().optional(),
  })
  .strict();

export const sweepSchema = z
  .object({
    kind: z.literal('sweep'),
    source: sourceSchema,
    /** bench:health's settings.timeoutMs. */
    probeTimeoutMs: nonNeg.optional(),
    rows: z.array(sweepRowSchema).min(1),
  })
  .strict();
export type SweepData = z.infer<typeof sweepSchema>;
export type SweepRow = z.infer<typeof sweepRowSchema>;

// ---- 3. hot-circuit throughput ----------------------------------------------------------------------

export const contentionRowSchema = z
  .object({
    /** The bench's scenario name: "one circuit", "one circuit per writer", or any later variant. */
    variant: z.string().min(1),
    writers: z.number().int().positive(),
    processes: z.number().int().positive(),
    circuits: z.number().int().positive(),
    updatesPerWriter: z.number().int().nonnegative(),
    committed: z.number().int().nonnegative(),
    attempted: z.number().int().nonnegative(),
    updatesPerS: nonNeg,
    lockWaitP50Ms: nonNeg,
    lockWaitP99Ms: nonNeg,
    lostUpdateCheckOk: z.boolean(),
  })
  .strict();

export const contentionSchema = z
  .object({
    kind: z.literal('contention'),
    source: sourceSchema,
    rows: z.array(contentionRowSchema).min(1),
  })
  .strict();
export type ContentionData = z.infer<typeof contentionSchema>;
export type ContentionRow = z.infer<typeof contentionRowSchema>;

// ---- 4. chaos timeline ------------------------------------------------------------------------------

/** Operation outcomes, grouped from the workers' statuses (import-chaos.ts outcomeOf). */
export const OUTCOMES = ['succeeded', 'not applied / partial', 'conflict / not found', 'unavailable', 'error / killed'] as const;
/** One lane per counter of summary.json `fencing` (import-chaos.ts refusalsOf). */
export const REFUSALS = ['etcd Txn compare failed', 'etcd: write refused', "writer's session clock", 'database fence'] as const;

export const chaosSchema = z
  .object({
    kind: z.literal('chaos'),
    source: sourceSchema,
    run: z
      .object({
        seed: z.string(),
        strategy: z.string(),
        ops: z.number().int().nonnegative(),
        procs: z.number().int().positive(),
        verdict: z.string(),
        violations: z.number().int().nonnegative(),
      })
      .strict(),
    /** Width of one bin of `ops`, seconds. Times are seconds since the first operation started. */
    binS: num.positive(),
    workloadEndS: nonNeg,
    /** The order of `ops[].counts`: always OUTCOMES. */
    outcomes: z
      .array(z.enum(OUTCOMES))
      .refine((a) => a.length === OUTCOMES.length && a.every((o, i) => o === OUTCOMES[i]), { message: `must be ${JSON.stringify(OUTCOMES)}` }),
    /** Operations completed in [t, t + binS) by outcome; bins with none are left out. */
    ops: z.array(z.object({ t: nonNeg, counts: z.array(z.number().int().nonnegative()).length(OUTCOMES.length) }).strict()),
    faults: z.array(
      z.object({ kind: z.string().min(1), how: z.string(), startS: nonNeg, endS: nonNeg, target: z.number().int().optional() }).strict(),
    ),
    refusals: z.array(z.object({ t: nonNeg, kind: z.enum(REFUSALS) }).strict()),
    convergence: z
      .object({
        converged: z.boolean(),
        lastFaultEndS: nonNeg.nullable(),
        /** When the final check found etcd converged (null when it did not). */
        atS: nonNeg.nullable(),
        afterLastFaultMs: nonNeg.nullable(),
        sweepMs: nonNeg,
      })
      .strict(),
  })
  .strict();
export type ChaosData = z.infer<typeof chaosSchema>;

// ---- files ------------------------------------------------------------------------------------------

export class InputError extends Error {}

/** "file: field.path: message" for the first few issues of a failed parse. */
export function describeIssues(file: string, err: z.ZodError): string {
  return err.issues
    .slice(0, 5)
    .map((i) => `${file}: ${i.path.length > 0 ? i.path.map((p) => (typeof p === 'number' ? `[${p}]` : `.${String(p)}`)).join('').replace(/^\./, '') : '(top level)'}: ${i.message}`)
    .join('\n');
}

/** Reads a JSON file; errors name it as `label` (a path relative to the working directory). */
export function readJson(file: string, label = file): unknown {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new InputError(`${label}: cannot read: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new InputError(`${label}: not JSON: ${(err as Error).message}`);
  }
}

export function parseAs<T>(schema: z.ZodType<T>, value: unknown, file: string): T {
  const r = schema.safeParse(value);
  if (!r.success) throw new InputError(describeIssues(file, r.error));
  return r.data;
}

export const SNAPSHOTS = {
  propagate: { file: 'propagate.json', schema: propagateSchema },
  sweep: { file: 'sweep.json', schema: sweepSchema },
  contention: { file: 'contention.json', schema: contentionSchema },
  chaos: { file: 'chaos.json', schema: chaosSchema },
} as const;
export type ChartName = keyof typeof SNAPSHOTS;
export const CHART_NAMES = Object.keys(SNAPSHOTS) as ChartName[];

/**
 * Snapshots are written the same way every time: 2-space indentation, but any value whose JSON
 * fits in 120 columns on one line (a row, a quantile pair), so that a diff shows changed rows.
 */
export function stringifySnapshot(value: unknown, indent = ''): string {
  const flat = JSON.stringify(value);
  if (flat === undefined) return 'null';
  if (value === null || typeof value !== 'object' || flat.length + indent.length <= 120) return flat;
  const next = `${indent}  `;
  if (Array.isArray(value)) return `[\n${value.map((x) => next + stringifySnapshot(x, next)).join(',\n')}\n${indent}]`;
  const entries = Object.entries(value).filter(([, x]) => x !== undefined);
  return `{\n${entries.map(([k, x]) => `${next}${JSON.stringify(k)}: ${stringifySnapshot(x, next)}`).join(',\n')}\n${indent}}`;
}

export function writeSnapshot(file: string, value: unknown): void {
  fs.writeFileSync(file, `${stringifySnapshot(value)}\n`);
}
