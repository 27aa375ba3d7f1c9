// Runs REAL etcd and PostgreSQL as child processes on 127.0.0.1 (tests and the local stack), plus
// the loopback WebSocket→TCP proxy through which our code reaches Postgres with the Neon driver,
// exactly as in Lambda.
//
// Every process is a child tracked by PID, in a temp dir `$TMPDIR/circuitry-*` that also holds
// its data, its logs and `services.json` (parent PID + child PIDs). Children are stopped by
// stop(), by process 'exit' / SIGINT / SIGTERM / SIGHUP handlers, and, when the parent was killed
// outright, by the sweep that the next startServices() runs over stale dirs of dead parents.
import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { startWsProxy } from './wsproxy.js';

// ---- public API ------------------------------------------------------------------------------

export interface EtcdService {
  /** http://127.0.0.1:<port> */
  endpoint: string;
  /** PID of the running etcd (of the last one, once stopped). */
  readonly pid: number;
  /** SIGTERM, then SIGKILL after a grace period; resolves once the process is gone. */
  stop(): Promise<void>;
  /** Restarts on the same port and data dir (data is kept); resolves once healthy. */
  start(): Promise<void>;
  /** Saves a snapshot of the running etcd to `file` (etcdctl snapshot save). */
  snapshot(file: string): Promise<void>;
  /**
   * Disaster recovery as an operator does it: stops etcd, replaces its data with the snapshot
   * (etcdctl snapshot restore: the revision history rolls back to the snapshot's), restarts it on
   * the same ports.
   */
  restore(file: string): Promise<void>;
}

export interface PostgresService {
  /** postgres://postgres:postgres@127.0.0.1:<port>/circuitry */
  url: string;
  port: number;
  readonly pid: number;
  /** Fast shutdown (SIGINT: ends sessions, checkpoints), then SIGKILL after a grace period. */
  stop(): Promise<void>;
  /** Restarts on the same port and data dir (data is kept); resolves once it accepts connections. */
  start(): Promise<void>;
  /**
   * stop() then start(), on the same port and data. `fast` (default): SIGINT, sessions are
   * terminated and a checkpoint is written. `immediate`: SIGQUIT, backends are killed at once and
   * the next start runs crash recovery (what a crashed or OOM-killed server looks like).
   */
  restart(opts?: { mode?: 'fast' | 'immediate' }): Promise<void>;
}

export interface WsProxyService {
  /** host:port/path for the Neon driver's wsProxy, e.g. "127.0.0.1:40123/v2". */
  url: string;
  port: number;
  /** Destroys every live proxied connection (simulates dropped DB connections). */
  dropAll(): void;
  close(): Promise<void>;
}

export interface ServicesOptions<E extends boolean = true, P extends boolean = true> {
  /** Progress lines (startup timings, installation). Default: silent except package installation. */
  log?: (line: string) => void;
  /** Start etcd. Default true. */
  etcd?: E;
  /** Start PostgreSQL and the WebSocket proxy in front of it. Default true. */
  postgres?: P;
  /**
   * etcd's auto-compaction (off by default: the chaos harness reads the whole history back).
   * E.g. { mode: 'revision', retention: '1000' } keeps the last 1000 revisions.
   */
  etcdAutoCompaction?: { mode: 'periodic' | 'revision'; retention: string };
}

export interface Services<E extends boolean = true, P extends boolean = true> {
  etcd: E extends false ? null : EtcdService;
  postgres: P extends false ? null : PostgresService;
  wsProxy: P extends false ? null : WsProxyService;
  /** ETCD_ENDPOINTS, DATABASE_URL, NEON_WS_PROXY (for the services started). */
  env: Record<string, string>;
  /** The temp dir holding data, logs and services.json. */
  dir: string;
  /** Milliseconds from startServices() until each service was ready. */
  timings: { etcdMs?: number; postgresMs?: number; totalMs: number };
  /** Stops everything (by PID) and removes the temp dir; idempotent. */
  stop(): Promise<void>;
}

