// `npm run chaos`: the chaos harness's coordinator. It
//   1. starts its own etcd (one member, or a cluster of --etcd-members behind fault proxies) +
//      PostgreSQL (+ the WebSocket proxy), migrates, installs the generation recorder, starts fake
//      backends whose health flips, registers two workers,
//   2. runs P worker processes (worker.ts) that issue the seeded operations through the real
//      handlers, and injects the seeded faults (pause, kill, etcd restart, dropped database
//      connections, dropped unload events, etcd leader kill, network partition, PostgreSQL
//      restart), logging each with its time and target,
//   3. when the workload is done: heals every fault, waits out the leases of killed workers, runs
//      ONE sweep, checks convergence (I2), reads back the complete etcd history (on a cluster:
//      from one member, compared with every other) and checks it (I1, I3, I4, I5, I6) and the
//      responses (R),
//   4. writes summary.json, the logs and one slice per violation, prints the summary table.
// Run `npm run chaos -- --help` for the options.
import fs from 'node:fs';
import path from 'node:path';
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseOptions, replayCommand, USAGE, UsageError, type Options } from './options.js';
import {
  API_TOKEN,
  AUTHORITIES,
  FAULT_KINDS,
  OP_KINDS,
  opsOfWorker,
  planFaults,
  type FaultKind,
  type PlannedFault,
} from './workload.js';
import type { WorkerConfig } from './worker.js';
import { startBackends, type Backends } from './backends.js';
import {
  checkAccepted,
  checkConvergence,
  checkFreshness,
  checkHistory,
  checkResponses,
  type AcceptedRequest,
  INVARIANTS,
  type FinalCircuit,
  type GenerationRecord,
  type Invariant,
  type Violation,
} from './check.js';
import type { Services } from '../devstack/services.js';
import type { EtcdCluster } from '../devstack/etcd-cluster.js';
import { fmtMs, sliceFor, table, type FaultRecord, type OpLogRecord } from './report.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const WORKER_SCRIPT = fileURLToPath(new URL('./worker.ts', import.meta.url));
const TRAEFIK_ROOT = 'traefik';
const UNLOAD_GRACE_SECONDS = 2;
// Longer than the lock TTL plus etcd's lease-expiry check (500 ms): a waiter queued behind a
// paused holder outlasts that holder's lease.
const LOCK_WAIT_MS = 4000;
const META_PREFIX = 'circuitry';
const layout = { traefikRoot: TRAEFIK_ROOT, metaPrefix: META_PREFIX };

// ---- worker processes ---------------------------------------------------------------------------------

interface Slot {
  w: number;
  count: number;
  incarnation: number;
  proc: ChildProcess | null;
  pid: number;
  state: 'starting' | 'running' | 'paused' | 'done' | 'exited';
  inFlight: Map<number, { kind: string; at: number }>;
  maxStarted: number;
  /** An armed fault waiting for the worker's next critical point. */
  armed: PlannedFault | null;
  /** An armed drop-unload waiting for the worker's next accepted DELETE. */
  armedDrop: PlannedFault | null;
  pauseTimer: NodeJS.Timeout | null;
  pauseFault: FaultRecord | null;
  crashes: number;
  bypassLiveness: boolean;
}

function now(): number {
  return Date.now();
}

class ChaosRun {
  private readonly started = now();
  private readersScheduled = 0;
  private readonly readerPauses = new Map<number, { slot: Slot; fault: FaultRecord }>();
  /** Harness servers to close at the end. */
  private readonly closers: Array<() => Promise<void>> = [];
  private readonly outDir: string;
  private readonly slots: Slot[] = [];
  private readonly faultLog: FaultRecord[] = [];
  private readonly killedOps: Array<{ w: number; i: number; kind: string; start: number; killedAt: number }> = [];
  private readonly statusCounts = new Map<string, Map<string, number>>();
  private readonly plan: PlannedFault[];
  private nextFault = 0;
  /** Drop-unloads whose worker ended before firing them, to arm on another worker. */
  private readonly dropsToRearm: PlannedFault[] = [];
  private opsDone = 0;
  private etcdBusy: Promise<void> | null = null;
  private draining = false;
  private spawned = 0;
  private harnessErrors: string[] = [];
  private faultsFd = -1;
  private services!: Services<boolean, true>;
  /** The etcd cluster (--etcd-members > 1); null with one etcd (services.etcd). */
  private cluster: EtcdCluster | null = null;
  /** What the etcd fault in progress is doing (progress line), while etcdBusy. */
  private etcdFault = '';
  private pgBusy: Promise<void> | null = null;
  /** The coordinator's database pool (set once migrated). */
  private db: { query: <R>(text: string, params?: unknown[]) => Promise<{ rows: R[] }> } | null = null;
  private backends!: Backends;
  private lastProgress = 0;

  constructor(private readonly o: Options) {
    const stamp = new Date(this.started).toISOString().replace(/[:.]/g, '-').replace('T', '_').slice(0, 19);
    this.outDir = path.resolve(o.out ?? path.join(ROOT, 'chaos-out', `${stamp}-${o.seed}`));
    this.plan = planFaults(o.seed, o.ops, o.counts, o.procs, o.lockTtlSeconds * 1000);
  }

  private log(line: string): void {
    if (!this.o.quiet) this.clearProgress();
    process.stderr.write(`[chaos] ${line}\n`);
  }

  // ---- progress -----------------------------------------------------------------------------------------

  private progressLine(): string {
    const pct = Math.floor((100 * this.opsDone) / this.o.ops);
    const width = 24;
    const filled = Math.round((width * this.opsDone) / this.o.ops);
    const f = this.faultCounts();
    const paused = this.slots.filter((s) => s.state === 'paused').map((s) => `w${s.w}`);
    const errs = this.countStatus((s) => s === 'error' || s === 'harness-error');
    return (
      `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${pct}% ${this.opsDone}/${this.o.ops} ops` +
      ` | ${FAULT_KINDS.filter((k) => this.o.counts[k] > 0).map((k) => `${k} ${f[k]}`).join(' ')}` +
      ` | ${errs} errors | ${fmtMs(now() - this.started)}${paused.length ? ` | paused ${paused.join(',')}` : ''}${this.etcdBusy ? ` | ${this.etcdFault}` : ''}${this.pgBusy ? ' | postgres restarting' : ''}`
    );
  }

  private clearProgress(): void {
    if (process.stderr.isTTY) process.stderr.write('\r\x1b[2K');
  }

  private progress(force = false): void {
    if (this.o.quiet) return;
    const t = now();
    if (process.stderr.isTTY) {
      if (!force && t - this.lastProgress < 200) return;
      this.lastProgress = t;
      const cols = process.stderr.columns ?? 120;
      process.stderr.write(`\r\x1b[2K${this.progressLine().slice(0, cols - 1)}`);
    } else if (force || t - this.lastProgress >= 10_000) {
      this.lastProgress = t;
      process.stderr.write(`[chaos] ${this.progressLine()}\n`);
    }
  }

