// Command-line options of `npm run chaos` (node:util parseArgs), validated with messages that name
// the option. Pure: parseOptions throws a UsageError, the CLI prints it.
import { parseArgs } from 'node:util';
import { randomBytes } from 'node:crypto';
import { FAULT_COUNTS, FAULT_KINDS, MIN_MEMBERS, type FaultKind } from './workload.js';

export class UsageError extends Error {
  override name = 'UsageError';
}

export type Strategy = 'circuitry' | 'naive' | 'unfenced-reads';
export const STRATEGIES: readonly Strategy[] = ['circuitry', 'naive', 'unfenced-reads'];

export interface Options {
  help: boolean;
  ops: number;
  procs: number;
  lanes: number;
  /** 1: one etcd (startServices); 3, 5, …: a cluster (startEtcdCluster) behind fault proxies. */
  etcdMembers: number;
  seed: string;
  faults: FaultKind[];
  counts: Record<FaultKind, number>;
  strategy: Strategy;
  out: string | null;
  circuits: number;
  backends: number;
  lockTtlSeconds: number;
  bypassLiveness: 'none' | 'half' | 'all';
  timeLimitSeconds: number;
  quiet: boolean;
  /** The options as given (for the replay command). */
  given: Record<string, string>;
}

export const USAGE = `Usage: npm run chaos -- [options]

Runs the chaos harness: its own etcd + PostgreSQL, P worker processes issuing seeded random
operations through the real handlers over a few circuits, faults injected on a seeded schedule,
then checks the recorded etcd history and the final state against DESIGN.md's invariants.

Options:
  --ops N              operations in total (default 10000)
  --procs P            worker processes (default 4)
  --lanes L            operations in flight per worker process (default 2)
  --seed S             seed (default: random); the same seed replays the same operations and faults
  --etcd-members N     etcd members: 1 (default) or a cluster of 3, 5 or 7 on 127.0.0.1, each
                       behind a fault proxy; the workers get every member's endpoint
  --faults LIST        comma-separated: ${FAULT_KINDS.join(',')}, or none
                       (default: every kind the etcd topology allows; leader-kill and partition
                       need --etcd-members 3 or more)
  --pauses N           pause faults (SIGSTOP > LOCK_TTL_SECONDS, then SIGCONT) (default 1.2% of ops);
                       half are armed at a statement under a lock (before it: the lock expires first)
  --kills N            kill faults (SIGKILL mid-operation, replacement started) (default 0.6% of ops)
  --etcd-restarts N    etcd restarts (same port and data) (default max(1, 0.04% of ops))
  --db-drops N         dropped database connections (default 0.2% of ops)
  --dropped-unloads N  accepted DELETEs whose CircuitUnloadRequested is never delivered (default 0.3% of ops)
  --leader-kills N     SIGKILL of the etcd leader, restarted with its data 0.3-3 s later
                       (default max(1, 0.05% of ops))
  --partitions N       partitions of 1-4 s through the fault proxies: the leader or a follower
                       isolated from its peers (clients still reach it), or the clients cut from
                       the leader (default max(1, 0.08% of ops))
  --pg-restarts N      PostgreSQL restarts (fast shutdown) while statements are in flight
                       (default max(1, 0.04% of ops))
  --strategy S         circuitry (default), or a negative control that must report violations:
                       naive (the reference system's write path) or unfenced-reads (lock holders
                       that only read do not advance the database fence)
  --circuits N         circuit slots the operations contend on (default 6)
  --backends N         fake backends whose health flips (default 6)
  --lock-ttl S         LOCK_TTL_SECONDS of the workers (default 2)
  --bypass-liveness M  none|half|all: workers whose session ignores its local liveness clock, so a
                       paused writer really sends its write and only etcd's fence stops it (default half)
  --time-limit S       stop issuing operations after S seconds (default 1200)
  --out DIR            output directory (default chaos-out/<timestamp>-<seed>)
  --quiet              no progress line
  -h, --help           this help

Output: a progress line on stderr, a summary table on stdout, and in the output directory
summary.json, ops-<worker>.jsonl, faults.jsonl, history.jsonl and, for each violation found, a
violation-<n>.json with the minimal slice of history that shows it and the command to replay it.
Exit status: 0 when the run met its expectation (circuitry: no violation; naive: at least one),
1 when it did not, 2 for a usage or harness error.`;

const INT_OPTS = ['ops', 'procs', 'lanes', 'etcd-members', ...FAULT_KINDS.map((k) => FAULT_COUNTS[k].option), 'circuits', 'backends', 'lock-ttl', 'time-limit'] as const;

function int(name: string, raw: string, min: number, max: number): number {
  if (!/^\d+$/.test(raw)) throw new UsageError(`--${name} must be a whole number, got "${raw}"`);
  const n = Number(raw);
  if (n < min || n > max) throw new UsageError(`--${name} must be between ${min} and ${max}, got ${n}`);
  return n;
}