export const INSTALL_COMMAND = 'apt-get update && apt-get install -y etcd-server etcd-client postgresql';
const DIR_PREFIX = 'circuitry-';
const STATE_FILE = 'services.json';
const DB_NAME = 'circuitry';
const DB_PASSWORD = 'postgres';

// ---- small helpers (the exported ones are shared with etcd-cluster.ts) --------------------------

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const isRoot = (): boolean => typeof process.getuid === 'function' && process.getuid() === 0;

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export function trySignal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    /* already gone */
  }
}

/** Linux /proc/<pid>/stat fields after the command name: [state, ppid, ..., starttime(idx 19)]. */
function procStat(pid: number): string[] | null {
  try {
    const s = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return s.slice(s.lastIndexOf(')') + 2).split(' ');
  } catch {
    return null;
  }
}
export const procStartTime = (pid: number): string | null => procStat(pid)?.[19] ?? null;

export function procCmdline(pid: number): string {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ');
  } catch {
    return '';
  }
}

/** All descendants of pid (Linux; empty elsewhere). Postgres backends call setsid(), so a
 * process-group kill does not reach them: we find them by parent PID instead. */
function descendants(pid: number): number[] {
  let entries: string[];
  try {
    entries = fs.readdirSync('/proc');
  } catch {
    return [];
  }
  const children = new Map<number, number[]>();
  for (const e of entries) {
    if (!/^\d+$/.test(e)) continue;
    const ppid = Number(procStat(Number(e))?.[1]);
    if (!Number.isFinite(ppid)) continue;
    const list = children.get(ppid) ?? [];
    list.push(Number(e));
    children.set(ppid, list);
  }
  const out: number[] = [];
  const stack = [pid];
  while (stack.length > 0) {
    for (const c of children.get(stack.pop()!) ?? []) {
      out.push(c);
      stack.push(c);
    }
  }
  return out;
}

/** SIGKILL a process, its process group (it is a session leader: spawned detached) and its
 * descendants. Synchronous, so it can run in a process 'exit' handler. */