  private countStatus(pred: (status: string) => boolean): number {
    let n = 0;
    for (const m of this.statusCounts.values()) for (const [s, c] of m) if (pred(s)) n += c;
    return n;
  }

  private faultCounts(): Record<FaultKind, number> {
    const c = Object.fromEntries(FAULT_KINDS.map((k) => [k, 0])) as Record<FaultKind, number>;
    for (const f of this.faultLog) if ((FAULT_KINDS as readonly string[]).includes(f.kind)) c[f.kind as FaultKind]++;
    return c;
  }

  private recordFault(f: FaultRecord): FaultRecord {
    this.faultLog.push(f);
    return f;
  }

  private flushFault(f: FaultRecord): void {
    fs.writeSync(this.faultsFd, `${JSON.stringify(f)}\n`);
  }

  // ---- workers ------------------------------------------------------------------------------------------

  private spawnWorker(s: Slot): void {
    const from = s.maxStarted + 1;
    if (from >= s.count || this.draining) {
      s.state = 'exited';
      s.proc = null;
      return;
    }
    const cfg: WorkerConfig = {
      seed: this.o.seed,
      strategy: this.o.strategy,
      slots: this.o.circuits,
      backendPorts: this.backends.ports,
      worker: s.w,
      incarnation: s.incarnation,
      from,
      count: s.count,
      lanes: this.o.lanes,
      logFile: path.join(this.outDir, `ops-${s.w}.jsonl`),
    };
    const out = fs.openSync(path.join(this.outDir, `worker-${s.w}.log`), 'a');
    let child: ChildProcess;
    try {
      child = spawn(process.execPath, ['--import', 'tsx', WORKER_SCRIPT], {
        cwd: ROOT,
        env: { ...process.env, CHAOS_WORKER: JSON.stringify(cfg), CHAOS_BYPASS_LIVENESS: s.bypassLiveness ? '1' : '0' },
        stdio: ['pipe', out, out, 'pipe'],
      });
    } finally {
      fs.closeSync(out);
    }
    this.spawned++;
    s.proc = child;
    s.pid = child.pid ?? -1;
    s.state = 'starting';
    child.stdin!.on('error', () => {});
    createInterface({ input: child.stdio[3] as NodeJS.ReadableStream }).on('line', (line) => {
      try {
        this.onMessage(s, child, JSON.parse(line) as Record<string, unknown>);
      } catch (err) {
        this.harnessErrors.push(`worker ${s.w}: bad message ${line.slice(0, 200)}: ${(err as Error).message}`);
      }
    });
    child.on('exit', (code, signal) => this.onExit(s, child, code, signal));
  }

  private onMessage(s: Slot, child: ChildProcess, m: Record<string, unknown>): void {
    if (s.proc !== child) return;
    const i = Number(m.i);
    switch (m.t) {
      case 'ready':
        if (s.state === 'starting') s.state = 'running';
        break;
      case 'start':
        s.inFlight.set(i, { kind: String(m.kind), at: Number(m.at) });
        s.maxStarted = Math.max(s.maxStarted, i);
        break;
      case 'end': {
        const op = s.inFlight.get(i);
        s.inFlight.delete(i);
        this.opsDone++;
        const kind = op?.kind ?? '?';
        const byStatus = this.statusCounts.get(kind) ?? new Map<string, number>();
        byStatus.set(String(m.status), (byStatus.get(String(m.status)) ?? 0) + 1);
        this.statusCounts.set(kind, byStatus);
        break;
      }
      case 'fire': {
        if (m.fault === 'drop-unload') {
          s.armedDrop = null;
          // A worker's report can arrive after its exit moved the fault on: count it once.
          if (this.faultLog.some((x) => x.kind === 'drop-unload' && x.n === Number(m.id))) break;
          const waiting = this.dropsToRearm.findIndex((d) => d.n === Number(m.id));
          if (waiting >= 0) this.dropsToRearm.splice(waiting, 1);
          const f = this.recordFault({ n: Number(m.id), kind: 'drop-unload', how: 'armed', target: s.w, pid: s.pid, start: Number(m.at) || now(), point: String(m.point), note: String(m.circuitId ?? '') });
          f.end = f.start;
          this.flushFault(f);
          break;
        }
        const planned = s.armed;
        s.armed = null;
        const kind = m.fault === 'pause' ? 'pause' : 'kill';
        const f = this.recordFault({
          n: planned?.n ?? Number(m.id),
          kind,
          how: 'armed',
          target: s.w,
          pid: s.pid,
          start: Number(m.at) || now(),
          point: String(m.point),
          note: [...s.inFlight.values()].map((x) => x.kind).join(','),
        });
        if (kind === 'pause') {
          s.state = 'paused';
          const planned_ = planned?.durationMs ?? this.o.lockTtlSeconds * 1000 + 500;
          if (typeof m.circuitId === 'string') {
            // Frozen between taking a lock and its statement: another worker takes the lock once the
            // lease has run out on the server, reads the circuit, and only then does this worker
            // resume (a superseded holder must not commit after a newer holder that only read).
            // The reader ends the pause; the timer is only a bound.
            this.schedulePauseEnd(s, f, Math.max(planned_, LOCK_WAIT_MS + 2000));
            this.scheduleReader(s, m.circuitId, f);
          } else {
            this.schedulePauseEnd(s, f, planned_);
          }
        } else {
          f.end = f.start;
          this.flushFault(f);
        }
        break;
      }
      case 'done':
        s.state = 'done';
        this.rearmDrop(s);
        break;
      case 'reader-read':
        this.onReaderDone(Number(m.readerId), 'read');
        break;
      case 'reader-done':
        this.onReaderDone(Number(m.readerId), String(m.status));
        break;
    }
  }

  /**
   * The paused worker holds a lock it is about to lose (its lease runs out while it is stopped).
   * Another worker queues for that lock right away — it is first in line when the lease expires —
   * reads the circuit, and as soon as it is done the paused worker resumes and sends its statement:
   * the only holder in between was a reader.
   */
  private scheduleReader(paused: Slot, circuitId: string, f: FaultRecord): void {
    setTimeout(() => {
      const running = this.slots.filter((x) => x !== paused && x.state === 'running' && x.proc !== null);
      const other = running.find((x) => x.armed === null) ?? running[0];
      if (other === undefined || this.draining) return;
      const readerId = this.readersScheduled++;
      this.readerPauses.set(readerId, { slot: paused, fault: f });
      other.proc!.stdin!.write(`${JSON.stringify({ t: 'reader', circuitId, readerId })}\n`);
      f.note = `${f.note ?? ''} (reader on worker ${other.w})`;
    }, 0);
  }

  /** The reader is done: resume its paused worker now (it has been stopped past the TTL by then). */
  private onReaderDone(readerId: number, status: string): void {
    const r = this.readerPauses.get(readerId);
    this.readerPauses.delete(readerId);
    if (r === undefined || r.slot.pauseFault !== r.fault || r.slot.pauseTimer === null) return;
    clearTimeout(r.slot.pauseTimer);
    r.fault.note = `${r.fault.note ?? ''} (reader ${status}, resumed)`;
    this.endPause(r.slot, r.fault);
  }

