// Condenses a chaos run's output directory (harness/chaos/run.ts: summary.json, faults.jsonl,
// ops-<w>.jsonl, killed-ops.jsonl) into docs/data/chaos.json: operations completed per time bin
// by outcome, the faults with their intervals, one mark per refused write, and the convergence
// point. Times are seconds since the first operation started. A 10,000-operation run condenses to
// a few tens of KB.
import fs from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { InputError, OUTCOMES, REFUSALS, chaosSchema, parseAs, readJson, type ChaosData } from './schema.js';

const num = z.number().finite();

const summarySchema = z.object({
  verdict: z.string(),
  seed: z.union([z.string(), z.number()]).transform(String),
  strategy: z.string(),
  startedAt: z.string().optional(),
  settings: z.object({ ops: z.number().int(), procs: z.number().int() }),
  violations: z.object({ total: z.number().int() }),
  convergence: z.object({
    converged: z.boolean(),
    lastFaultEndAt: z.string().nullable(),
    afterLastFaultMs: num.nullable(),
    afterWorkloadMs: num.nullable(),
    sweepMs: num,
  }),
  fencing: z.object({ refusedByEtcd: z.number().int(), refusedTxns: z.number().int(), refusedLocally: z.number().int(), refusedByDatabase: z.number().int() }).partial().optional(),
});

const faultSchema = z.object({ kind: z.string().min(1), how: z.string().default(''), target: z.number().int().optional(), start: num, end: num.optional() });

const opSchema = z.object({
  kind: z.string(),
  status: z.string(),
  start: num,
  end: num,
  detail: z.string().optional(),
  txns: z.array(z.object({ ok: z.boolean().optional(), at: num.optional(), sent: num.optional() }).passthrough()).default([]),
  extra: z.record(z.string(), z.unknown()).optional(),
});
type Op = z.infer<typeof opSchema>;

const killedSchema = z.object({ kind: z.string(), start: num, killedAt: num });

export type Outcome = (typeof OUTCOMES)[number];
export type Refusal = (typeof REFUSALS)[number];

/** The workers' statuses (harness/chaos/worker.ts) grouped into the chart's five outcomes. */
export function outcomeOf(status: string): Outcome {
  switch (status) {
    case 'ok':
    case 'noop':
    case 'accepted-dropped':
    case 'skipped':
      return 'succeeded';
    case 'ok-not-applied':
    case 'not-applied':
    case 'partial':
      return 'not applied / partial';
    case 'conflict':
    case 'not-found':
    case 'rejected':
      return 'conflict / not found';
    case 'unavailable':
      return 'unavailable';
    default:
      return 'error / killed';
  }
}

/**
 * The refused writes of one operation, with the same tests as summary.json `fencing` (run.ts),
 * so that each lane's count equals its counter: refusedTxns (every etcd Txn whose compare failed),
 * refusedByEtcd ("write refused" answers), refusedLocally ("session lost"), refusedByDatabase
 * ("newer lock" / "newer holder").
 */
export function refusalsOf(op: Op): Array<{ t: number; kind: Refusal }> {
  const out: Array<{ t: number; kind: Refusal }> = [];
  for (const t of op.txns) if (t.ok === false) out.push({ t: t.at ?? t.sent ?? op.end, kind: 'etcd Txn compare failed' });
  const detail = op.detail ?? '';
  const extra = JSON.stringify(op.extra ?? {});
  if (/write refused/.test(detail) || /write refused/.test(extra)) out.push({ t: op.end, kind: 'etcd: write refused' });
  if (/session lost/.test(detail)) out.push({ t: op.end, kind: "writer's session clock" });
  if (/newer lock|newer holder/.test(detail) || /newer lock|newer holder/.test(extra)) out.push({ t: op.end, kind: 'database fence' });
  return out;
}