export function killTreeSync(pid: number): void {
  const kids = descendants(pid);
  trySignal(-pid, 'SIGKILL');
  trySignal(pid, 'SIGKILL');
  for (const k of kids) trySignal(k, 'SIGKILL');
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

export function tailFile(file: string, lines = 25, fromOffset = 0): string {
  try {
    const text = fs.readFileSync(file, 'utf8').slice(fromOffset);
    return text.split('\n').filter((l) => l.trim() !== '').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

export function fileSize(file: string): number {
  try {
    return fs.statSync(file).size;
  } catch {
    return 0;
  }
}

/** Environment for children: without ETCD_ / ETCDCTL_ / PG variables that etcd and Postgres
 * would read as configuration (our own ETCD_ENDPOINTS among them). */
export function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (/^(ETCD_|ETCDCTL_|PG)/.test(k)) continue;
    env[k] = v;
  }
  return { ...env, LANG: 'C', LC_ALL: 'C', ...extra };
}

// ---- binaries and installation ------------------------------------------------------------------

interface Binaries {
  etcd?: string;
  pgBin?: string;
}

function findOnPath(name: string): string | undefined {
  const dirs = (process.env.PATH ?? '').split(path.delimiter).concat(['/usr/bin', '/usr/local/bin', '/usr/sbin']);
  for (const d of dirs) {
    if (!d) continue;
    const p = path.join(d, name);
    try {
      fs.accessSync(p, fs.constants.X_OK);
      return p;
    } catch {
      /* next */
    }
  }
  return undefined;
}

/** Highest /usr/lib/postgresql/<version>/bin having initdb and postgres. */
function findPgBin(): string | undefined {
  const root = '/usr/lib/postgresql';
  let versions: string[];
  try {
    versions = fs.readdirSync(root);
  } catch {
    return undefined;
  }
  const ok = versions
    .filter((v) => /^\d+(\.\d+)?$/.test(v))
    .sort((a, b) => Number(b) - Number(a))
    .map((v) => path.join(root, v, 'bin'))
    .filter((bin) => ['initdb', 'postgres', 'psql'].every((b) => fs.existsSync(path.join(bin, b))));
  return ok[0];
}

function locate(): Binaries {
  return { etcd: findOnPath('etcd'), pgBin: findPgBin() };
}

export async function ensureBinaries(needEtcd: boolean, needPg: boolean, progress: (line: string) => void): Promise<Binaries> {
  let bins = locate();
  const missing = (b: Binaries): string[] => [
    ...(needEtcd && !b.etcd ? ['etcd'] : []),
    ...(needPg && !b.pgBin ? ['PostgreSQL (/usr/lib/postgresql/*/bin)'] : []),
  ];
  if (missing(bins).length === 0) return bins;
  if (!isRoot()) {
    throw new Error(`${missing(bins).join(' and ')} not installed; install with: sudo sh -c '${INSTALL_COMMAND}'`);
  }
  progress(`services: ${missing(bins).join(' and ')} missing; running: ${INSTALL_COMMAND}`);
  await new Promise<void>((resolve, reject) => {
    const child = spawn('sh', ['-c', INSTALL_COMMAND], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
    });
    const pump = (s: NodeJS.ReadableStream): void => {
      let buf = '';
      s.setEncoding('utf8');
      s.on('data', (d: string) => {
        buf += d;
        const lines = buf.split('\n');
        buf = lines.pop() ?? '';
        for (const l of lines) if (l.trim()) progress(`apt: ${l}`);
      });
    };
    pump(child.stdout!);
    pump(child.stderr!);
    child.on('error', reject);
    child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`'${INSTALL_COMMAND}' failed with exit code ${code}`))));
  });
  bins = locate();
  if (missing(bins).length > 0) throw new Error(`still missing after installation: ${missing(bins).join(', ')}`);
  return bins;
}

/** uid/gid of the `postgres` OS user (Postgres refuses to run as root). */
function postgresUser(): { uid: number; gid: number } {
  const line = fs
    .readFileSync('/etc/passwd', 'utf8')
    .split('\n')
    .find((l) => l.startsWith('postgres:'));
  const parts = line?.split(':');
  if (!parts || parts.length < 4) {
    throw new Error(`running as root but there is no 'postgres' OS user (it comes with the package: ${INSTALL_COMMAND})`);
  }
  return { uid: Number(parts[2]), gid: Number(parts[3]) };
}

// ---- process tracking, exit handlers, stale sweep ---------------------------------------------

interface Proc {
  name: 'etcd' | 'postgres';
  child: ChildProcess;
  pid: number;
  exited: boolean;
  exit: Promise<void>;
}

/** Waits until the process exited (true) or the timeout passed (false). The child is ref'd
 * meanwhile: children are unref'd so they never keep the caller alive, but a pending stop() must,
 * or the process would exit half-way (leaving the 'exit' handler to SIGKILL them). */
async function waitExit(proc: Proc, timeoutMs: number): Promise<boolean> {
  if (proc.exited) return true;
  proc.child.ref();
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      proc.exit.then(() => true),
      new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), timeoutMs))),
    ]);
  } finally {
    clearTimeout(timer);
    proc.child.unref();
  }
}

/** Live instances (for the exit/signal handlers). */
const instances = new Set<Instance>();
let handlersInstalled = false;

/** Synchronous cleanups of other harness modules, run by the same exit/signal handlers. */
const exitCleanups = new Set<() => void>();

function killAllSync(): void {
  for (const inst of instances) inst.killSync();
  for (const fn of [...exitCleanups]) {
    try {
      fn();
    } catch {
      /* keep cleaning up the others */
    }
  }
}