  private schedulePauseEnd(s: Slot, f: FaultRecord, durationMs: number): void {
    s.pauseFault = f;
    s.pauseTimer = setTimeout(() => this.endPause(s, f), durationMs);
  }

  private endPause(s: Slot, f: FaultRecord): void {
    s.pauseTimer = null;
    s.pauseFault = null;
    f.end = now();
    this.flushFault(f);
    if (s.proc !== null && s.pid === f.pid) {
      try {
        process.kill(s.pid, 'SIGCONT');
      } catch {
        /* gone */
      }
      if (s.state === 'paused') s.state = 'running';
    }
  }

  private onExit(s: Slot, child: ChildProcess, code: number | null, signal: NodeJS.Signals | null): void {
    if (s.proc !== child) return;
    const t = now();
    for (const [i, op] of s.inFlight) {
      this.killedOps.push({ w: s.w, i, kind: op.kind, start: op.at, killedAt: t });
      this.opsDone++;
      const byStatus = this.statusCounts.get(op.kind) ?? new Map<string, number>();
      byStatus.set('killed', (byStatus.get('killed') ?? 0) + 1);
      this.statusCounts.set(op.kind, byStatus);
    }
    s.inFlight.clear();
    if (s.pauseTimer !== null) {
      clearTimeout(s.pauseTimer);
      s.pauseTimer = null;
      if (s.pauseFault) {
        s.pauseFault.end = t;
        s.pauseFault.note = `${s.pauseFault.note ?? ''} (ended by the worker's exit)`;
        this.flushFault(s.pauseFault);
        s.pauseFault = null;
      }
    }
    s.armed = null;
    this.rearmDrop(s);
    s.proc = null;
    const finished = s.state === 'done' && code === 0;
    if (finished) {
      s.state = 'exited';
      return;
    }
    if (signal !== 'SIGKILL') {
      s.crashes++;
      this.harnessErrors.push(`worker ${s.w} (pid ${s.pid}) exited unexpectedly with ${code ?? signal}; see worker-${s.w}.log`);
      if (s.crashes > 10) {
        this.harnessErrors.push(`worker ${s.w} crashed too often; giving up on its remaining operations`);
        this.opsDone += Math.max(0, s.count - s.maxStarted - 1);
        s.maxStarted = s.count - 1;
      }
    }
    s.incarnation++;
    s.state = 'exited';
    this.spawnWorker(s);
  }

  // ---- faults -------------------------------------------------------------------------------------------

  /** The planned target if it can take a fault now, else the next one that can; null when none. */
  private pickTarget(f: PlannedFault, needInFlight: boolean): Slot | null {
    for (let k = 0; k < this.slots.length; k++) {
      const s = this.slots[(f.target + k) % this.slots.length]!;
      if (s.state !== 'running' || s.proc === null) continue;
      if (f.kind === 'drop-unload' ? s.armedDrop !== null : s.armed !== null) continue;
      if (needInFlight && s.inFlight.size === 0) continue;
      return s;
    }
    return null;
  }

  /** Executes a planned fault; false when it must wait (no eligible target, etcd already restarting). */
  private executeFault(f: PlannedFault): boolean {
    switch (f.kind) {
      case 'pause': {
        const s = this.pickTarget(f, f.how === 'external');
        if (s === null) return false;
        if (f.how === 'armed') {
          s.armed = f;
          s.proc!.stdin!.write(`${JSON.stringify({ t: 'arm', fault: 'pause', id: f.n, where: f.where })}\n`);
          return true;
        }
        try {
          process.kill(s.pid, 'SIGSTOP');
        } catch {
          return false;
        }
        s.state = 'paused';
        const rec = this.recordFault({ n: f.n, kind: 'pause', how: 'external', target: s.w, pid: s.pid, start: now(), note: [...s.inFlight.values()].map((x) => x.kind).join(',') });
        this.schedulePauseEnd(s, rec, f.durationMs);
        return true;
      }
      case 'kill': {
        const s = this.pickTarget(f, f.how === 'external');
        if (s === null) return false;
        if (f.how === 'armed') {
          s.armed = f;
          s.proc!.stdin!.write(`${JSON.stringify({ t: 'arm', fault: 'kill', id: f.n, where: f.where })}\n`);
          return true;
        }
        const rec = this.recordFault({ n: f.n, kind: 'kill', how: 'external', target: s.w, pid: s.pid, start: now(), note: [...s.inFlight.values()].map((x) => x.kind).join(',') });
        rec.end = rec.start;
        this.flushFault(rec);
        try {
          process.kill(s.pid, 'SIGKILL');
        } catch {
          /* already gone */
        }
        return true;
      }
      case 'etcd-restart': {
        if (this.etcdBusy !== null) return false;
        const cluster = this.cluster;
        const single = this.services.etcd;
        const rec = this.recordFault({ n: f.n, kind: 'etcd-restart', how: 'service', pid: single?.pid ?? -1, start: now() });
        this.etcdFault = cluster ? 'etcd cluster down' : 'etcd down';
        this.etcdBusy = (async () => {
          try {
            // A cluster restarts whole: every member stopped, then every member started (none can
            // become healthy before a quorum is up).
            if (cluster) await Promise.all(cluster.members.map((m) => m.stop()));
            else await single!.stop();
            await sleep(f.durationMs);
            if (cluster) await Promise.all(cluster.members.map((m) => m.start()));
            else await single!.start();
          } catch (err) {
            this.harnessErrors.push(`etcd restart ${f.n}: ${(err as Error).message}`);
            if (cluster) await Promise.all(cluster.members.map((m) => m.start().catch(() => {})));
            else await single!.start().catch(() => {});
          } finally {
            rec.end = now();
            rec.note = `down ${rec.end - rec.start} ms, new pid(s) ${cluster ? cluster.members.map((m) => m.pid).join(',') : single!.pid}`;
            this.flushFault(rec);
            this.etcdBusy = null;
          }
        })();
        return true;
      }
      case 'leader-kill': {
        const cluster = this.cluster;
        if (this.etcdBusy !== null || cluster === null) return false;
        const rec = this.recordFault({ n: f.n, kind: 'leader-kill', how: 'service', start: now() });
        this.etcdFault = 'etcd leader killed';
        this.etcdBusy = (async () => {
          const notes: string[] = [];
          let victim: number | null = null;
          try {
            victim = await cluster.waitForLeader(15_000);
            const m = cluster.members[victim]!;
            rec.pid = m.pid;
            rec.start = now();
            await m.kill(); // SIGKILL: no graceful leadership transfer
            const next = await cluster.waitForLeader(10_000, { not: victim }).catch(() => null);
            notes.push(`${m.name} killed (leader, pid ${rec.pid}); ${next === null ? 'no new leader within 10 s' : `${cluster.members[next]!.name} leads after ${now() - rec.start} ms`}`);
            await sleep(Math.max(0, f.durationMs - (now() - rec.start)));
            await m.start(); // with its data, on the same ports
            notes.push(`restarted after ${now() - rec.start} ms (pid ${m.pid})`);
          } catch (err) {
            this.harnessErrors.push(`leader kill ${f.n}: ${(err as Error).message}`);
            if (victim !== null) await cluster.members[victim]!.start().catch(() => {});
          } finally {
            rec.end = now();
            rec.note = notes.join('; ');
            this.flushFault(rec);
            this.etcdBusy = null;
          }
        })();
        return true;
      }
      case 'partition': {
        const cluster = this.cluster;
        if (this.etcdBusy !== null || cluster === null) return false;
        const variant = f.variant ?? 'isolate-follower';
        const rec = this.recordFault({ n: f.n, kind: 'partition', how: variant, start: now() });
        this.etcdFault = `partition (${variant})`;
        this.etcdBusy = (async () => {
          try {
            const leader = await cluster.waitForLeader(15_000);
            const followers = cluster.members.map((_, i) => i).filter((i) => i !== leader);
            const target = variant === 'isolate-follower' ? followers[f.target % followers.length]! : leader;
            rec.start = now();
            // Clients still reach an isolated member: it can answer nothing that needs a quorum.
            if (variant === 'clients-from-leader') cluster.partitionClientsFrom(target);
            else cluster.isolate(target);
            rec.note = `${cluster.members[target]!.name} (${target === leader ? 'leader' : 'follower'}) ${variant === 'clients-from-leader' ? 'cut from the clients' : 'isolated from its peers'} for ${f.durationMs} ms`;
            await sleep(f.durationMs);
          } catch (err) {
            this.harnessErrors.push(`partition ${f.n}: ${(err as Error).message}`);
          } finally {
            cluster.heal();
            rec.end = now();
            this.flushFault(rec);
            this.etcdBusy = null;
          }
        })();
        return true;
      }
      case 'pg-restart': {
        if (this.pgBusy !== null) return false;
        const rec = this.recordFault({ n: f.n, kind: 'pg-restart', how: 'fast', pid: this.services.postgres.pid, start: now() });
        this.pgBusy = (async () => {
          try {
            // Restart while workers' statements are running (waiting at most 500 ms for one).
            let active = 0;
            for (let t = now(); now() - t < 500; await sleep(10)) {
              active = await this.activeStatements().catch(() => 0);
              if (active > 0) break;
            }
            rec.start = now();
            await this.services.postgres.restart({ mode: 'fast' });
            rec.note = `${active} statement(s) active; down ${now() - rec.start} ms, new pid ${this.services.postgres.pid}`;
          } catch (err) {
            this.harnessErrors.push(`postgres restart ${f.n}: ${(err as Error).message}`);
            await this.services.postgres.start().catch(() => {});
          } finally {
            rec.end = now();
            this.flushFault(rec);
            this.pgBusy = null;
          }
        })();
        return true;
      }
      case 'db-drop': {
        const rec = this.recordFault({ n: f.n, kind: 'db-drop', how: 'service', start: now() });
        this.services.wsProxy.dropAll();
        rec.end = now();
        this.flushFault(rec);
        return true;
      }
      case 'drop-unload': {
        // The worker drops the event of its next accepted DELETE and reports it ('fire').
        const s = this.pickTarget(f, false);
        if (s === null) return false;
        s.armedDrop = f;
        s.proc!.stdin!.write(`${JSON.stringify({ t: 'arm', fault: 'drop-unload', id: f.n })}\n`);
        return true;
      }
    }
  }

