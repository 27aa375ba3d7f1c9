// Shared helpers of `npm run bench` (harness/bench/run.ts): statistics, etcd server-side RPC
// counting (Prometheus /metrics), database round-trip counting (WebSocket frames), child
// processes, and table printing. No timed assertions anywhere: benchmarks report, never fail on
// a number.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const BENCH_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const ROOT = path.resolve(BENCH_DIR, '../..');

// ---- statistics ------------------------------------------------------------------------------

export interface Summary {
  n: number;
  p50: number;
  p90: number;
  p99: number;
  mean: number;
  min: number;
  max: number;
}

/** Nearest-rank percentile of an ascending array. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const idx = Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1));
  return sorted[idx]!;
}

export function summarize(xs: readonly number[]): Summary {
  const s = [...xs].sort((a, b) => a - b);
  const mean = s.reduce((a, b) => a + b, 0) / Math.max(1, s.length);
  return {
    n: s.length,
    p50: round(percentile(s, 0.5)),
    p90: round(percentile(s, 0.9)),
    p99: round(percentile(s, 0.99)),
    mean: round(mean),
    min: round(s[0] ?? NaN),
    max: round(s[s.length - 1] ?? NaN),
  };
}

export const round = (x: number, digits = 3): number => {
  if (!Number.isFinite(x)) return x;
  const f = 10 ** digits;
  return Math.round(x * f) / f;
};
export const ratio = (a: number, b: number, digits = 3): number => round(a / b, digits);

// ---- etcd: server-side RPC counts from Prometheus metrics --------------------------------------

/** `${metric}|${grpc_method}|${grpc_type}` -> value, for the grpc_server_* counters. */
export type EtcdCounters = Map<string, number>;

const METRIC_RE = /^(grpc_server_(?:started|handled|msg_received|msg_sent)_total)\{([^}]*)\} ([0-9.e+]+)$/;

export async function scrapeEtcd(endpoint: string): Promise<EtcdCounters> {
  const res = await fetch(`${endpoint.replace(/\/$/, '')}/metrics`);
  const text = await res.text();
  const out: EtcdCounters = new Map();
  for (const line of text.split('\n')) {
    const m = METRIC_RE.exec(line);
    if (!m) continue;
    const labels = Object.fromEntries([...m[2]!.matchAll(/(\w+)="([^"]*)"/g)].map((x) => [x[1]!, x[2]!]));
    const key = `${m[1]}|${labels.grpc_method ?? '?'}|${labels.grpc_type ?? '?'}`;
    out.set(key, (out.get(key) ?? 0) + Number(m[3]));
  }
  return out;
}

export interface EtcdDiff {
  /** Completed unary RPCs by method (grpc_server_handled_total, all codes). */
  unary: Record<string, number>;
  /** Total unary RPCs. */
  unaryTotal: number;
  /** Streams opened by method (grpc_server_started_total of stream types). */
  streamsStarted: Record<string, number>;
  /** Messages received on streams by method (grpc_server_msg_received_total, e.g. LeaseKeepAlive). */
  streamMsgs: Record<string, number>;
}

export function diffEtcd(before: EtcdCounters, after: EtcdCounters): EtcdDiff {
  const d: EtcdDiff = { unary: {}, unaryTotal: 0, streamsStarted: {}, streamMsgs: {} };
  for (const [key, v] of after) {
    const delta = v - (before.get(key) ?? 0);
    if (delta === 0) continue;
    const [metric, method, type] = key.split('|') as [string, string, string];
    if (type === 'unary') {
      if (metric === 'grpc_server_handled_total') {
        d.unary[method] = (d.unary[method] ?? 0) + delta;
        d.unaryTotal += delta;
      }
    } else if (metric === 'grpc_server_started_total') {
      d.streamsStarted[method] = (d.streamsStarted[method] ?? 0) + delta;
    } else if (metric === 'grpc_server_msg_received_total') {
      d.streamMsgs[method] = (d.streamMsgs[method] ?? 0) + delta;
    }
  }
  return d;
}

/** The diff divided by the number of operations it covered. */
export function perOp(d: EtcdDiff, ops: number): EtcdDiff {
  const div = (r: Record<string, number>) => Object.fromEntries(Object.entries(r).map(([k, v]) => [k, round(v / ops)]));
  return { unary: div(d.unary), unaryTotal: round(d.unaryTotal / ops), streamsStarted: div(d.streamsStarted), streamMsgs: div(d.streamMsgs) };
}

const SHORT: Record<string, string> = { LeaseGrant: 'Grant', LeaseRevoke: 'Revoke', DeleteRange: 'Del', LeaseKeepAlive: 'KeepAlive' };
const short = (m: string) => SHORT[m] ?? m;

/** Compact: "Txn 2, Grant 1, KeepAlive stream 1 (msgs 1)". */
export const fmtRpcs = (d: EtcdDiff): string =>
  [
    ...Object.entries(d.unary)
      .sort()
      .map(([k, v]) => `${short(k)} ${v}`),
    ...Object.entries(d.streamsStarted).map(([k, v]) => `${short(k)} stream ${v}`),
    ...Object.entries(d.streamMsgs).map(([k, v]) => `${short(k)} msg ${v}`),
  ].join(', ') || 'none';

// ---- database: WebSocket frames through the Neon driver ------------------------------------------

export interface WsCounts {
  /** Frames the driver sent to the WebSocket proxy (client → Postgres). */
  sent: number;
}

const wsCounts: WsCounts = { sent: 0 };
let wsPatched = false;

/**
 * Counts WebSocket frames of every `ws` client socket in this process (the Neon driver's
 * transport; its coalesceWrites batches one query's Parse/Bind/Execute/Sync into one frame).
 * Must run in a process that holds no proxy (server-side sockets are skipped anyway).
 */
export async function countWebSocketFrames(): Promise<() => WsCounts> {
  if (!wsPatched) {
    wsPatched = true;
    const { WebSocket } = await import('ws');
    const proto = WebSocket.prototype as unknown as {
      send: (...a: unknown[]) => unknown;
      _isServer?: boolean;
    };
    const send = proto.send;
    proto.send = function (this: { _isServer?: boolean }, ...a: unknown[]) {
      if (this._isServer !== true) wsCounts.sent++;
      return send.apply(this, a);
    };
  }
  return () => ({ ...wsCounts });
}

// ---- CPU time of other processes (Linux /proc) ---------------------------------------------------

const CLK_TCK = 100; // sysconf(_SC_CLK_TCK) on Linux

function statFields(pid: number): string[] | null {
  try {
    const s = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return s.slice(s.lastIndexOf(')') + 2).split(' ');
  } catch {
    return null;
  }
}

/** utime + stime of pid and, with children, of its direct children (Postgres backends), in ms. */
export function cpuMsOf(pid: number, children = false): number {
  const own = (f: string[] | null) => (f ? ((Number(f[11]) + Number(f[12])) * 1000) / CLK_TCK : 0);
  let ms = own(statFields(pid));
  if (children) {
    for (const e of fs.readdirSync('/proc')) {
      if (!/^\d+$/.test(e)) continue;
      const f = statFields(Number(e));
      if (f && Number(f[1]) === pid) ms += own(f);
    }
  }
  return ms;
}

// ---- child processes ----------------------------------------------------------------------------

export interface Child {
  child: ChildProcess;
  /** The next stdout line that parses as JSON (other lines are passed to stderr). */
  next<T = unknown>(timeoutMs?: number): Promise<T>;
  send(obj: unknown): void;
  exited: Promise<number | null>;
}

const live = new Set<ChildProcess>();
process.on('exit', () => {
  for (const c of live) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
});

/** Starts `node [nodeArgs] --import tsx harness/bench/<script> ...args` speaking JSON lines. */
export function startChild(script: string, args: string[], env: Record<string, string> = {}, nodeArgs: string[] = []): Child {
  const child = spawn(process.execPath, [...nodeArgs, '--import', 'tsx', path.join(BENCH_DIR, script), ...args], {
    cwd: ROOT,
    env: { ...process.env, POWERTOOLS_LOG_LEVEL: 'ERROR', ...env },
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  live.add(child);
  const queue: unknown[] = [];
  const waiters: Array<() => void> = [];
  let buf = '';
  child.stdout!.on('data', (d: Buffer) => {
    buf += d.toString();
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      try {
        queue.push(JSON.parse(line));
        for (const w of waiters.splice(0)) w();
      } catch {
        process.stderr.write(`[${script}] ${line}\n`);
      }
    }
  });
  const exited = new Promise<number | null>((resolve) =>
    child.on('exit', (code) => {
      live.delete(child);
      for (const w of waiters.splice(0)) w();
      resolve(code);
    }),
  );
  return {
    child,
    exited,
    send: (obj) => child.stdin!.write(JSON.stringify(obj) + '\n'),
    next<T>(timeoutMs = 30 * 60_000): Promise<T> {
      return new Promise<T>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`${script}: no output within ${timeoutMs} ms`)), timeoutMs);
        const check = () => {
          if (queue.length > 0) {
            clearTimeout(timer);
            resolve(queue.shift() as T);
          } else if (child.exitCode !== null || child.signalCode !== null) {
            clearTimeout(timer);
            reject(new Error(`${script} exited (${child.exitCode ?? child.signalCode}) without output`));
          } else waiters.push(check);
        };
        check();
      });
    },
  };
}