/**
 * Runs `fn` (synchronous: it may run in a process 'exit' handler) on exit, SIGINT, SIGTERM and
 * SIGHUP, like the services' own cleanup. Returns the function that unregisters it.
 */
export function registerExitCleanup(fn: () => void): () => void {
  exitCleanups.add(fn);
  installHandlers();
  return () => {
    exitCleanups.delete(fn);
  };
}

function installHandlers(): void {
  if (handlersInstalled) return;
  handlersInstalled = true;
  process.on('exit', killAllSync);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    const handler = (): void => {
      killAllSync();
      // If nobody else handles the signal, restore the default behaviour (terminate).
      if (process.listenerCount(sig) === 1) {
        process.removeListener(sig, handler);
        process.kill(process.pid, sig);
      }
    };
    process.on(sig, handler);
  }
}

interface StateFile {
  parentPid: number;
  parentStart: string | null;
  pids: { name: string; pid: number }[];
}

/** Removes `circuitry-*` dirs of dead parents, killing their recorded children first. Only
 * touches dirs holding our state file, and only kills PIDs whose command line names that dir
 * (so a recycled PID is never hit). */
export function sweepStale(log: (line: string) => void): void {
  const tmp = os.tmpdir();
  let names: string[];
  try {
    names = fs.readdirSync(tmp).filter((n) => n.startsWith(DIR_PREFIX));
  } catch {
    return;
  }
  for (const n of names) {
    const dir = path.join(tmp, n);
    let state: StateFile;
    try {
      state = JSON.parse(fs.readFileSync(path.join(dir, STATE_FILE), 'utf8')) as StateFile;
    } catch {
      continue; // not ours, or being created right now
    }
    const parentStart = procStartTime(state.parentPid);
    const parentAlive = isAlive(state.parentPid) && (state.parentStart === null || parentStart === null || parentStart === state.parentStart);
    if (parentAlive) continue;
    for (const { pid, name } of state.pids) {
      if (isAlive(pid) && procCmdline(pid).includes(dir)) {
        log(`services: killing leaked ${name} (pid ${pid}) of dead parent ${state.parentPid}`);
        killTreeSync(pid);
      }
    }
    try {
      fs.rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
    } catch {
      /* best effort */
    }
  }
}

// ---- the instance --------------------------------------------------------------------------------

class Instance {
  readonly procs = new Map<'etcd' | 'postgres', Proc>();
  private stopping: Promise<void> | null = null;
  stopped = false;
  closeProxy: (() => Promise<void>) | null = null;

  constructor(readonly dir: string) {}

  writeState(): void {
    const state: StateFile = {
      parentPid: process.pid,
      parentStart: procStartTime(process.pid),
      pids: [...this.procs.values()].map((p) => ({ name: p.name, pid: p.pid })),
    };
    const tmp = path.join(this.dir, `${STATE_FILE}.tmp`);
    fs.writeFileSync(tmp, JSON.stringify(state));
    fs.renameSync(tmp, path.join(this.dir, STATE_FILE));
  }

  spawn(name: 'etcd' | 'postgres', cmd: string, args: string[], logFile: string, extra: { uid?: number; gid?: number; cwd?: string; env?: NodeJS.ProcessEnv }): Proc {
    if (this.stopped) throw new Error('services already stopped');
    const fd = fs.openSync(logFile, 'a');
    let child: ChildProcess;
    try {
      child = spawn(cmd, args, {
        detached: true, // own session: terminal Ctrl-C goes to us, we stop them in order
        stdio: ['ignore', fd, fd],
        cwd: extra.cwd ?? this.dir,
        env: extra.env ?? cleanEnv(),
        ...(extra.uid !== undefined ? { uid: extra.uid, gid: extra.gid } : {}),
      });
    } finally {
      fs.closeSync(fd);
    }
    if (child.pid === undefined) throw new Error(`could not spawn ${cmd}`);
    child.unref(); // the caller's own work decides how long the process lives; 'exit' cleans up
    let resolveExit!: () => void;
    const proc: Proc = { name, child, pid: child.pid, exited: false, exit: new Promise<void>((r) => (resolveExit = r)) };
    child.on('exit', () => {
      proc.exited = true;
      resolveExit();
    });
    child.on('error', () => {
      proc.exited = true;
      resolveExit();
    });
    this.procs.set(name, proc);
    this.writeState();
    return proc;
  }

