// A local N-member etcd cluster (N = 1, 3, 5, …) on 127.0.0.1 with a fault proxy
// (fault-proxy.ts) in front of every member's client port and every member's peer port, for
// tests of the promise under etcd cluster faults.
//
//   const c = await startEtcdCluster({ size: 3 });
//   c.endpoints          // client URLs through the proxies: give these to the code under test
//   c.directEndpoints    // the members' own client ports: for the harness's own reads
//   c.members[i]         // { name, pid, isRunning, id, endpoint, directEndpoint, peerUrl,
//                        //   clientProxy, peerProxy, stop() (SIGTERM), kill() (SIGKILL),
//                        //   start() (same ports, same data) }
//   await c.leader()     // index of the member a majority follows (and that says it leads)
//   await c.waitForLeader(5000, { not: i })   // polls until there is one (optionally ≠ i)
//   await c.status(i)    // Maintenance.Status of member i, over its direct endpoint
//   c.isolate(i, { clients: 'reach' | 'blackhole' })  // minority partition of member i
//   await c.partitionClientsFrom(i) / await c.partitionClientsFromLeader()
//   c.heal()             // every proxy forwards again (held bytes are delivered)
//   await c.recover()    // heal(), start every stopped member, wait for a leader
//   c.timings            // { startMs, members: [ms each] }
//   await c.stop()       // everything, by PID; idempotent
//
// Peer traffic really goes through the proxies: every member advertises its peer proxy as its
// peer URL (`etcdctl member list` shows the proxies) and listens on a port nobody else is told
// about. The client URLs it advertises are the client proxies too. Isolating member i blackholes
// its own peer proxy (nobody reaches it) and, on every other peer proxy, the connections that
// come *from* member i's process: a peer proxy tells its callers apart by looking up, in
// /proc/net/tcp and /proc/<pid>/fd, which etcd process owns the connecting socket (Linux only,
// like the rest of this harness). So an isolated member can neither replicate, vote, nor forward
// lease renewals (/leases) to the leader, while clients may still reach it.
//
// Process discipline is services.ts's: each member is a detached child tracked by PID, in a temp
// dir `$TMPDIR/circuitry-etcd-*` holding the data dirs, logs and `services.json` (parent PID +
// member PIDs), so the stale-dir sweep of either module kills the members of a dead parent; the
// exit/SIGINT/SIGTERM/SIGHUP handlers of services.ts kill them when this process ends.
//
// Timings: `--heartbeat-interval=25 --election-timeout=250` by default, chosen on a loaded 2-core
// machine (see DEFAULT_HEARTBEAT_MS); pre-vote is on by default, as in etcd ≥ 3.5 (3.4 defaults to
// off, which lets a healed minority member depose a healthy leader). Auto-compaction and lease
// checkpointing are off unless asked for.
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Etcd3, type IStatusResponse } from 'etcd3';
import { noop } from 'cockatiel';
import { startFaultProxy, type FaultProxy } from './fault-proxy.js';
import {
  cleanEnv,
  ensureBinaries,
  fileSize,
  freePort,
  httpHealthy,
  isAlive,
  killTreeSync,
  procStartTime,
  registerExitCleanup,
  sweepStale,
  tailFile,
  trySignal,
} from './services.js';

// ---- public API ------------------------------------------------------------------------------

export interface EtcdClusterOptions {
  /** Number of members. Default 3. */
  size?: number;
  /** etcd --heartbeat-interval in ms. Default DEFAULT_HEARTBEAT_MS. */
  heartbeatMs?: number;
  /** etcd --election-timeout in ms. Default DEFAULT_ELECTION_MS. */
  electionMs?: number;
  /** etcd --pre-vote. Default true. */
  preVote?: boolean;
  /** etcd --experimental-enable-lease-checkpoint (leases keep their remaining TTL across a leader
   * change instead of being extended to their full TTL). Default false, as in etcd 3.4. */
  leaseCheckpoint?: boolean;
  /** etcd --auto-compaction-mode / --auto-compaction-retention. Default: off. */
  autoCompaction?: { mode: 'periodic' | 'revision'; retention: string };
  /** etcd --log-level. Default 'warn' (logs go to <dir>/<member>.log). */
  logLevel?: 'debug' | 'info' | 'warn' | 'error';
  /** How long start and member restarts may take. Default 20 000 ms. */
  startTimeoutMs?: number;
  /** Progress and proxy lines. Default: silent. */
  log?: (line: string) => void;
}