  /**
   * After the workload: every partition healed, every member running, a leader, and every member
   * at the same revision (so any of them can be read for the history).
   */
  private async healEverything(): Promise<{ leader: string; revision: number; ms: number } | null> {
    const cluster = this.cluster;
    if (cluster === null) return null;
    const t0 = now();
    const leader = await cluster.recover(20_000);
    for (;;) {
      const revs = await Promise.all(cluster.members.map((_, i) => cluster.status(i, 1000).then((st) => st.revision, () => -1)));
      if (revs.every((r) => r >= 0 && r === revs[0])) return { leader: cluster.members[leader]!.name, revision: revs[0]!, ms: now() - t0 };
      if (now() - t0 > 30_000) throw new Error(`etcd members did not converge to one revision: ${revs.join(', ')}`);
      await sleep(50);
    }
  }

  /** Statements the workers are running now (pg_stat_activity, our own excluded). */
  private async activeStatements(): Promise<number> {
    const r = await this.db!.query<{ n: string }>(
      "SELECT count(*) AS n FROM pg_stat_activity WHERE state = 'active' AND backend_type = 'client backend' AND pid <> pg_backend_pid()",
    );
    return Number(r.rows[0]?.n ?? 0);
  }

  /**
   * A drop-unload armed on a worker that ends (killed, or out of operations) before its next
   * accepted DELETE moves to another worker, so the planned fault still happens.
   */
  private rearmDrop(s: Slot): void {
    if (s.armedDrop === null) return;
    this.log(`drop-unload ${s.armedDrop.n}: worker ${s.w} ended before an accepted DELETE; arming another worker`);
    this.dropsToRearm.push(s.armedDrop);
    s.armedDrop = null;
  }

  private tickFaults(): void {
    if (this.draining) return;
    while (this.dropsToRearm.length > 0 && this.executeFault(this.dropsToRearm[0]!)) this.dropsToRearm.shift();
    while (this.nextFault < this.plan.length && this.plan[this.nextFault]!.atOps <= this.opsDone) {
      if (!this.executeFault(this.plan[this.nextFault]!)) break;
      this.nextFault++;
    }
  }

  private workloadDone(): boolean {
    return this.slots.every((s) => s.proc === null && s.state === 'exited');
  }

  // ---- the run ------------------------------------------------------------------------------------------

  async execute(): Promise<{ summary: Record<string, unknown>; ok: boolean }> {
    const o = this.o;
    fs.mkdirSync(this.outDir, { recursive: true });
    // A reused output directory must not mix an earlier run's logs into this one's checks.
    for (const f of fs.readdirSync(this.outDir)) {
      if (/^(ops-\d+\.jsonl|worker-\d+\.log|violation-.*\.json|faults\.jsonl|history\.jsonl|generations\.jsonl|killed-ops\.jsonl|summary\.json|services\.log|command\.txt)$/.test(f)) fs.rmSync(path.join(this.outDir, f));
    }
    this.faultsFd = fs.openSync(path.join(this.outDir, 'faults.jsonl'), 'w');
    fs.writeFileSync(path.join(this.outDir, 'command.txt'), `${replayCommand(o)}\n`);
    this.log(`seed ${o.seed}, ${o.ops} ops, ${o.procs} processes x ${o.lanes} lanes, strategy ${o.strategy}, out ${path.relative(process.cwd(), this.outDir) || '.'}`);

    const { startServices } = await import('../devstack/services.js');
    const servicesLog = fs.openSync(path.join(this.outDir, 'services.log'), 'a');
    const logService = (l: string): void => void fs.writeSync(servicesLog, `${new Date().toISOString()} ${l}\n`);
    this.services = await startServices({ etcd: o.etcdMembers === 1, log: logService });
    if (o.etcdMembers > 1) {
      const { startEtcdCluster } = await import('../devstack/etcd-cluster.js');
      this.cluster = await startEtcdCluster({ size: o.etcdMembers, log: logService }).catch(async (err: unknown) => {
        await this.services.stop().catch(() => {});
        throw err;
      });
      this.log(`etcd: ${o.etcdMembers} members behind fault proxies (${this.cluster.endpoints.join(',')})`);
    }
    const cleanup = () => {
      for (const s of this.slots) if (s.proc !== null) { try { process.kill(s.pid, 'SIGKILL'); } catch { /* gone */ } }
    };
    process.on('exit', cleanup);
    try {
      return await this.body(servicesLog);
    } finally {
      cleanup();
      await this.backends?.close().catch(() => {});
      for (const c of this.closers) await c().catch(() => {});
      await this.cluster?.stop().catch(() => {});
      await this.services.stop().catch(() => {});
      fs.closeSync(servicesLog);
      fs.closeSync(this.faultsFd);
    }
  }