  async stopProc(name: 'etcd' | 'postgres', signal: NodeJS.Signals, graceMs: number): Promise<void> {
    const proc = this.procs.get(name);
    if (!proc || proc.exited) return;
    const kids = descendants(proc.pid);
    trySignal(proc.pid, signal);
    if (!(await waitExit(proc, graceMs))) {
      killTreeSync(proc.pid);
      await waitExit(proc, 2000);
    }
    // Stragglers (e.g. Postgres backends of a killed postmaster).
    for (const k of kids) if (isAlive(k)) trySignal(k, 'SIGKILL');
  }

  killSync(): void {
    for (const p of this.procs.values()) if (!p.exited) killTreeSync(p.pid);
    try {
      fs.rmSync(this.dir, { recursive: true, force: true, maxRetries: 2 });
    } catch {
      /* best effort; the next sweep removes it */
    }
    instances.delete(this);
  }

  stop(): Promise<void> {
    this.stopping ??= (async () => {
      this.stopped = true;
      await Promise.all([
        this.closeProxy?.().catch(() => {}),
        this.stopProc('etcd', 'SIGTERM', 5000),
        this.stopProc('postgres', 'SIGINT', 10_000),
      ]);
      fs.rmSync(this.dir, { recursive: true, force: true, maxRetries: 3, retryDelay: 50 });
      instances.delete(this);
    })();
    return this.stopping;
  }
}

// ---- etcd ------------------------------------------------------------------------------------------

export function httpHealthy(url: string): Promise<boolean> {
  return new Promise((resolve) => {
    const req = http.get(url, { agent: false, timeout: 500 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve(res.statusCode === 200 && /"health"\s*:\s*"true"/.test(body)));
      res.on('error', () => resolve(false));
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(false));
  });
}