function readJsonl<T>(file: string, schema: z.ZodType<T>, rel: string, tolerateCut: boolean): { rows: T[]; cut: number } {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new InputError(`${rel}: cannot read: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  const rows: T[] = [];
  let cut = 0;
  const lines = text.split('\n');
  lines.forEach((line, i) => {
    if (!line.trim()) return;
    let v: unknown;
    try {
      v = JSON.parse(line);
    } catch {
      // A worker killed by SIGKILL can leave its last line cut (run.ts skips those too).
      if (tolerateCut && i >= lines.length - 2) {
        cut++;
        return;
      }
      throw new InputError(`${rel}: line ${i + 1}: not JSON`);
    }
    rows.push(parseAs(schema, v, `${rel}: line ${i + 1}`));
  });
  return { rows, cut };
}

const r3 = (x: number): number => Math.round(x * 1000) / 1000;

export interface ChaosImport {
  data: ChaosData;
  notes: string[];
}

/** Reads a chaos output directory. Throws InputError naming the file (and line or field). */
export function importChaos(dir: string, rel: (f: string) => string = (f) => f): ChaosImport {
  if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) throw new InputError(`${dir}: not a directory (expected a chaos run's --out directory)`);
  const notes: string[] = [];
  const summaryFile = path.join(dir, 'summary.json');
  const summary = parseAs(summarySchema, readJson(summaryFile, rel(summaryFile)), rel(summaryFile));
  const faultsFile = path.join(dir, 'faults.jsonl');
  const faults = readJsonl(faultsFile, faultSchema, rel(faultsFile), true).rows;
  const opFiles = fs
    .readdirSync(dir)
    .filter((f) => /^ops-\d+\.jsonl$/.test(f))
    .sort((a, b) => Number(a.slice(4, -6)) - Number(b.slice(4, -6)));
  if (opFiles.length === 0) throw new InputError(`${rel(dir)}: no ops-<w>.jsonl file`);
  const ops: Op[] = [];
  let cut = 0;
  for (const f of opFiles) {
    const r = readJsonl(path.join(dir, f), opSchema, rel(path.join(dir, f)), true);
    ops.push(...r.rows);
    cut += r.cut;
  }
  if (cut > 0) notes.push(`${rel(dir)}: ${cut} operation line(s) cut by a kill were skipped`);
  if (ops.length === 0) throw new InputError(`${rel(dir)}: the ops-<w>.jsonl files hold no operation`);
  const killedFile = path.join(dir, 'killed-ops.jsonl');
  const killed = fs.existsSync(killedFile) ? readJsonl(killedFile, killedSchema, rel(killedFile), true).rows : [];

  const t0 = Math.min(...ops.map((o) => o.start), ...killed.map((k) => k.start), ...faults.map((x) => x.start));
  const s = (ms: number) => r3((ms - t0) / 1000);
  const ends = [...ops.map((o) => o.end), ...killed.map((k) => k.killedAt)];
  const workloadEnd = Math.max(...ends);
  const span = (workloadEnd - t0) / 1000;
  // 1 s bins, wider for long runs so that no chart has more than ~150 bars (a 5-minute run: 2 s).
  const binS = Math.max(1, Math.ceil(span / 150));

  const bins = new Map<number, number[]>();
  const add = (at: number, outcome: Outcome) => {
    const t = Math.floor((at - t0) / 1000 / binS) * binS;
    const b = bins.get(t) ?? OUTCOMES.map(() => 0);
    b[OUTCOMES.indexOf(outcome)]!++;
    bins.set(t, b);
  };
  for (const o of ops) add(o.end, outcomeOf(o.status));
  for (const k of killed) add(k.killedAt, 'error / killed');

  const refusals = ops
    .flatMap(refusalsOf)
    .map((r) => ({ t: s(r.t), kind: r.kind }))
    .sort((a, b) => a.t - b.t || REFUSALS.indexOf(a.kind) - REFUSALS.indexOf(b.kind));
  const f = summary.fencing;
  if (f) {
    const count = (k: Refusal) => refusals.filter((r) => r.kind === k).length;
    const pairs: Array<[Refusal, number | undefined]> = [
      ['etcd Txn compare failed', f.refusedTxns],
      ['etcd: write refused', f.refusedByEtcd],
      ["writer's session clock", f.refusedLocally],
      ['database fence', f.refusedByDatabase],
    ];
    for (const [k, want] of pairs) if (want !== undefined && want !== count(k)) notes.push(`${rel(summaryFile)}: fencing says ${want} for "${k}", the operation logs show ${count(k)}`);
  }

  const c = summary.convergence;
  const lastFaultEnd = c.lastFaultEndAt !== null ? Date.parse(c.lastFaultEndAt) : null;
  if (lastFaultEnd !== null && Number.isNaN(lastFaultEnd)) throw new InputError(`${rel(summaryFile)}: convergence.lastFaultEndAt: not a date: ${c.lastFaultEndAt}`);
  let atMs: number | null = null;
  if (c.converged) {
    if (lastFaultEnd !== null && c.afterLastFaultMs !== null) atMs = lastFaultEnd + c.afterLastFaultMs;
    else if (c.afterWorkloadMs !== null) atMs = workloadEnd + c.afterWorkloadMs;
  }

  const data: ChaosData = {
    kind: 'chaos',
    source: { file: rel(dir), ...(summary.startedAt ? { measuredAt: summary.startedAt } : {}) },
    run: { seed: summary.seed, strategy: summary.strategy, ops: summary.settings.ops, procs: summary.settings.procs, verdict: summary.verdict, violations: summary.violations.total },
    binS,
    workloadEndS: s(workloadEnd),
    outcomes: [...OUTCOMES],
    ops: [...bins].sort((a, b) => a[0] - b[0]).map(([t, counts]) => ({ t, counts })),
    faults: faults
      .map((x) => ({ kind: x.kind, how: x.how, startS: s(x.start), endS: s(x.end ?? x.start), ...(x.target !== undefined ? { target: x.target } : {}) }))
      .sort((a, b) => a.startS - b.startS || a.kind.localeCompare(b.kind)),
    refusals,
    convergence: {
      converged: c.converged,
      lastFaultEndS: lastFaultEnd !== null ? s(lastFaultEnd) : null,
      atS: atMs !== null ? s(atMs) : null,
      afterLastFaultMs: c.afterLastFaultMs,
      sweepMs: c.sweepMs,
    },
  };
  if (c.lastFaultEndAt !== null && lastFaultEnd! < t0) throw new InputError(`${rel(summaryFile)}: convergence.lastFaultEndAt ${c.lastFaultEndAt} is before the first operation started`);
  // What is written is what the renderer will accept.
  return { data: parseAs(chaosSchema, data, `${rel(dir)} (condensed)`), notes };
}