export interface MemberStatus {
  /** Member id and leader id, decimal (as the API returns them). */
  memberId: string;
  leaderId: string;
  isLeader: boolean;
  raftTerm: number;
  raftIndex: number;
  raftAppliedIndex: number;
  /** The store revision this member has applied. */
  revision: number;
  errors: string[];
}

export interface EtcdMember {
  readonly index: number;
  /** m0, m1, … */
  readonly name: string;
  /** PID of the running process (of the last one, once stopped; -1 before the first start). */
  readonly pid: number;
  readonly isRunning: boolean;
  /** The member id (decimal), known once the cluster started. */
  readonly id: string;
  /** Client URL through the client proxy (what the member advertises). */
  readonly endpoint: string;
  /** Client URL of the member itself (bypasses the proxy). */
  readonly directEndpoint: string;
  /** Peer URL through the peer proxy (what the member advertises). */
  readonly peerUrl: string;
  readonly directPeerUrl: string;
  readonly clientProxy: FaultProxy;
  readonly peerProxy: FaultProxy;
  readonly logFile: string;
  /** SIGTERM (graceful), SIGKILL after 5 s; resolves once the process is gone. */
  stop(): Promise<void>;
  /** SIGKILL; resolves once the process is gone. */
  kill(): Promise<void>;
  /**
   * Restarts with its data on the same ports (new listen ports only if those were taken; the
   * advertised proxy URLs never change). Resolves when /health says true (`wait: 'healthy'`,
   * default: needs a quorum) or once the client port accepts connections (`wait: 'listening'`).
   */
  start(opts?: { wait?: 'healthy' | 'listening' }): Promise<void>;
}

export interface EtcdCluster {
  readonly members: readonly EtcdMember[];
  /** Proxied client URLs, in member order (for the code under test). */
  readonly endpoints: string[];
  /** Direct client URLs, in member order (for the harness's own reads). */
  readonly directEndpoints: string[];
  readonly dir: string;
  readonly token: string;
  readonly timings: { startMs: number; members: number[] };
  /** Index of the leader that a majority of all members follows and that reports itself as
   * leader; rejects when there is none right now. */
  leader(): Promise<number>;
  /** Polls leader() until it resolves (and differs from `not`, when given). */
  waitForLeader(timeoutMs?: number, opts?: { not?: number }): Promise<number>;
  /** Maintenance.Status of member i over its direct endpoint. */
  status(i: number, timeoutMs?: number): Promise<MemberStatus>;
  /** Member i can reach no peer and no peer reaches it. Clients still reach it unless
   * `clients: 'blackhole'`. */
  isolate(i: number, opts?: { clients?: 'reach' | 'blackhole' }): void;
  /** Blackholes clients' connections (live and new) to member i; peers still talk. */
  partitionClientsFrom(i: number): void;
  /** partitionClientsFrom(the current leader); resolves with its index. */
  partitionClientsFromLeader(): Promise<number>;
  /** Removes every fault of every proxy. */
  heal(): void;
  /** heal(), then starts every stopped member and waits for a leader; resolves with its index. */
  recover(timeoutMs?: number): Promise<number>;
  /** Stops every member (by PID) and proxy, removes the temp dir; idempotent. */
  stop(): Promise<void>;
}

/**
 * Raft timings that keep elections quick yet stable with 3–5 members on a shared 2-core machine
 * under load. Measured here (load average 5–7, 25 s of 4 writers, 1 kB values): 10/100 had a
 * spurious election in every run (1 with 3 members, 2 with 5), with 20–44 "leader failed to send
 * out heartbeat on time" warnings and a third less write throughput; 20/200 and 25/250 had none.
 * With 25/250 a SIGKILLed leader is replaced in 0.26–0.7 s (3 members) and 0.35–0.5 s (5).
 */
export const DEFAULT_HEARTBEAT_MS = 25;
export const DEFAULT_ELECTION_MS = 250;

const DIR_PREFIX = 'circuitry-etcd-'; // starts with services.ts's prefix: its sweep covers us
const STATE_FILE = 'services.json';

// ---- helpers -----------------------------------------------------------------------------------

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const u = (port: number): string => `http://127.0.0.1:${port}`;