async function startEtcd(
  inst: Instance,
  etcdBin: string,
  opts: { autoCompaction?: { mode: string; retention: string }; etcdctl?: string } = {},
  deadlineMs = 15_000,
): Promise<EtcdService> {
  const dataDir = path.join(inst.dir, 'etcd');
  const logFile = path.join(inst.dir, 'etcd.log');
  let clientPort = 0;
  let peerPort = 0;

  const launch = async (): Promise<void> => {
    const u = (p: number): string => `http://127.0.0.1:${p}`;
    const args = [
      '--name', 't',
      '--data-dir', dataDir,
      '--listen-client-urls', u(clientPort),
      '--advertise-client-urls', u(clientPort),
      '--listen-peer-urls', u(peerPort),
      '--initial-advertise-peer-urls', u(peerPort),
      '--initial-cluster', `t=${u(peerPort)}`,
      '--heartbeat-interval=10',
      '--election-timeout=100',
      '--logger=zap',
      '--log-level=error',
      ...(opts.autoCompaction ? [`--auto-compaction-mode=${opts.autoCompaction.mode}`, `--auto-compaction-retention=${opts.autoCompaction.retention}`] : []),
    ];
    const extraEnv: Record<string, string> = process.arch === 'x64' ? {} : { ETCD_UNSUPPORTED_ARCH: process.arch };
    const offset = fileSize(logFile);
    const proc = inst.spawn('etcd', etcdBin, args, logFile, { env: cleanEnv(extraEnv) });
    const deadline = Date.now() + deadlineMs;
    for (;;) {
      if (await httpHealthy(`${u(clientPort)}/health`)) return;
      if (proc.exited || Date.now() > deadline) {
        if (!proc.exited) killTreeSync(proc.pid);
        throw new Error(
          `etcd did not become healthy on ${u(clientPort)} ${proc.exited ? `(exited with ${proc.child.exitCode ?? proc.child.signalCode})` : `within ${deadlineMs} ms`}; last log lines:\n${tailFile(logFile, 25, offset)}`,
        );
      }
      await sleep(10);
    }
  };

  // A port picked by bind-and-release can be taken before etcd binds it: retry with new ports.
  for (let attempt = 1; ; attempt++) {
    clientPort = await freePort();
    peerPort = await freePort();
    try {
      await launch();
      break;
    } catch (err) {
      const inUse = /address already in use/i.test((err as Error).message);
      if (!inUse || attempt >= 3) throw err;
      fs.rmSync(dataDir, { recursive: true, force: true });
    }
  }

  const endpoint = `http://127.0.0.1:${clientPort}`;
  return {
    endpoint,
    get pid() {
      return inst.procs.get('etcd')?.pid ?? -1;
    },
    stop: () => inst.stopProc('etcd', 'SIGTERM', 5000),
    start: async () => {
      const cur = inst.procs.get('etcd');
      if (cur && !cur.exited) return;
      await launch();
    },
    snapshot: async (file) => etcdctl(['--endpoints', endpoint, 'snapshot', 'save', file]),
    restore: async (file) => {
      await inst.stopProc('etcd', 'SIGTERM', 5000);
      fs.rmSync(dataDir, { recursive: true, force: true });
      const peer = `http://127.0.0.1:${peerPort}`;
      await etcdctl(['snapshot', 'restore', file, '--name', 't', '--data-dir', dataDir, '--initial-cluster', `t=${peer}`, '--initial-advertise-peer-urls', peer]);
      await launch();
    },
  };

  async function etcdctl(args: string[]): Promise<void> {
    const bin = opts.etcdctl ?? findOnPath('etcdctl');
    if (bin === undefined) throw new Error('etcdctl is not installed (apt-get install -y etcd-client)');
    const r = spawnSync(bin, args, { env: cleanEnv({ ETCDCTL_API: '3' }), encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`etcdctl ${args.slice(0, 2).join(' ')} failed: ${(r.stderr || r.stdout || '').trim().slice(0, 500)}`);
  }
}

// ---- PostgreSQL --------------------------------------------------------------------------------------

function runSync(cmd: string, args: string[], opts: { uid?: number; gid?: number; cwd: string; env: NodeJS.ProcessEnv }): void {
  const r = spawnSync(cmd, args, {
    cwd: opts.cwd,
    env: opts.env,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
    ...(opts.uid !== undefined ? { uid: opts.uid, gid: opts.gid } : {}),
  });
  if (r.error) throw new Error(`${path.basename(cmd)} failed to start: ${r.error.message}`);
  if (r.status !== 0) {
    const out = `${r.stdout ?? ''}\n${r.stderr ?? ''}`.split('\n').filter((l) => l.trim()).slice(-20).join('\n');
    throw new Error(`${path.basename(cmd)} ${args.join(' ')} exited with ${r.status ?? r.signal}:\n${out}`);
  }
}

function run(cmd: string, args: string[], opts: { uid?: number; gid?: number; cwd: string; env: NodeJS.ProcessEnv }): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      cwd: opts.cwd,
      env: opts.env,
      stdio: ['ignore', 'pipe', 'pipe'],
      ...(opts.uid !== undefined ? { uid: opts.uid, gid: opts.gid } : {}),
    });
    let out = '';
    child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
    child.on('error', (err) => reject(new Error(`${path.basename(cmd)} failed to start: ${err.message}`)));
    child.on('exit', (code, signal) => {
      if (code === 0) resolve();
      else {
        const tail = out.split('\n').filter((l) => l.trim()).slice(-20).join('\n');
        reject(new Error(`${path.basename(cmd)} ${args.join(' ')} exited with ${code ?? signal}:\n${tail}`));
      }
    });
  });
}

