// Output of a chaos run: the minimal slice of history around a violation, the summary table and
// the progress line. Pure string/shape building; the coordinator writes the files.
import { classifier, type HistEvent, type Layout, type Violation } from './check.js';

export interface OpLogRecord {
  w: number;
  inc: number;
  pid: number;
  i: number;
  kind: string;
  slot: number;
  status: string;
  circuitId?: string;
  http?: number;
  detail?: string;
  /** The generation a 2xx answer reported. */
  generation?: number;
  start: number;
  end: number;
  ms: number;
  leases: string[];
  txns: Array<{ rev?: number; ok?: boolean; lock?: string; meta?: boolean; puts?: number; dels?: number; err?: string; sent?: number; at?: number }>;
  commits?: Array<{ circuitId: string; generation: number; what: string }>;
  /** Route changes it queued with; committed by whichever holder claimed them. */
  intents?: string[];
  /** Statements run under a lock: circuit, fence, when the answer arrived, rows returned. */
  locked?: Array<{ c: string; epoch: number; rev: number; sent: number; done: number; rows: number }>;
  extra?: Record<string, unknown>;
}

export interface FaultRecord {
  n: number;
  kind: string;
  how: string;
  target?: number;
  pid?: number;
  start: number;
  end?: number;
  point?: string;
  note?: string;
}

export interface Slice {
  violation: Violation;
  /** etcd events of the circuit (its Traefik keys, meta and lock keys) between the evidence revisions. */
  events: HistEvent[];
  eventsOmitted: number;
  /** Operations whose leases or transactions appear in the slice. */
  ops: OpLogRecord[];
  /** Faults that overlapped those operations in time. */
  faults: FaultRecord[];
}

/** The smallest piece of history that shows a violation: its circuit's events between the revisions that witness it. */
export function sliceFor(layout: Layout, v: Violation, events: readonly HistEvent[], ops: readonly OpLogRecord[], faults: readonly FaultRecord[], maxEvents = 200): Slice {
  const classify = classifier(layout);
  const revs = v.revisions.length > 0 ? v.revisions : v.revision !== undefined ? [v.revision] : [];
  const lo = revs.length ? Math.min(...revs) : 0;
  const hi = revs.length ? Math.max(...revs) : 0;
  const leases = new Set(v.leases);
  const ofCircuit = (e: HistEvent): boolean => {
    if (v.circuitId === undefined) return e.key === v.key;
    const k = classify(e.key);
    return k.kind !== 'other' && k.circuitId === v.circuitId;
  };
  let inWindow = revs.length ? events.filter((e) => e.rev >= lo && e.rev <= hi && ofCircuit(e)) : [];
  let omitted = 0;
  if (inWindow.length > maxEvents) {
    // Keep the witnessing revisions and the writers' lock keys; drop the middle.
    const keep = inWindow.filter((e) => revs.includes(e.rev) || [...leases].some((l) => e.key.endsWith(`/${l}`)));
    omitted = inWindow.length - keep.length;
    inWindow = keep.slice(0, maxEvents);
  }
  const sliceRevs = new Set(inWindow.map((e) => e.rev));
  for (const r of revs) sliceRevs.add(r);
  const involved = ops.filter(
    (o) =>
      o.leases.some((l) => leases.has(l)) ||
      o.txns.some((t) => t.rev !== undefined && t.ok === true && sliceRevs.has(t.rev) && (t.meta || t.lock !== undefined || (t.puts ?? 0) + (t.dels ?? 0) > 0) && (v.circuitId === undefined || o.circuitId === undefined || o.circuitId === v.circuitId || o.kind === 'sweep')) ||
      (v.op !== undefined && o.w === v.op.worker && o.i === v.op.i),
  );
  const t0 = Math.min(...involved.map((o) => o.start), Infinity);
  const t1 = Math.max(...involved.map((o) => o.end), -Infinity);
  const overlapping = faults.filter((f) => f.start <= t1 && (f.end ?? f.start) >= t0);
  return { violation: v, events: inWindow, eventsOmitted: omitted, ops: involved.slice(0, 60), faults: overlapping };
}

// ---- text ---------------------------------------------------------------------------------------------

export function table(rows: Array<Array<string | number>>, header?: Array<string>): string {
  const all = header ? [header, ...rows] : rows;
  const widths = all[0]!.map((_, c) => Math.max(...all.map((r) => String(r[c] ?? '').length)));
  const line = (r: Array<string | number>) =>
    r.map((cell, c) => (typeof cell === 'number' ? String(cell).padStart(widths[c]!) : String(cell).padEnd(widths[c]!))).join('  ').trimEnd();
  const out = all.map(line);
  if (header) out.splice(1, 0, widths.map((w) => '-'.repeat(w)).join('  '));
  return out.join('\n');
}

export function fmtMs(ms: number | null | undefined): string {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return '-';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 120_000) return `${(ms / 1000).toFixed(1)} s`;
  return `${Math.floor(ms / 60_000)} min ${Math.round((ms % 60_000) / 1000)} s`;
}