/** The inode of the TCP socket 127.0.0.1:<localPort> → :<remotePort> (Linux /proc/net/tcp*). */
function socketInode(localPort: number, remotePort: number): string | undefined {
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text: string;
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n')) {
      const f = line.trim().split(/\s+/);
      if (f.length < 10 || f[0] === 'sl') continue;
      const lp = parseInt(f[1]!.slice(f[1]!.lastIndexOf(':') + 1), 16);
      const rp = parseInt(f[2]!.slice(f[2]!.lastIndexOf(':') + 1), 16);
      if (lp === localPort && rp === remotePort && f[9] !== '0') return f[9];
    }
  }
  return undefined;
}

/** Which of the given PIDs holds a file descriptor on socket `inode`. */
function pidHoldingSocket(inode: string, pids: number[]): number | undefined {
  const link = `socket:[${inode}]`;
  for (const pid of pids) {
    let fds: string[];
    try {
      fds = fs.readdirSync(`/proc/${pid}/fd`);
    } catch {
      continue;
    }
    for (const fd of fds) {
      try {
        if (fs.readlinkSync(`/proc/${pid}/fd/${fd}`) === link) return pid;
      } catch {
        /* closed meanwhile */
      }
    }
  }
  return undefined;
}

/** True once a member's peer listener answers HTTP (its peer handlers are installed). */
function peerServing(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const req = http.get(`${u(port)}/version`, { agent: false, timeout: 150 }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(false));
  });
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    const done = (ok: boolean): void => {
      s.destroy();
      resolve(ok);
    };
    s.setTimeout(300, () => done(false));
    s.once('connect', () => done(true));
    s.once('error', () => done(false));
  });
}

// ---- members -----------------------------------------------------------------------------------

interface Proc {
  child: ChildProcess;
  pid: number;
  exited: boolean;
  exit: Promise<void>;
}

class Member implements EtcdMember {
  proc: Proc | null = null;
  lastPid = -1;
  id = '';
  clientPort = 0;
  peerPort = 0;
  statusClient: Etcd3 | null = null;
  statusClientPort = 0;
  readonly dataDir: string;
  readonly logFile: string;

  constructor(
    readonly cluster: Cluster,
    readonly index: number,
    readonly clientProxy: FaultProxy,
    readonly peerProxy: FaultProxy,
  ) {
    this.dataDir = path.join(cluster.dir, this.name);
    this.logFile = path.join(cluster.dir, `${this.name}.log`);
  }

  get name(): string {
    return `m${this.index}`;
  }
  get pid(): number {
    return this.proc?.pid ?? this.lastPid;
  }
  get isRunning(): boolean {
    return this.proc !== null && !this.proc.exited;
  }
  get endpoint(): string {
    return u(this.clientProxy.port);
  }
  get directEndpoint(): string {
    return u(this.clientPort);
  }
  get peerUrl(): string {
    return u(this.peerProxy.port);
  }
  get directPeerUrl(): string {
    return u(this.peerPort);
  }

  args(): string[] {
    const c = this.cluster;
    const o = c.opts;
    const args = [
      '--name', this.name,
      '--data-dir', this.dataDir,
      '--listen-client-urls', u(this.clientPort),
      '--advertise-client-urls', this.endpoint,
      '--listen-peer-urls', u(this.peerPort),
      '--initial-advertise-peer-urls', this.peerUrl,
      '--initial-cluster', c.members.map((m) => `${m.name}=${m.peerUrl}`).join(','),
      '--initial-cluster-state', 'new',
      '--initial-cluster-token', c.token,
      `--heartbeat-interval=${o.heartbeatMs ?? DEFAULT_HEARTBEAT_MS}`,
      `--election-timeout=${o.electionMs ?? DEFAULT_ELECTION_MS}`,
      `--pre-vote=${o.preVote ?? true}`,
      '--logger=zap',
      `--log-level=${o.logLevel ?? 'warn'}`,
    ];
    if (o.leaseCheckpoint) args.push('--experimental-enable-lease-checkpoint');
    if (o.autoCompaction) {
      args.push('--auto-compaction-mode', o.autoCompaction.mode, '--auto-compaction-retention', o.autoCompaction.retention);
    }
    return args;
  }

