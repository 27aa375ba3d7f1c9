// The chaos workload, as pure functions of the seed: the circuits ("slots"), their routes over
// the fake backends, and every operation of every worker. Operation i of worker w is
// opFor(seed, w, i): a replacement process for a killed worker resumes with the same sequence.
import { rngFor, uuidFor } from './rng.js';

/** Worker authorities the circuits are spread over (each has its own Traefik root). */
export const AUTHORITIES = ['chaos-a', 'chaos-b'] as const;
export const FRONTEND_PORT_BASE = 30000;
export const API_TOKEN = 'chaos-token-0123456789abcdef';

export interface Shape {
  seed: string;
  /** Number of circuit slots (a slot holds one live circuit at a time; unload + create = next incarnation). */
  slots: number;
  /** Fake backends (route targets). */
  backends: number;
}

export type OpKind = 'create' | 'create-retry' | 'update-routes' | 'unload' | 'unload-dup' | 'unload-late' | 'sweep';
export const OP_KINDS: readonly OpKind[] = ['create', 'create-retry', 'update-routes', 'unload', 'unload-dup', 'unload-late', 'sweep'];

// create-retry is a client re-sending a POST after a timeout: the same body, answered with the
// stored circuit, which is published again — a lock holder that only reads.
const WEIGHTS: Readonly<Record<OpKind, number>> = {
  create: 16,
  'create-retry': 10,
  'update-routes': 34,
  unload: 6,
  'unload-dup': 2,
  'unload-late': 4,
  sweep: 28,
};

export interface RouteChoice {
  /** Backend index. */
  b: number;
  ratio: number;
}

export interface Op {
  worker: number;
  i: number;
  kind: OpKind;
  slot: number;
  /** update-routes: the route set (may be empty). Creates use createChoicesFor (same for racing creators). */
  routes: RouteChoice[];
  /** update-routes: send If-Match with the generation read just before (may be stale by then). */
  ifMatch: boolean;
  /** sweep: also run drift repair and orphan cleanup. */
  drift: boolean;
  /** unload-late: how many incarnations before the newest one (0 = the newest). */
  lateBack: number;
}

export const slotAuthority = (slot: number): string => AUTHORITIES[slot % AUTHORITIES.length]!;
export const slotPort = (slot: number): number => FRONTEND_PORT_BASE + slot;
/** The last slot is an interactive circuit without health checking; the others are probed. */
export const slotProbed = (shape: Shape, slot: number): boolean => slot !== shape.slots - 1;

/** The id of incarnation k of a slot: racing creates of the same incarnation collide on it. */
export const circuitIdFor = (seed: string, slot: number, k: number): string => uuidFor(seed, 'circuit', slot, k);
/** The EventBridge event id of the unload of incarnation k: a late or duplicate delivery reuses it. */
export const unloadEventIdFor = (seed: string, slot: number, k: number): string => uuidFor(seed, 'unload-event', slot, k);

/** The routes incarnation k of a slot is created with: a pure function, so racing creators and retries send the same body. */
export function createChoicesFor(shape: Shape, slot: number, k: number): RouteChoice[] {
  const r = rngFor(shape.seed, 'create', slot, k);
  return r.subset(shape.backends, r.int(1, 4)).map((b) => ({ b, ratio: r.pick([1, 1, 0.5, 0.25]) }));
}

export function opFor(shape: Shape, worker: number, i: number): Op {
  const r = rngFor(shape.seed, 'op', worker, i);
  const kind = r.weighted(WEIGHTS);
  const slot = r.int(0, shape.slots - 1);
  const size = kind === 'create' ? r.int(1, 4) : r.chance(0.06) ? 0 : r.int(1, 4);
  const routes = r.subset(shape.backends, size).map((b) => ({ b, ratio: r.pick([1, 1, 0.5, 0.25]) }));
  return { worker, i, kind, slot, routes, ifMatch: r.chance(0.15), drift: r.chance(0.35), lateBack: r.int(0, 3) };
}

export interface RouteBody {
  routeId: string;
  sessionId: string;
  host: string;
  port: number;
  trafficRatio: number;
}

/** Route ids are per (slot, backend): a route that keeps its backend keeps its identity and health. */
export function routeBodies(seed: string, slot: number, choices: readonly RouteChoice[], backendPorts: readonly number[]): RouteBody[] {
  return choices.map(({ b, ratio }) => ({
    routeId: uuidFor(seed, 'route', slot, b),
    sessionId: uuidFor(seed, 'session', slot, b),
    host: '127.0.0.1',
    port: backendPorts[b]!,
    trafficRatio: ratio,
  }));
}

export function createBody(shape: Shape, slot: number, id: string, choices: readonly RouteChoice[], backendPorts: readonly number[]) {
  return {
    id,
    worker: slotAuthority(slot),
    protocol: 'http' as const,
    appMode: slotProbed(shape, slot) ? ('inference' as const) : ('interactive' as const),
    frontend: { mode: 'port' as const, port: slotPort(slot) },
    healthCheck: slotProbed(shape, slot)
      ? { path: '/health', intervalSeconds: 1, timeoutMs: 300, expectedStatus: 200, unhealthyThreshold: 1, healthyThreshold: 1, initialDelaySeconds: 0 }
      : null,
    routes: routeBodies(shape.seed, slot, choices, backendPorts),
  };
}

// ---- faults ---------------------------------------------------------------------------------------