export function parseOptions(argv: readonly string[]): Options {
  let parsed;
  try {
    parsed = parseArgs({
      args: [...argv],
      strict: true,
      allowPositionals: false,
      options: {
        ...Object.fromEntries(INT_OPTS.map((o) => [o, { type: 'string' as const }])),
        seed: { type: 'string' },
        faults: { type: 'string' },
        strategy: { type: 'string' },
        out: { type: 'string' },
        'bypass-liveness': { type: 'string' },
        quiet: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (err) {
    throw new UsageError((err as Error).message.replace(/\. To specify a positional argument.*$/s, ''));
  }
  const v = parsed.values as Record<string, string | boolean | undefined>;
  const s = (k: string): string | undefined => (typeof v[k] === 'string' ? (v[k] as string) : undefined);
  const given: Record<string, string> = {};
  for (const [k, val] of Object.entries(v)) if (typeof val === 'string') given[k] = val;

  const ops = s('ops') !== undefined ? int('ops', s('ops')!, 1, 1_000_000) : 10_000;
  const procs = s('procs') !== undefined ? int('procs', s('procs')!, 1, 32) : 4;
  if (ops < procs) throw new UsageError(`--ops (${ops}) must be at least --procs (${procs})`);
  const lanes = s('lanes') !== undefined ? int('lanes', s('lanes')!, 1, 16) : 2;
  const seed = s('seed') ?? randomBytes(4).toString('hex');
  if (!/^[A-Za-z0-9_.-]{1,64}$/.test(seed)) throw new UsageError(`--seed must be 1-64 characters of [A-Za-z0-9_.-], got "${seed}"`);

  const etcdMembers = s('etcd-members') !== undefined ? int('etcd-members', s('etcd-members')!, 1, 7) : 1;
  if (etcdMembers !== 1 && etcdMembers % 2 === 0) {
    throw new UsageError(`--etcd-members must be 1 or an odd number (a cluster of ${etcdMembers} tolerates no more failures than one of ${etcdMembers - 1}), got ${etcdMembers}`);
  }
  const allowed = (k: FaultKind): boolean => etcdMembers >= (MIN_MEMBERS[k] ?? 1);
  const faultsRaw = s('faults') ?? FAULT_KINDS.filter(allowed).join(',');
  const faults: FaultKind[] = [];
  if (faultsRaw !== 'none') {
    for (const f of faultsRaw.split(',').map((x) => x.trim()).filter(Boolean)) {
      if (!(FAULT_KINDS as readonly string[]).includes(f)) {
        throw new UsageError(`--faults: unknown fault "${f}" (known: ${FAULT_KINDS.join(', ')}, or none)`);
      }
      if (!allowed(f as FaultKind)) {
        throw new UsageError(`--faults: "${f}" needs --etcd-members ${MIN_MEMBERS[f as FaultKind]} or more (got ${etcdMembers})`);
      }
      if (!faults.includes(f as FaultKind)) faults.push(f as FaultKind);
    }
    if (faults.length === 0) throw new UsageError('--faults is empty (use --faults none for no faults)');
  }
  const counts = {} as Record<FaultKind, number>;
  for (const k of FAULT_KINDS) {
    const opt = FAULT_COUNTS[k].option;
    const raw = s(opt);
    const n = raw !== undefined ? int(opt, raw, 0, 100_000) : FAULT_COUNTS[k].default(ops);
    if (raw !== undefined && n > 0 && !allowed(k)) throw new UsageError(`--${opt} needs --etcd-members ${MIN_MEMBERS[k]} or more (got ${etcdMembers})`);
    if (raw !== undefined && n > 0 && !faults.includes(k)) throw new UsageError(`--${opt} ${n} given but "${k}" is not in --faults`);
    counts[k] = faults.includes(k) ? n : 0;
  }

  const strategy = (s('strategy') ?? 'circuitry') as Strategy;
  if (!STRATEGIES.includes(strategy)) throw new UsageError(`--strategy must be one of ${STRATEGIES.join(', ')}, got "${strategy}"`);
  const bypass = s('bypass-liveness') ?? 'half';
  if (bypass !== 'none' && bypass !== 'half' && bypass !== 'all') throw new UsageError(`--bypass-liveness must be none, half or all, got "${bypass}"`);
  const out = s('out') ?? null;
  if (out !== null && out.trim() === '') throw new UsageError('--out must not be empty');

  return {
    help: v.help === true,
    ops,
    procs,
    lanes,
    etcdMembers,
    seed,
    faults,
    counts,
    strategy,
    out,
    circuits: s('circuits') !== undefined ? int('circuits', s('circuits')!, 2, 64) : 6,
    backends: s('backends') !== undefined ? int('backends', s('backends')!, 2, 32) : 6,
    lockTtlSeconds: s('lock-ttl') !== undefined ? int('lock-ttl', s('lock-ttl')!, 2, 30) : 2,
    bypassLiveness: bypass,
    timeLimitSeconds: s('time-limit') !== undefined ? int('time-limit', s('time-limit')!, 10, 86_400) : 1200,
    quiet: v.quiet === true,
    given,
  };
}

/** The exact command that replays a run (seed included, output directory left out). */
export function replayCommand(o: Options): string {
  const parts = ['npm run chaos --', `--ops ${o.ops}`, `--procs ${o.procs}`, `--seed ${o.seed}`, `--faults ${o.faults.length ? o.faults.join(',') : 'none'}`, `--strategy ${o.strategy}`];
  const extra: Array<[string, string]> = [
    ['lanes', String(o.lanes)],
    ['etcd-members', String(o.etcdMembers)],
    ['circuits', String(o.circuits)],
    ['backends', String(o.backends)],
    ['lock-ttl', String(o.lockTtlSeconds)],
    ['bypass-liveness', o.bypassLiveness],
    ...FAULT_KINDS.map((k): [string, string] => [FAULT_COUNTS[k].option, String(o.counts[k])]),
    ['time-limit', String(o.timeLimitSeconds)],
  ];
  for (const [k, val] of extra) if (o.given[k] !== undefined) parts.push(`--${k} ${val}`);
  return parts.join(' ');
}