  private spawnOnce(): Proc {
    const fd = fs.openSync(this.logFile, 'a');
    let child: ChildProcess;
    try {
      child = spawn(this.cluster.etcdBin, this.args(), {
        detached: true,
        stdio: ['ignore', fd, fd],
        cwd: this.cluster.dir,
        env: cleanEnv(process.arch === 'x64' ? {} : { ETCD_UNSUPPORTED_ARCH: process.arch }),
      });
    } finally {
      fs.closeSync(fd);
    }
    if (child.pid === undefined) throw new Error(`could not spawn ${this.cluster.etcdBin}`);
    child.unref();
    let resolveExit!: () => void;
    const proc: Proc = { child, pid: child.pid, exited: false, exit: new Promise<void>((r) => (resolveExit = r)) };
    const onExit = (): void => {
      proc.exited = true;
      resolveExit();
    };
    child.on('exit', onExit);
    child.on('error', onExit);
    this.proc = proc;
    this.lastPid = proc.pid;
    this.cluster.writeState();
    return proc;
  }

  /** Spawns and waits; on "address already in use" picks new listen ports (the proxies follow). */
  async launch(wait: 'healthy' | 'listening', fresh: boolean): Promise<void> {
    if (this.cluster.stopped) throw new Error('etcd cluster already stopped');
    for (let attempt = 1; ; attempt++) {
      if (this.clientPort === 0 || attempt > 1) {
        this.clientPort = await freePort();
        this.peerPort = await freePort();
        this.clientProxy.setTarget(this.clientPort);
        this.peerProxy.setTarget(this.peerPort);
      }
      // A new member first asks every peer URL whether it was bootstrapped already, and a peer
      // that is itself still starting accepts the connection without answering: 1 s lost per
      // peer. So a fresh member's peer proxy refuses until the member really serves peer traffic.
      let gated = fresh;
      if (gated) this.peerProxy.refuse();
      const offset = fileSize(this.logFile);
      const proc = this.spawnOnce();
      const deadline = Date.now() + (this.cluster.opts.startTimeoutMs ?? 20_000);
      let err: Error | null = null;
      for (;;) {
        if (gated && (await peerServing(this.peerPort))) {
          gated = false;
          this.peerProxy.pass();
        }
        const ok = wait === 'healthy' ? await httpHealthy(`${this.directEndpoint}/health`) : await canConnect(this.clientPort);
        if (ok) {
          // Healthy implies serving peers (etcd installs its peer handlers first). The gate must
          // never stay shut: peers that cannot dial this member would still look fine while
          // it dials them, and fail only at the next election.
          if (gated) this.peerProxy.pass();
          return;
        }
        if (proc.exited || Date.now() > deadline) {
          if (!proc.exited) killTreeSync(proc.pid);
          await this.waitExit(2000);
          err = new Error(
            `etcd ${this.name} did not become ${wait} on ${this.directEndpoint} ${proc.exited ? `(exited with ${proc.child.exitCode ?? proc.child.signalCode})` : 'in time'}; last log lines:\n${tailFile(this.logFile, 25, offset)}`,
          );
          break;
        }
        await sleep(wait === 'healthy' ? 20 : 10);
      }
      const inUse = /address already in use/i.test(err.message);
      if (!inUse || attempt >= 3) throw err;
      if (fresh) fs.rmSync(this.dataDir, { recursive: true, force: true });
    }
  }

  async waitExit(timeoutMs: number): Promise<boolean> {
    const proc = this.proc;
    if (!proc || proc.exited) return true;
    proc.child.ref();
    let timer: NodeJS.Timeout | undefined;
    try {
      return await Promise.race([
        proc.exit.then(() => true),
        new Promise<boolean>((r) => (timer = setTimeout(() => r(false), timeoutMs))),
      ]);
    } finally {
      clearTimeout(timer);
      proc.child.unref();
    }
  }

  async stop(): Promise<void> {
    const proc = this.proc;
    if (!proc || proc.exited) return;
    trySignal(proc.pid, 'SIGTERM');
    if (!(await this.waitExit(5000))) {
      killTreeSync(proc.pid);
      await this.waitExit(2000);
    }
  }

  async kill(): Promise<void> {
    const proc = this.proc;
    if (!proc || proc.exited) return;
    killTreeSync(proc.pid);
    await this.waitExit(5000);
  }

  async start(opts: { wait?: 'healthy' | 'listening' } = {}): Promise<void> {
    if (this.isRunning) return;
    await this.launch(opts.wait ?? 'healthy', false);
  }