export type FaultKind = 'pause' | 'kill' | 'etcd-restart' | 'db-drop' | 'drop-unload' | 'leader-kill' | 'partition' | 'pg-restart';
// New kinds go at the end: a plan draws its randomness kind by kind, so the plans of earlier
// seeds stay the same when the new kinds are not asked for.
export const FAULT_KINDS: readonly FaultKind[] = ['pause', 'kill', 'etcd-restart', 'db-drop', 'drop-unload', 'leader-kill', 'partition', 'pg-restart'];

/** Kinds that need an etcd cluster (--etcd-members) of at least this size. */
export const MIN_MEMBERS: Readonly<Partial<Record<FaultKind, number>>> = { 'leader-kill': 3, partition: 3 };

/** Per fault kind: its count option and its default count for a run of `ops` operations. */
export const FAULT_COUNTS: Readonly<Record<FaultKind, { option: string; help: string; default: (ops: number) => number }>> = {
  pause: { option: 'pauses', help: 'pause faults (SIGSTOP > LOCK_TTL_SECONDS, then SIGCONT)', default: (ops) => Math.ceil(ops * 0.012) },
  kill: { option: 'kills', help: 'kill faults (SIGKILL mid-operation, replacement started)', default: (ops) => Math.ceil(ops * 0.006) },
  'etcd-restart': { option: 'etcd-restarts', help: 'etcd restarts (same port and data; on a cluster every member)', default: (ops) => Math.max(1, Math.ceil(ops * 0.0004)) },
  'db-drop': { option: 'db-drops', help: 'dropped database connections', default: (ops) => Math.ceil(ops * 0.002) },
  'drop-unload': { option: 'dropped-unloads', help: 'accepted DELETEs whose CircuitUnloadRequested is never delivered', default: (ops) => Math.ceil(ops * 0.003) },
  'leader-kill': { option: 'leader-kills', help: 'SIGKILL of the etcd leader, restarted with its data 0.3-3 s later', default: (ops) => Math.max(1, Math.ceil(ops * 0.0005)) },
  partition: { option: 'partitions', help: 'network partitions for 1-4 s: the leader or a follower isolated from its peers, or the clients cut from the leader', default: (ops) => Math.max(1, Math.ceil(ops * 0.0008)) },
  'pg-restart': { option: 'pg-restarts', help: 'PostgreSQL restarts (fast shutdown) while statements are in flight', default: (ops) => Math.max(1, Math.ceil(ops * 0.0004)) },
};

/** What a partition cuts. */
export type PartitionVariant = 'isolate-leader' | 'isolate-follower' | 'clients-from-leader';
export const PARTITION_VARIANTS: readonly PartitionVariant[] = ['isolate-leader', 'isolate-follower', 'clients-from-leader'];

export interface PlannedFault {
  n: number;
  kind: FaultKind;
  /** Fire once this many operations have finished (reproducible whatever the machine's speed). */
  atOps: number;
  /**
   * pause/kill: 'external' = the coordinator signals the worker at a random moment of an
   * operation; 'armed' = the worker stops (pause) or kills itself at its next critical point: right
   * after a database change made under a circuit lock (circuitry) or right after its snapshot
   * (naive), i.e. inside the window a stale writer lives in.
   */
  how: 'external' | 'armed' | 'service';
  /**
   * armed: fire just before the locked database statement is sent (the lock may expire before the
   * statement runs: a late database write racing the lock's next owner) or just after its result
   * arrives (a late etcd write, which the fence must refuse).
   */
  where: 'before' | 'after';
  /** Preferred target worker (the next eligible one is used when it is unavailable). */
  target: number;
  /**
   * pause: how long the worker stays stopped; etcd-restart, leader-kill: how long etcd (the
   * member) stays down; partition: how long it lasts.
   */
  durationMs: number;
  /** partition: what it cuts. */
  variant?: PartitionVariant;
}

export function planFaults(
  seed: string,
  ops: number,
  counts: Readonly<Record<FaultKind, number>>,
  procs: number,
  lockTtlMs: number,
): PlannedFault[] {
  const r = rngFor(seed, 'faults');
  const out: Omit<PlannedFault, 'n'>[] = [];
  const end = 1 - Math.min(0.05, 20 / Math.max(1, ops));
  for (const kind of FAULT_KINDS) {
    const c = counts[kind];
    for (let k = 0; k < c; k++) {
      // Spread evenly (with jitter) over 3% of the run up to its last 20 operations (at most 95%
      // for short runs), so faults keep coming until the end and "converged after the last fault"
      // measures convergence, not the fault-free tail of the workload.
      const frac = 0.03 + ((end - 0.03) * (k + r.next())) / Math.max(1, c);
      out.push({
        kind,
        atOps: Math.max(1, Math.floor(frac * ops)),
        how: kind === 'pause' || kind === 'kill' ? (r.chance(0.5) ? 'armed' : 'external') : kind === 'drop-unload' ? 'armed' : 'service',
        target: r.int(0, procs - 1),
        where: r.chance(0.5) ? 'before' : 'after',
        durationMs:
          kind === 'pause'
            ? lockTtlMs + r.int(300, 1500)
            : kind === 'etcd-restart'
              ? r.int(100, 700)
              : kind === 'leader-kill'
                ? r.int(300, 3000)
                : kind === 'partition'
                  ? r.int(1000, 4000)
                  : 0,
        ...(kind === 'partition' ? { variant: r.pick(PARTITION_VARIANTS) } : {}),
      });
    }
  }
  out.sort((a, b) => a.atOps - b.atOps);
  return out.map((f, n) => ({ ...f, n }));
}

/** How many operations worker w runs (ops split as evenly as possible). */
export const opsOfWorker = (ops: number, procs: number, w: number): number => Math.floor(ops / procs) + (w < ops % procs ? 1 : 0);