  private async body(servicesLog: number): Promise<{ summary: Record<string, unknown>; ok: boolean }> {
    const o = this.o;
    // EventBridge stand-in: PutEvents are accepted and discarded; the workers deliver (or, with a
    // drop-unload fault, never deliver) CircuitUnloadRequested to the unload function themselves.
    const { startLocalEventBridge } = await import('../devstack/local-eventbridge.js');
    const eventBridge = await startLocalEventBridge({ invoke: async () => ({}), log: () => {} });
    this.closers.push(() => eventBridge.close());
    Object.assign(process.env, {
      ...this.services.env,
      // On a cluster the workers (and this coordinator's own runtime) get every member, through
      // the fault proxies that partitions cut.
      ...(this.cluster ? { ETCD_ENDPOINTS: this.cluster.endpoints.join(',') } : {}),
      API_TOKENS: API_TOKEN,
      TRAEFIK_ROOT,
      META_PREFIX,
      LOCK_TTL_SECONDS: String(o.lockTtlSeconds),
      LOCK_WAIT_MS: String(LOCK_WAIT_MS),
      ETCD_TIMEOUT_MS: '1000',
      DATABASE_TIMEOUT_MS: '3000',
      ALLOWED_BACKEND_CIDRS: '127.0.0.0/8',
      EVENT_BUS_NAME: 'chaos',
      EVENT_SOURCE: 'circuitry',
      AWS_REGION: 'us-east-1',
      AWS_ACCESS_KEY_ID: 'chaos',
      AWS_SECRET_ACCESS_KEY: 'chaos',
      POWERTOOLS_LOG_LEVEL: 'ERROR',
      POWERTOOLS_METRICS_DISABLED: 'true',
      EVENTBRIDGE_ENDPOINT: eventBridge.url,
      // Dropped unload events are completed by the sweeps of the run after this grace.
      UNLOAD_GRACE_SECONDS: String(UNLOAD_GRACE_SECONDS),
      // Workers' invocations run at most 30 s (lambdaContext); tombstones retire during long runs.
      FUNCTION_TIMEOUT_SECONDS: '30',
      TOMBSTONE_RETENTION_SECONDS: String(30 + o.lockTtlSeconds + 5),
    });
    const { migrate } = await import('../../lib/db/index.js');
    await migrate(this.services.env.DATABASE_URL!, this.services.env.NEON_WS_PROXY, (l) => fs.writeSync(servicesLog, `${l}\n`));
    const { getRuntime, closeRuntime, Invocation } = await import('../../lib/runtime.js');
    const { HISTORY_TRIGGER_SQL, currentRevision, markEnd, readHistory, readPrefix, readGenerations } = await import('./history.js');
    const rt = getRuntime();
    const db = rt.db;
    this.db = db;
    await db.query(HISTORY_TRIGGER_SQL);
    this.backends = await startBackends(o.seed, o.backends);

    const { handler: circuitsApi } = await import('../../functions/circuits-api.js');
    const { apiEvent, lambdaContext, parseHttpResult } = await import('./lambda.js');
    for (const authority of AUTHORITIES) {
      const res = parseHttpResult(
        await circuitsApi(
          apiEvent({ method: 'PUT', path: `/v2/workers/${authority}`, pathParameters: { authority }, body: { hostname: `${authority}.example.com`, tls: false }, token: API_TOKEN }),
          lambdaContext(30_000, 'circuits-api'),
        ),
      );
      if (res.statusCode >= 300) throw new Error(`registering worker ${authority} failed: ${res.statusCode} ${JSON.stringify(res.body)}`);
    }
    const startRevision = await currentRevision(rt.etcd);

    // ---- workload + faults ----
    const workloadStart = now();
    for (let w = 0; w < o.procs; w++) {
      const bypass = o.bypassLiveness === 'all' || (o.bypassLiveness === 'half' && w % 2 === 1);
      this.slots.push({
        w,
        count: opsOfWorker(o.ops, o.procs, w),
        incarnation: 0,
        proc: null,
        pid: -1,
        state: 'exited',
        inFlight: new Map(),
        maxStarted: -1,
        armed: null,
        armedDrop: null,
        pauseTimer: null,
        pauseFault: null,
        crashes: 0,
        bypassLiveness: bypass,
      });
    }
    for (const s of this.slots) this.spawnWorker(s);
    let timedOut = false;
    while (!this.workloadDone()) {
      this.tickFaults();
      this.progress();
      if (!this.draining && now() - workloadStart > o.timeLimitSeconds * 1000) {
        timedOut = true;
        this.draining = true;
        this.log(`time limit of ${o.timeLimitSeconds} s reached: draining the workers`);
        for (const s of this.slots) s.proc?.stdin?.write(`${JSON.stringify({ t: 'drain' })}\n`);
      }
      if (this.draining && now() - workloadStart > o.timeLimitSeconds * 1000 + 60_000) {
        for (const s of this.slots) if (s.proc !== null) { try { process.kill(s.pid, 'SIGCONT'); process.kill(s.pid, 'SIGKILL'); } catch { /* gone */ } }
      }
      await sleep(50);
    }
    this.progress(true);
    if (!o.quiet && process.stderr.isTTY) process.stderr.write('\n');
    const workloadEnd = now();
    if (this.etcdBusy) await this.etcdBusy;
    if (this.pgBusy) await this.pgBusy;
    const healed = await this.healEverything();
    const executed = this.faultCounts();
    const dropsNotFired = this.plan.filter((f) => f.kind === 'drop-unload').length - executed['drop-unload'];
    const unexecuted = this.plan.filter((f, i) => i >= this.nextFault && f.kind !== 'drop-unload').length + dropsNotFired;

    // ---- convergence: activity has stopped; wait out the leases of killed workers, then ONE sweep ----
    this.backends.freeze();
    const lastFaultEnd = Math.max(0, ...this.faultLog.map((f) => f.end ?? f.start));
    // The leases of killed workers run out, and unloads whose event was dropped pass their grace.
    await sleep(Math.max(o.lockTtlSeconds, UNLOAD_GRACE_SECONDS) * 1000 + 500);
    const { readCircuits } = await import('../../lib/db/index.js');
    const { render } = await import('../../lib/traefik/index.js');
    const renderOpts = { traefikRoot: rt.config.traefikRoot, extraMiddlewares: rt.config.traefikExtraMiddlewares };
    const finalState = async () => {
      const ids = (await db.query<{ id: string }>('SELECT id FROM circuits')).rows.map((r) => r.id);
      const views = await readCircuits(db, ids);
      const circuits: FinalCircuit[] = views.map((v) => ({
        id: v.circuit.id,
        generation: v.circuit.generation,
        deleted: v.circuit.deletedAt !== null,
        expected: v.circuit.deletedAt !== null ? new Map() : render(v.circuit, v.worker, renderOpts),
      }));
      const keys = await readPrefix(rt.etcd, `${TRAEFIK_ROOT}/`);
      const metaRaw = await readPrefix(rt.etcd, `${META_PREFIX}/circuits/`);
      const metas = new Map([...metaRaw].map(([k, v]) => [k.slice(`${META_PREFIX}/circuits/`.length), v]));
      const locks = await readPrefix(rt.etcd, `${META_PREFIX}/locks/`);
      return { circuits, keys, metas, locks };
    };
    const before = await finalState();
    const beforeReport = checkConvergence(layout, before.keys, before.metas, before.circuits);
    const sweepStarted = now();
    let sweepStats: Record<string, unknown>;
    if (o.strategy !== 'naive') {
      const { runSweep } = await import('../../lib/health/index.js');
      const inv = new Invocation(rt);
      try {
        const s = await runSweep(inv, { publish: async () => {}, drift: true });
        sweepStats = { ...s, errors: s.errors.slice(0, 10) };
      } finally {
        await inv.close();
      }
    } else {
      const { NaiveWriter } = await import('./naive.js');
      sweepStats = { resynced: await new NaiveWriter(rt, async () => {}).resync() };
    }
    const after = await finalState();
    const convergedCheckAt = now();
    const convergence = checkConvergence(layout, after.keys, after.metas, after.circuits);
    const converged = convergence.violations.length === 0 && Object.values(convergence.byRule).every((n) => n === 0);

    // ---- the recorded history ----
    const endRevision = await markEnd(rt.etcd);
    // On a cluster, the history is read from one member's own port (everything healed, every
    // member caught up) and every other member must hold the very same history.
    const { Etcd3 } = await import('etcd3');
    const reader = (endpoint: string) => new Etcd3({ hosts: endpoint, dialTimeout: 5000 });
    const endpoints = this.cluster ? this.cluster.directEndpoints : [null];
    const historyReader = endpoints[0] === null ? rt.etcd : reader(endpoints[0]!);
    const events = await readHistory(historyReader, endRevision);
    if (historyReader !== rt.etcd) historyReader.close();
    const memberHistories: Array<{ member: string; events: number; sameAsFirst: boolean }> = [];
    for (const [i, endpoint] of endpoints.entries()) {
      if (endpoint === null) continue;
      const name = this.cluster!.members[i]!.name;
      if (i === 0) {
        memberHistories.push({ member: name, events: events.length, sameAsFirst: true });
        continue;
      }
      const other = reader(endpoint);
      try {
        const theirs = await readHistory(other, endRevision);
        const same = theirs.length === events.length && theirs.every((e, n) => JSON.stringify(e) === JSON.stringify(events[n]));
        memberHistories.push({ member: name, events: theirs.length, sameAsFirst: same });
        if (!same) this.harnessErrors.push(`etcd member ${name} holds another history than ${this.cluster!.members[0]!.name} (${theirs.length} vs ${events.length} events)`);
      } finally {
        other.close();
      }
    }
    fs.writeFileSync(path.join(this.outDir, 'history.jsonl'), events.map((e) => JSON.stringify(e)).join('\n') + '\n');
    const gens = await readGenerations(db);
    const generations: GenerationRecord[] = gens.map((g) => {
      let keys: Map<string, string> | undefined;
      try {
        keys = g.deleted ? new Map() : render(g.view.circuit, g.view.worker, renderOpts);
      } catch {
        keys = undefined;
      }
      return { circuitId: g.circuitId, generation: g.generation, deleted: g.deleted, addresses: g.view.circuit.routes.map((r) => `${r.host}:${r.port}`), ...(keys ? { keys } : {}) };
    });
    fs.writeFileSync(
      path.join(this.outDir, 'generations.jsonl'),
      gens.map((g) => JSON.stringify({ circuitId: g.circuitId, generation: g.generation, deleted: g.deleted, recordedAt: g.recordedAt, routes: g.view.circuit.routes.map((r) => `${r.host}:${r.port} ${r.health.status}`) })).join('\n') + '\n',
    );
    const history = checkHistory(layout, events, generations);
    const epochs = (await db.query<{ epoch: string; reason: string; started_revision: string }>('SELECT epoch, reason, started_revision FROM etcd_epochs ORDER BY epoch')).rows;
    const ops = this.readOps();
    // A queued route change is committed by the holder that claimed it, in another process: the
    // database says which were, and R counts them as the queuing operation's commits.
    const claimed = new Map(
      (await db.query<{ intent_id: string; circuit_id: string; generation: string }>(`SELECT intent_id, circuit_id, generation FROM route_intents WHERE status = 'applied'`)).rows.map((r) => [r.intent_id, r]),
    );
    for (const x of ops) {
      for (const id of x.intents ?? []) {
        const c = claimed.get(id);
        if (c !== undefined) (x.commits ??= []).push({ circuitId: c.circuit_id, generation: Number(c.generation), what: 'routes (queued)' });
      }
    }
    const responses = checkResponses(ops.map((x) => ({ worker: x.w, i: x.i, kind: x.kind, circuitId: x.circuitId, status: x.status, http: x.http, detail: x.detail, commits: x.commits, leases: x.leases })));
    const sentAt = new Map<number, number>();
    for (const x of ops) for (const t of x.txns) if (t.ok === true && t.meta === true && t.rev !== undefined && t.sent !== undefined) sentAt.set(t.rev, t.sent);
    const freshness = checkFreshness(
      layout,
      events,
      gens.map((g) => ({ circuitId: g.circuitId, generation: g.generation, recordedMs: g.recordedMs, fenceEpoch: g.fenceEpoch, fenceRevision: g.fenceRevision })),
      ops.flatMap((x) => (x.locked ?? []).filter((l) => l.rows > 0).map((l) => ({ circuitId: l.c, epoch: l.epoch, revision: l.rev, doneMs: l.done }))),
      sentAt,
    );
    const acceptedRequests: AcceptedRequest[] = ops.flatMap((x): AcceptedRequest[] => {
      if (x.circuitId === undefined || x.http === undefined || x.http < 200 || x.http >= 300) return [];
      if (x.kind === 'unload') return [{ worker: x.w, i: x.i, kind: 'delete', circuitId: x.circuitId }];
      if ((x.kind === 'create' || x.kind === 'create-retry' || x.kind === 'update-routes') && x.generation !== undefined) {
        return [{ worker: x.w, i: x.i, kind: 'write', circuitId: x.circuitId, generation: x.generation }];
      }
      return [];
    });
    const accepted = checkAccepted(layout, acceptedRequests, after);

    // ---- report ----
    const parts = [history, convergence, responses, freshness, accepted];
    const counts = Object.fromEntries(INVARIANTS.map((k) => [k, parts.reduce((n, p) => n + p.counts[k], 0)])) as Record<Invariant, number>;
    const byRule = Object.assign({}, ...parts.map((p) => p.byRule)) as Record<string, number>;
    const violations: Violation[] = parts.flatMap((p) => p.violations);
    const total = Object.values(counts).reduce((a, b) => a + b, 0);
    const faultsAll = this.faultLog;
    const sliceFiles: string[] = [];
    // One slice per rule first (the most telling invariants first), then more of each, up to 25 files.
    const order: Invariant[] = ['I1', 'I5', 'I2', 'I6', 'I4', 'R', 'I3'];
    const ranked = [...violations].sort((a, b) => order.indexOf(a.invariant) - order.indexOf(b.invariant));
    const firstOfRule = ranked.filter((v, n) => ranked.findIndex((x) => x.invariant === v.invariant && x.rule === v.rule) === n);
    const chosen = [...firstOfRule, ...ranked.filter((v) => !firstOfRule.includes(v))].slice(0, 25);
    chosen.forEach((v, n) => {
      const slice = sliceFor(layout, v, events, ops, faultsAll);
      const file = `violation-${String(n + 1).padStart(3, '0')}-${v.invariant}-${v.rule}.json`;
      const dbGenerations = v.circuitId === undefined ? [] : gens.filter((g) => g.circuitId === v.circuitId).map((g) => ({ generation: g.generation, deleted: g.deleted, recordedAt: g.recordedAt, routes: g.view.circuit.routes.map((r) => `${r.host}:${r.port} ${r.health.status}`) }));
      fs.writeFileSync(path.join(this.outDir, file), JSON.stringify({ seed: o.seed, replay: replayCommand(o), ...slice, dbGenerations }, null, 2));
      sliceFiles.push(file);
    });
    const commitsObserved = ops.reduce((n, x) => n + (x.commits?.length ?? 0), 0);
    if (o.strategy === 'circuitry' && commitsObserved === 0 && this.opsDone > 50) {
      this.harnessErrors.push('the workers recorded no database commit: the instrumentation no longer matches lib/db statements (check R is blind)');
    }

    const opsByKind: Record<string, Record<string, number>> = {};
    for (const k of OP_KINDS) {
      const m = this.statusCounts.get(k);
      if (!m) continue;
      const row: Record<string, number> = { total: 0 };
      for (const [s, c] of [...m].sort()) {
        row[s] = c;
        row.total! += c;
      }
      opsByKind[k] = row;
    }
    const durationMs = now() - this.started;
    // A negative control must be caught: the reference write path by the history checkers, the
    // unfenced readers by I5 (the class of bug only the database fence prevents).
    const negative = o.strategy !== 'circuitry';
    const caught = o.strategy === 'unfenced-reads' ? counts.I5 > 0 : counts.I1 + counts.I2 + counts.I3 + counts.I4 + counts.I5 > 0;
    const ok = !timedOut && (negative ? caught : total === 0) && this.harnessErrors.length === 0;
    const verdict = timedOut
      ? 'incomplete (time limit)'
      : negative
        ? caught
          ? `negative control (${o.strategy}): the harness sees the bug`
          : `negative control (${o.strategy}) BLIND: the harness cannot see the bug`
        : total === 0
          ? 'clean: no violation'
          : 'VIOLATIONS FOUND';
    const summary = {
      verdict,
      ok,
      seed: o.seed,
      strategy: o.strategy,
      replay: replayCommand(o),
      outDir: this.outDir,
      startedAt: new Date(this.started).toISOString(),
      durationMs,
      workloadMs: workloadEnd - workloadStart,
      complete: !timedOut,
      settings: {
        ops: o.ops,
        procs: o.procs,
        lanes: o.lanes,
        circuits: o.circuits,
        backends: o.backends,
        lockTtlSeconds: o.lockTtlSeconds,
        lockWaitMs: LOCK_WAIT_MS,
        etcdTimeoutMs: 1000,
        bypassLiveness: this.slots.filter((s) => s.bypassLiveness).map((s) => s.w),
        faults: o.faults,
        plannedFaults: o.counts,
      },
      ops: {
        total: this.opsDone,
        throughputPerSecond: Math.round((10 * this.opsDone) / ((workloadEnd - workloadStart) / 1000)) / 10,
        byKind: opsByKind,
        killedInFlight: this.killedOps.length,
      },
      faults: {
        executed,
        byHow: Object.fromEntries(
          FAULT_KINDS.map((k) => [k, faultsAll.filter((f) => f.kind === k).reduce<Record<string, number>>((m, f) => ((m[f.how] = (m[f.how] ?? 0) + 1), m), {})]),
        ),
        armedPausePoints: faultsAll.filter((f) => f.kind === 'pause' && f.how === 'armed').reduce<Record<string, number>>((m, f) => ((m[f.point ?? '?'] = (m[f.point ?? '?'] ?? 0) + 1), m), {}),
        notExecuted: unexecuted,
        pauseMs: {
          min: Math.min(...faultsAll.filter((f) => f.kind === 'pause' && f.end).map((f) => f.end! - f.start)),
          max: Math.max(...faultsAll.filter((f) => f.kind === 'pause' && f.end).map((f) => f.end! - f.start)),
        },
      },
      violations: { total, byInvariant: counts, byRule, files: sliceFiles },
      convergence: {
        converged,
        lastFaultEndAt: lastFaultEnd ? new Date(lastFaultEnd).toISOString() : null,
        afterLastFaultMs: converged && lastFaultEnd ? convergedCheckAt - lastFaultEnd : null,
        afterWorkloadMs: converged ? convergedCheckAt - workloadEnd : null,
        sweepMs: convergedCheckAt - sweepStarted,
        beforeSweep: { differingCircuits: beforeReport.differing, byRule: beforeReport.byRule },
        finalSweep: sweepStats,
        liveCircuits: after.circuits.filter((c) => !c.deleted).length,
        circuits: after.circuits.length,
        keys: after.keys.size,
        lockKeysLeft: after.locks.size,
      },
      history: { startRevision, endRevision, ...history.stats, generations: generations.length },
      etcd: {
        members: o.etcdMembers,
        // After the workload: healed, every member running and at one revision.
        ...(healed ? { healedAfterWorkloadMs: Math.round(healed.ms), leaderAtEnd: healed.leader } : {}),
        historyPerMember: memberHistories,
      },
      fencingEpochs: epochs.map((e) => ({ epoch: Number(e.epoch), startedAtRevision: Number(e.started_revision), reason: e.reason })),
      fencing: {
        // A paused or stale writer whose transaction etcd refused (the fence at work), and writes
        // its own liveness check refused before sending them.
        refusedByEtcd: ops.filter((x) => /write refused/.test(x.detail ?? '') || /write refused/.test(JSON.stringify(x.extra ?? {}))).length,
        refusedTxns: ops.reduce((n, x) => n + x.txns.filter((t) => t.ok === false).length, 0),
        refusedLocally: ops.filter((x) => /session lost/.test(x.detail ?? '')).length,
        // A superseded holder whose database statement the fence refused (StaleFenceError).
        refusedByDatabase: ops.filter((x) => /newer lock|newer holder/.test(x.detail ?? '') || /newer lock|newer holder/.test(JSON.stringify(x.extra ?? {}))).length,
      },
      freshness: { writesJudged: freshness.judged, writesUndated: freshness.unjudged, acceptedRequests: acceptedRequests.length },
      workers: {
        processesSpawned: this.spawned,
        crashes: this.slots.reduce((n, s) => n + s.crashes, 0),
        databaseCommitsObserved: commitsObserved,
      },
      harnessErrors: this.harnessErrors,
    };
    fs.writeFileSync(path.join(this.outDir, 'summary.json'), JSON.stringify(summary, null, 2));
    fs.writeFileSync(path.join(this.outDir, 'killed-ops.jsonl'), this.killedOps.map((k) => JSON.stringify(k)).join('\n') + (this.killedOps.length ? '\n' : ''));
    process.stdout.write(`${this.render(summary)}\n`);
    const { closeProbers } = await import('../../lib/health/index.js');
    closeProbers();
    await closeRuntime(rt);
    return { summary, ok };
  }