  /** A client for Maintenance.Status on the direct endpoint: no retries, no circuit breaker. */
  client(): Etcd3 {
    if (this.statusClient && this.statusClientPort === this.clientPort) return this.statusClient;
    this.statusClient?.close();
    this.statusClient = new Etcd3({
      hosts: this.directEndpoint,
      dialTimeout: 500,
      faultHandling: { host: () => noop, global: noop },
      grpcOptions: { 'grpc.initial_reconnect_backoff_ms': 20, 'grpc.max_reconnect_backoff_ms': 200 },
    });
    this.statusClientPort = this.clientPort;
    return this.statusClient;
  }
}

// ---- the cluster -------------------------------------------------------------------------------

class Cluster implements EtcdCluster {
  members: Member[] = [];
  readonly token = `circuitry-${randomUUID().slice(0, 8)}`;
  timings = { startMs: 0, members: [] as number[] };
  stopped = false;
  private stopping: Promise<void> | null = null;
  unregister: () => void = () => {};

  constructor(
    readonly dir: string,
    readonly etcdBin: string,
    readonly opts: EtcdClusterOptions,
  ) {}

  get endpoints(): string[] {
    return this.members.map((m) => m.endpoint);
  }
  get directEndpoints(): string[] {
    return this.members.map((m) => m.directEndpoint);
  }

  writeState(): void {
    const state = {
      parentPid: process.pid,
      parentStart: procStartTime(process.pid),
      pids: this.members.filter((m) => m.proc && !m.proc.exited).map((m) => ({ name: `etcd-${m.name}`, pid: m.proc!.pid })),
    };
    const tmp = path.join(this.dir, `${STATE_FILE}.tmp`);
    fs.writeFileSync(tmp, JSON.stringify(state));
    fs.renameSync(tmp, path.join(this.dir, STATE_FILE));
  }

  /** Which member's process owns the socket that connected to `proxyPort` from `remotePort`. */
  identify(remotePort: number | undefined, proxyPort: number): string | undefined {
    if (remotePort === undefined) return undefined;
    const inode = socketInode(remotePort, proxyPort);
    if (inode === undefined) return undefined;
    const running = this.members.filter((m) => m.isRunning);
    const pid = pidHoldingSocket(
      inode,
      running.map((m) => m.pid),
    );
    return running.find((m) => m.pid === pid)?.name;
  }

  async status(i: number, timeoutMs = 500): Promise<MemberStatus> {
    const m = this.members[i];
    if (!m) throw new RangeError(`no member ${i}`);
    const s: IStatusResponse = await m.client().maintenance.status({ deadline: new Date(Date.now() + timeoutMs) });
    return {
      memberId: s.header.member_id,
      leaderId: s.leader,
      isLeader: s.leader === s.header.member_id && s.leader !== '0',
      raftTerm: Number(s.raftTerm),
      raftIndex: Number(s.raftIndex),
      raftAppliedIndex: Number(s.raftAppliedIndex),
      revision: Number(s.header.revision),
      errors: s.errors,
    };
  }

  async leader(): Promise<number> {
    const sts = await Promise.all(this.members.map((m, i) => (m.isRunning ? this.status(i, 300).catch(() => null) : null)));
    const majority = Math.floor(this.members.length / 2) + 1;
    for (const s of sts) {
      if (!s?.isLeader) continue;
      const followers = sts.filter((x) => x?.leaderId === s.leaderId).length;
      const idx = this.members.findIndex((m) => m.id === s.leaderId);
      if (followers >= majority && idx >= 0) return idx;
    }
    const seen = sts.map((s, i) => `${this.members[i]!.name}:${s ? `leader=${this.nameOf(s.leaderId)},term=${s.raftTerm}` : 'down'}`).join(' ');
    throw new Error(`no leader followed by a majority (${seen})`);
  }

  private nameOf(id: string): string {
    return this.members.find((m) => m.id === id)?.name ?? (id === '0' ? 'none' : id);
  }

  async waitForLeader(timeoutMs = 10_000, opts: { not?: number } = {}): Promise<number> {
    const deadline = Date.now() + timeoutMs;
    let last: unknown;
    for (;;) {
      try {
        const i = await this.leader();
        if (i !== opts.not) return i;
        last = new Error(`leader is still ${this.members[i]!.name}`);
      } catch (err) {
        last = err;
      }
      if (Date.now() > deadline) throw new Error(`no leader within ${timeoutMs} ms: ${(last as Error).message}`);
      await sleep(10);
    }
  }