async function startPostgres(inst: Instance, pgBin: string, log: (line: string) => void, deadlineMs = 30_000): Promise<PostgresService> {
  const t0 = performance.now();
  const since = (): number => Math.round(performance.now() - t0);
  const pgDir = path.join(inst.dir, 'pg');
  const dataDir = path.join(pgDir, 'data');
  const sockDir = path.join(pgDir, 'sock');
  const logFile = path.join(inst.dir, 'postgres.log');
  const user = isRoot() ? postgresUser() : undefined;
  const ids = user ? { uid: user.uid, gid: user.gid } : {};
  const env = cleanEnv({ HOME: pgDir });

  fs.mkdirSync(pgDir, { mode: 0o755 });
  fs.mkdirSync(dataDir, { mode: 0o700 });
  fs.mkdirSync(sockDir, { mode: 0o700 });
  const pwFile = path.join(pgDir, 'pwfile');
  fs.writeFileSync(pwFile, `${DB_PASSWORD}\n`, { mode: 0o600 });
  if (user) for (const p of [pgDir, dataDir, sockDir, pwFile]) fs.chownSync(p, user.uid, user.gid);

  // Local socket: trust (for our own psql). TCP: password 'postgres', checked with the
  // `password` method: the client sends it in clear (over loopback) and the server verifies it
  // against the stored SCRAM secret. That is what the Neon driver does against Neon's own proxy,
  // and it is fast: with `scram-sha-256` the driver runs SCRAM's 4096 HMAC rounds one WebCrypto
  // call at a time, 80-250 ms per new connection here, against ~10 ms with `password`.
  await run(
    path.join(pgBin, 'initdb'),
    ['-D', dataDir, '-U', 'postgres', '--auth-local=trust', '--auth-host=password', `--pwfile=${pwFile}`, '-N', '--locale=C', '-E', 'UTF8'],
    { ...ids, cwd: pgDir, env },
  );
  fs.rmSync(pwFile, { force: true });
  log(`services: initdb done after ${since()} ms`);

  let port = 0;
  const launch = async (): Promise<void> => {
    const offset = fileSize(logFile);
    const proc = inst.spawn(
      'postgres',
      path.join(pgBin, 'postgres'),
      [
        '-D', dataDir,
        '-k', sockDir,
        '-h', '127.0.0.1',
        '-p', String(port),
        '-c', 'fsync=off',
        '-c', 'synchronous_commit=off',
        '-c', 'full_page_writes=off',
        '-c', 'max_connections=200',
        '-c', 'lc_messages=C',
      ],
      logFile,
      { ...ids, cwd: pgDir, env },
    );
    const deadline = Date.now() + deadlineMs;
    for (;;) {
      // The postmaster logs this once it accepts connections (lc_messages=C: always English).
      const log = fs.readFileSync(logFile, 'utf8').slice(offset);
      if (/database system is ready to accept connections/.test(log)) return;
      if (proc.exited || Date.now() > deadline) {
        if (!proc.exited) killTreeSync(proc.pid);
        throw new Error(
          `postgres did not come up on 127.0.0.1:${port} ${proc.exited ? `(exited with ${proc.child.exitCode ?? proc.child.signalCode})` : `within ${deadlineMs} ms`}; last log lines:\n${tailFile(logFile, 25, offset)}`,
        );
      }
      await sleep(10);
    }
  };

  for (let attempt = 1; ; attempt++) {
    port = await freePort();
    try {
      await launch();
      break;
    } catch (err) {
      const inUse = /could not bind|address already in use/i.test((err as Error).message);
      if (!inUse || attempt >= 3) throw err;
    }
  }

  log(`services: postmaster accepting connections after ${since()} ms`);
  runSync(path.join(pgBin, 'psql'), ['-X', '-q', '-h', sockDir, '-p', String(port), '-U', 'postgres', '-d', 'postgres', '-v', 'ON_ERROR_STOP=1', '-c', `CREATE DATABASE ${DB_NAME}`], {
    ...ids,
    cwd: pgDir,
    env,
  });

  return {
    url: `postgres://postgres:${DB_PASSWORD}@127.0.0.1:${port}/${DB_NAME}`,
    port,
    get pid() {
      return inst.procs.get('postgres')?.pid ?? -1;
    },
    stop: () => inst.stopProc('postgres', 'SIGINT', 10_000),
    start: async () => {
      const cur = inst.procs.get('postgres');
      if (cur && !cur.exited) return;
      await launch();
    },
    restart: async (o = {}) => {
      await inst.stopProc('postgres', o.mode === 'immediate' ? 'SIGQUIT' : 'SIGINT', 10_000);
      await launch();
    },
  };
}