/** In a child: one JSON line to the parent. */
export const emit = (obj: unknown): void => {
  process.stdout.write(JSON.stringify(obj) + '\n');
};

/** In a child: resolves with each JSON line the parent sends. */
export function parentMessages(): () => Promise<unknown> {
  const queue: unknown[] = [];
  const waiters: Array<() => void> = [];
  let buf = '';
  process.stdin.on('data', (d: Buffer) => {
    buf += d.toString();
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      queue.push(JSON.parse(buf.slice(0, i)));
      buf = buf.slice(i + 1);
      for (const w of waiters.splice(0)) w();
    }
  });
  return () =>
    new Promise((resolve) => {
      const check = () => (queue.length > 0 ? resolve(queue.shift()) : waiters.push(check));
      check();
    });
}

// ---- output ---------------------------------------------------------------------------------------

export function table(title: string, header: string[], rows: Array<Array<string | number>>): string {
  const cells = [header, ...rows.map((r) => r.map((c) => (typeof c === 'number' ? fmtNum(c) : c)))];
  const w = header.map((_, i) => Math.max(...cells.map((r) => String(r[i] ?? '').length)));
  const line = (r: Array<string | number>) =>
    r.map((c, i) => (i === 0 ? String(c).padEnd(w[i]!) : String(c).padStart(w[i]!))).join('  ');
  return [`\n${title}`, line(header), w.map((x) => '-'.repeat(x)).join('  '), ...cells.slice(1).map(line)].join('\n');
}

export function fmtNum(x: number): string {
  if (!Number.isFinite(x)) return String(x);
  if (Number.isInteger(x)) return String(x);
  if (Math.abs(x) >= 100) return x.toFixed(0);
  if (Math.abs(x) >= 10) return x.toFixed(1);
  return x.toFixed(2);
}

export const log = (s: string): void => {
  process.stderr.write(`bench: ${s}\n`);
};

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