  isolate(i: number, opts: { clients?: 'reach' | 'blackhole' } = {}): void {
    const m = this.members[i];
    if (!m) throw new RangeError(`no member ${i}`);
    m.peerProxy.blackhole();
    for (const other of this.members) if (other !== m) other.peerProxy.blackhole({ from: m.name });
    if (opts.clients === 'blackhole') m.clientProxy.blackhole();
  }

  partitionClientsFrom(i: number): void {
    const m = this.members[i];
    if (!m) throw new RangeError(`no member ${i}`);
    m.clientProxy.blackhole();
  }

  async partitionClientsFromLeader(): Promise<number> {
    const i = await this.leader();
    this.partitionClientsFrom(i);
    return i;
  }

  heal(): void {
    for (const m of this.members) {
      m.peerProxy.pass();
      m.clientProxy.pass();
    }
  }

  async recover(timeoutMs = 10_000): Promise<number> {
    this.heal();
    for (const m of this.members) if (!m.isRunning) await m.start();
    return this.waitForLeader(timeoutMs);
  }

  killSync(): void {
    for (const m of this.members) if (m.proc && !m.proc.exited) killTreeSync(m.proc.pid);
    try {
      fs.rmSync(this.dir, { recursive: true, force: true, maxRetries: 2 });
    } catch {
      /* the next sweep removes it */
    }
  }

  stop(): Promise<void> {
    this.stopping ??= (async () => {
      this.stopped = true;
      for (const m of this.members) m.statusClient?.close();
      await Promise.all(this.members.flatMap((m) => [m.clientProxy.close(), m.peerProxy.close()]));
      await Promise.all(this.members.map((m) => m.stop()));
      for (const m of this.members) if (m.proc && isAlive(m.proc.pid)) killTreeSync(m.proc.pid);
      fs.rmSync(this.dir, { recursive: true, force: true, maxRetries: 3, retryDelay: 50 });
      this.unregister();
    })();
    return this.stopping;
  }
}

// ---- entry point -------------------------------------------------------------------------------

export async function startEtcdCluster(opts: EtcdClusterOptions = {}): Promise<EtcdCluster> {
  const t0 = performance.now();
  const size = opts.size ?? 3;
  if (!Number.isInteger(size) || size < 1) throw new RangeError(`cluster size must be a positive integer, got ${size}`);
  const log = opts.log ?? (() => {});
  sweepStale(log);
  const bins = await ensureBinaries(true, false, opts.log ?? ((l) => process.stderr.write(`${l}\n`)));

  const dir = fs.mkdtempSync(path.join(os.tmpdir(), DIR_PREFIX));
  const cluster = new Cluster(dir, bins.etcd!, opts);
  cluster.writeState();
  cluster.unregister = registerExitCleanup(() => cluster.killSync());

  try {
    for (let i = 0; i < size; i++) {
      const name = `m${i}`;
      const clientProxy = await startFaultProxy({ name: `${name}-client`, target: { host: '127.0.0.1', port: 1 }, log });
      const peerProxy: FaultProxy = await startFaultProxy({
        name: `${name}-peer`,
        target: { host: '127.0.0.1', port: 1 },
        identify: (sock) => cluster.identify(sock.remotePort, peerProxy.port),
        log,
      });
      cluster.members.push(new Member(cluster, i, clientProxy, peerProxy));
    }
    // All members at once: none can become healthy before a quorum is up.
    const settled = await Promise.allSettled(
      cluster.members.map(async (m) => {
        await m.launch('healthy', true);
        cluster.timings.members[m.index] = Math.round(performance.now() - t0);
      }),
    );
    const failed = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;

    const list = await cluster.members[0]!.client().cluster.memberList({}, { deadline: new Date(Date.now() + 2000) });
    for (const m of cluster.members) {
      const found = list.members.find((x) => x.name === m.name);
      if (!found) throw new Error(`member ${m.name} missing from the member list`);
      m.id = found.ID;
    }
    cluster.timings.startMs = Math.round(performance.now() - t0);
    log(`etcd cluster: ${size} member(s) ready in ${cluster.timings.startMs} ms (${dir})`);
    return cluster;
  } catch (err) {
    await cluster.stop().catch(() => cluster.killSync());
    throw err;
  }
}