// ---- entry point ---------------------------------------------------------------------------------------

export async function startServices<E extends boolean = true, P extends boolean = true>(
  opts: ServicesOptions<E, P> = {},
): Promise<Services<E, P>> {
  const t0 = performance.now();
  const log = opts.log ?? (() => {});
  const progress = opts.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const wantEtcd = opts.etcd !== false;
  const wantPg = opts.postgres !== false;

  sweepStale(log);
  const bins = await ensureBinaries(wantEtcd, wantPg, progress);

  const dir = fs.mkdtempSync(path.join(os.tmpdir(), DIR_PREFIX));
  fs.chmodSync(dir, 0o755); // the postgres user must traverse it
  const inst = new Instance(dir);
  inst.writeState();
  instances.add(inst);
  installHandlers();

  const timings: Services['timings'] = { totalMs: 0 };
  try {
    // The proxy is in-process and starts in a millisecond; it needs no Postgres to listen.
    const proxy = wantPg ? await startWsProxy({ log }) : null;
    inst.closeProxy = proxy ? proxy.close : null;
    const settled = await Promise.allSettled([
      wantEtcd
        ? startEtcd(inst, bins.etcd!, opts.etcdAutoCompaction ? { autoCompaction: opts.etcdAutoCompaction } : {}).then((s) => {
            timings.etcdMs = Math.round(performance.now() - t0);
            log(`services: etcd ready at ${s.endpoint} (pid ${s.pid}) in ${timings.etcdMs} ms`);
            return s;
          })
        : null,
      wantPg
        ? startPostgres(inst, bins.pgBin!, log).then((s) => {
            timings.postgresMs = Math.round(performance.now() - t0);
            log(`services: postgres ready at ${s.url} (pid ${s.pid}) in ${timings.postgresMs} ms`);
            return s;
          })
        : null,
    ]);
    // Wait for both before failing, so nothing is still being started while we clean up.
    const failed = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
    const etcd = (settled[0] as PromiseFulfilledResult<EtcdService | null>).value;
    const pg = (settled[1] as PromiseFulfilledResult<PostgresService | null>).value;
    timings.totalMs = Math.round(performance.now() - t0);

    const env: Record<string, string> = {};
    if (etcd) env.ETCD_ENDPOINTS = etcd.endpoint;
    if (pg && proxy) {
      env.DATABASE_URL = pg.url;
      env.NEON_WS_PROXY = proxy.url;
    }
    const wsProxy: WsProxyService | null = proxy
      ? { url: proxy.url, port: proxy.port, dropAll: () => proxy.dropAll(), close: () => proxy.close() }
      : null;

    return {
      etcd: etcd as Services<E, P>['etcd'],
      postgres: pg as Services<E, P>['postgres'],
      wsProxy: wsProxy as Services<E, P>['wsProxy'],
      env,
      dir,
      timings,
      stop: () => inst.stop(),
    };
  } catch (err) {
    await inst.stop().catch(() => inst.killSync());
    throw err;
  }
}