  private readOps(): OpLogRecord[] {
    const out: OpLogRecord[] = [];
    for (const s of this.slots) {
      const file = path.join(this.outDir, `ops-${s.w}.jsonl`);
      if (!fs.existsSync(file)) continue;
      for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
        if (!line.trim()) continue;
        try {
          out.push(JSON.parse(line) as OpLogRecord);
        } catch {
          /* a line cut by SIGKILL */
        }
      }
    }
    return out;
  }

  // ---- summary table ------------------------------------------------------------------------------------

  private render(s: {
    verdict: string;
    seed: string;
    replay: string;
    outDir: string;
    durationMs: number;
    workloadMs: number;
    ops: { total: number; throughputPerSecond: number; byKind: Record<string, Record<string, number>>; killedInFlight: number };
    faults: { executed: Record<FaultKind, number>; byHow: Record<string, Record<string, number>>; notExecuted: number };
    violations: { total: number; byInvariant: Record<Invariant, number>; byRule: Record<string, number>; files: string[] };
    convergence: { converged: boolean; afterLastFaultMs: number | null; afterWorkloadMs: number | null; sweepMs: number; beforeSweep: { differingCircuits: number } };
    history: { revisions: number; events: number; lockAcquisitions: number; tombstones: number };
    etcd: { members: number; historyPerMember: Array<{ member: string; events: number; sameAsFirst: boolean }> };
    settings: { plannedFaults: Record<FaultKind, number> };
    harnessErrors: string[];
  }): string {
    const statuses = ['ok', 'ok-not-applied', 'noop', 'partial', 'conflict', 'not-found', 'unavailable', 'not-applied', 'skipped', 'error', 'killed'];
    const opRows = Object.entries(s.ops.byKind).map(([k, m]) => {
      const other = Object.entries(m).filter(([st]) => st !== 'total' && !statuses.includes(st)).reduce((n, [, c]) => n + c, 0);
      return [k, m.total ?? 0, ...statuses.map((st) => m[st] ?? 0), other];
    });
    const totals = ['total', s.ops.total, ...statuses.map((st) => Object.values(s.ops.byKind).reduce((n, m) => n + (m[st] ?? 0), 0)), 0];
    totals[totals.length - 1] = opRows.reduce((n, r) => n + Number(r[r.length - 1]), 0);
    const lines = [
      '',
      `chaos run ${s.seed}: ${s.verdict}`,
      '',
      table([...opRows, totals], ['operation', 'total', ...statuses, 'other']),
      '',
      table(
        FAULT_KINDS.filter((k) => s.faults.executed[k] > 0 || s.settings.plannedFaults[k] > 0).map((k) => [k, s.faults.executed[k], Object.entries(s.faults.byHow[k] ?? {}).map(([h, n]) => `${h} ${n}`).join(', ')]),
        ['fault', 'count', 'how'],
      ),
      '',
      table(
        INVARIANTS.map((k) => [
          k,
          s.violations.byInvariant[k],
          Object.entries(s.violations.byRule)
            .filter(([r]) => r.startsWith(`${k}/`))
            .map(([r, n]) => `${r.slice(k.length + 1)} ${n}`)
            .join(', '),
        ]),
        ['invariant', 'violations', 'rules'],
      ),
      '',
      table([
        ['duration', fmtMs(s.durationMs)],
        ['workload', `${fmtMs(s.workloadMs)} (${s.ops.throughputPerSecond} ops/s)`],
        ['converged after last fault', s.convergence.converged ? fmtMs(s.convergence.afterLastFaultMs) : 'NOT CONVERGED'],
        ['  of which the final sweep', fmtMs(s.convergence.sweepMs)],
        ['circuits differing before the sweep', String(s.convergence.beforeSweep.differingCircuits)],
        ['etcd history', `${s.history.revisions} revisions, ${s.history.events} events, ${s.history.lockAcquisitions} lock keys, ${s.history.tombstones} tombstones`],
        ...(s.etcd.members > 1
          ? [['etcd members', `${s.etcd.members}; the history read from each: ${s.etcd.historyPerMember.every((m) => m.sameAsFirst) ? 'identical' : `DIFFERS (${s.etcd.historyPerMember.map((m) => `${m.member} ${m.events}`).join(', ')})`}`]]
          : []),
        ['faults planned but not executed', String(s.faults.notExecuted)],
        ['output', s.outDir],
        ['replay', s.replay],
      ]),
    ];
    if (s.violations.files.length) lines.push('', `violation slices: ${s.violations.files.slice(0, 5).join(', ')}${s.violations.files.length > 5 ? ', ...' : ''}`);
    if (s.harnessErrors.length) lines.push('', 'harness errors:', ...s.harnessErrors.slice(0, 10).map((e) => `  ${e}`));
    return lines.join('\n');
  }
}

// ---- CLI ----------------------------------------------------------------------------------------------------

async function main(): Promise<number> {
  let opts: Options;
  try {
    opts = parseOptions(process.argv.slice(2));
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`chaos: ${err.message}\nRun with --help for the options.\n`);
      return 2;
    }
    throw err;
  }
  if (opts.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const run = new ChaosRun(opts);
  const { ok } = await run.execute();
  return ok ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`\nchaos: harness error: ${(err as Error)?.stack ?? String(err)}\n`);
    process.exit(2);
  },
);
