// One chaos worker: an OS process that plays a fleet of Lambda invocations. It runs its share of
// the seeded operations (opFor(seed, worker, i) for i in [from, count)) through the REAL handlers
// (functions/*.ts with API Gateway v2 / EventBridge events) or, with --strategy naive, through the
// reference system's write path; `lanes` operations run at once, each as its own invocation.
//
// Channels:
//   fd 3    (to the coordinator) JSON lines: ready, start, end, fire, done — written synchronously,
//           so a line is out before the process stops or kills itself
//   stdin   (from the coordinator) JSON lines: {"t":"arm","fault":"pause"|"kill","id":n,"where":"before"|"after"}, {"t":"drain"}
//   logFile one JSON line per operation: times, status, the leases it was granted, its etcd
//           transactions (revision, success, lock keys), the database changes it committed
//
// Instrumentation (observes, never changes what the code under test does): the shared runtime's
// etcd lease/txn calls and database queries are wrapped to record the above per operation
// (AsyncLocalStorage). The database wrapper is also where an "armed" fault fires: right before a
// statement propagate runs under a circuit lock is sent, or right after its result arrives, the
// worker stops itself (SIGSTOP; the coordinator sends SIGCONT after more than LOCK_TTL_SECONDS)
// or kills itself (SIGKILL).
//
// With CHAOS_BYPASS_LIVENESS=1 the session's local liveness check (our own clock says the TTL
// passed) is disabled, as if the process's timers lied: a paused writer then really sends its
// transaction and only etcd's fence can refuse it.
import fs from 'node:fs';
import { AsyncLocalStorage } from 'node:async_hooks';
import { createInterface } from 'node:readline';
import type { IRequestOp, ITxnRequest, ITxnResponse } from 'etcd3';
import { closeRuntime, getRuntime, Invocation, type Runtime } from '../../lib/runtime.js';
import { Session } from '../../lib/etcd/index.js';
import { createPool, LOCKED_STATEMENT } from '../../lib/db/index.js';
import { createCircuitSchema, routesSchema } from '../../lib/model.js';
import { CIRCUIT_UNLOAD_REQUESTED } from '../../lib/events.js';
import { closeProbers, getProber, runSweep } from '../../lib/health/index.js';
import { propagate } from '../../lib/circuits/index.js';
import { armFailpoint } from '../../lib/failpoints.js';
import { classify, ConflictError, NotFoundError } from '../../lib/errors.js';
import type { Strategy } from './options.js';
import {
  API_TOKEN,
  circuitIdFor,
  createBody,
  createChoicesFor,
  opFor,
  routeBodies,
  slotAuthority,
  slotPort,
  unloadEventIdFor,
  type Op,
  type Shape,
} from './workload.js';
import { apiEvent, eventBridgeEvent, lambdaContext, parseHttpResult } from './lambda.js';
import { NaiveWriter } from './naive.js';

export interface WorkerConfig {
  seed: string;
  strategy: Strategy;
  slots: number;
  backendPorts: number[];
  worker: number;
  /** Process incarnation of this worker slot (0 = first, +1 per replacement). */
  incarnation: number;
  from: number;
  count: number;
  lanes: number;
  logFile: string;
}

const cfg = JSON.parse(process.env.CHAOS_WORKER ?? 'null') as WorkerConfig | null;
if (cfg === null) {
  process.stderr.write('chaos worker: CHAOS_WORKER is not set (this script is started by harness/chaos/run.ts)\n');
  process.exit(2);
}
const shape: Shape = { seed: cfg.seed, slots: cfg.slots, backends: cfg.backendPorts.length };

// ---- channels -------------------------------------------------------------------------------------

function send(msg: Record<string, unknown>): void {
  try {
    fs.writeSync(3, `${JSON.stringify(msg)}\n`);
  } catch {
    process.exit(3); // the coordinator is gone
  }
}
const logFd = fs.openSync(cfg.logFile, 'a');
const logOp = (rec: Record<string, unknown>): void => void fs.writeSync(logFd, `${JSON.stringify(rec)}\n`);

// ---- instrumentation --------------------------------------------------------------------------------

interface TxnRec {
  rev?: number;
  ok?: boolean;
  /** Wall-clock ms when the request was sent and when its answer arrived (I5 dates writes by them). */
  sent?: number;
  at?: number;
  lock?: string;
  meta?: boolean;
  puts?: number;
  dels?: number;
  err?: string;
}
/** A statement a lock holder ran (lib/db/locked.ts marks them): its fence, and when its answer arrived. */
interface LockedRec {
  c: string;
  epoch: number;
  rev: number;
  sent: number;
  done: number;
  /** It returned the circuit: it read or changed it under its fence. */
  rows: number;
}
interface Trace {
  leases: string[];
  txns: TxnRec[];
  commits: Array<{ circuitId: string; generation: number; what: string }>;
  locked: LockedRec[];
  /** Route changes this operation queued with (route_intents): a holder ahead may commit them. */
  intents: string[];
}
const als = new AsyncLocalStorage<Trace>();

let armed: { fault: 'pause' | 'kill'; id: number; at: number; where: 'before' | 'after' } | null = null;
/** An armed drop-unload fault: the next accepted DELETE's event is never delivered. */
let armedDrop: { id: number } | null = null;

function fire(point: string, circuitId?: string): void {
  const a = armed;
  if (a === null) return;
  armed = null;
  send({ t: 'fire', fault: a.fault, id: a.id, point, at: Date.now(), ...(circuitId !== undefined ? { circuitId } : {}) });
  process.kill(process.pid, a.fault === 'pause' ? 'SIGSTOP' : 'SIGKILL');
}

async function critical(point: string, where: 'before' | 'after' = 'after'): Promise<void> {
  if (armed !== null && armed.where === where) fire(point);
}

const keyOf = (o: IRequestOp): string | null => {
  const k = o.request_put?.key ?? o.request_delete_range?.key;
  return k === undefined ? null : Buffer.from(k as Buffer).toString('utf8');
};

function summarizeTxn(req: ITxnRequest, res: ITxnResponse): TxnRec {
  const ops = (res.succeeded ? req.success : req.failure) ?? [];
  const rec: TxnRec = { rev: Number(res.header.revision), ok: res.succeeded };
  let puts = 0;
  let dels = 0;
  for (const o of ops) {
    const k = keyOf(o);
    if (k === null) continue;
    if (k.includes('/locks/')) {
      if (o.request_put) rec.lock = k;
      continue;
    }
    if (k.includes('/circuits/') && o.request_put) rec.meta = true;
    else if (o.request_put) puts++;
    else dels++;
  }
  if (puts) rec.puts = puts;
  if (dels) rec.dels = dels;
  return rec;
}

/** lib/db/locked.ts readForHolder: the one locked statement that changes nothing but the fence. */
const isFencedRead = (text: string): boolean => /UPDATE circuits AS c SET lock_epoch/.test(text) && !/generation|deleted_at = now/.test(text);
const UNFENCED_READ = `SELECT row_to_json(c) AS circuit,
  (SELECT json_agg(row_to_json(r) ORDER BY r.position) FROM routes r WHERE r.circuit_id = c.id) AS routes,
  (SELECT row_to_json(w) FROM workers w WHERE w.authority = c.worker) AS worker
  FROM circuits c WHERE c.id = $1 AND $2::bigint IS NOT NULL AND $3::bigint IS NOT NULL`;

/** Database statements whose result means "this change committed" (patterns of lib/db/*.ts). */
function commitOf(text: string, params: unknown[] | undefined, rows: Array<Record<string, unknown>>): Trace['commits'][number] | null {
  const id = String(params?.[0] ?? '');
  const row = rows[0] as { circuit?: { generation?: unknown }; changed?: unknown[] } | undefined;
  const generation = Number(row?.circuit?.generation ?? NaN);
  if (row === undefined || !Number.isFinite(generation)) return null;
  if (text.includes('INSERT INTO circuits')) return { circuitId: id, generation, what: 'creation' };
  if (text.includes('SET generation = c.generation + 1')) return { circuitId: id, generation, what: 'routes' };
  if (text.includes('SET deleted_at = now()')) return { circuitId: id, generation, what: 'deletion' };
  if (text.includes('bump AS (') && Array.isArray(row.changed) && row.changed.length > 0) return { circuitId: id, generation, what: 'health' };
  return null;
}


let commitsSeen = 0;

function instrument(rt: Runtime): void {
  const etcd = rt.etcd;
  const origLease = etcd.lease.bind(etcd);
  etcd.lease = ((ttl: number, options?: Parameters<typeof origLease>[1]) => {
    const lease = origLease(ttl, options);
    const t = als.getStore();
    lease.grant().then(
      (id) => t?.leases.push(BigInt(id).toString(16)),
      () => {},
    );
    return lease;
  }) as typeof etcd.lease;

  const kv = etcd.kv;
  const origTxn = kv.txn.bind(kv);
  kv.txn = (async (req: ITxnRequest, options?: unknown) => {
    const t = als.getStore();
    const sent = Date.now();
    try {
      const res = await origTxn(req, options as never);
      t?.txns.push({ ...summarizeTxn(req, res), sent, at: Date.now() });
      return res;
    } catch (err) {
      t?.txns.push({ err: (err as Error).message.slice(0, 120) });
      throw err;
    }
  }) as typeof kv.txn;

  // Plain puts and deletes (the naive writer; lock releases): their revisions link ops to the history.
  const origPut = kv.put.bind(kv);
  kv.put = (async (req: Parameters<typeof origPut>[0], options?: unknown) => {
    const res = await origPut(req, options as never);
    const key = Buffer.from(req.key as Buffer).toString('utf8');
    als.getStore()?.txns.push({ rev: Number(res.header.revision), ok: true, ...(key.includes('/circuits/') ? { meta: true } : { puts: 1 }) });
    return res;
  }) as typeof kv.put;
  const origDel = kv.deleteRange.bind(kv);
  kv.deleteRange = (async (req: Parameters<typeof origDel>[0], options?: unknown) => {
    const res = await origDel(req, options as never);
    const n = Number(res.deleted ?? 0);
    if (n > 0) als.getStore()?.txns.push({ rev: Number(res.header.revision), ok: true, dels: n });
    return res;
  }) as typeof kv.deleteRange;

  const db = rt.db as unknown as { query: (...a: unknown[]) => unknown };
  const origQuery = db.query.bind(db);
  db.query = (...args: unknown[]) => {
    const [text0, params] = args;
    if (typeof text0 !== 'string' || args.some((a) => typeof a === 'function')) return origQuery(...args);
    if (text0.startsWith('INSERT INTO route_intents')) als.getStore()?.intents.push(String((params as unknown[])[0]));
    const locked = cfg!.strategy !== 'naive' && text0.trimStart().startsWith(LOCKED_STATEMENT);
    // The unfenced-reads control: a holder that only reads does not advance the fence (the
    // behaviour before every holder did), everything else unchanged.
    const text = cfg!.strategy === 'unfenced-reads' && locked && isFencedRead(text0) ? UNFENCED_READ : text0;
    // Armed "before": the worker stops right before a statement that would change a live circuit,
    // holding a lock its lease will not keep (paused before a read, or on a deleted circuit, it
    // could not commit anything afterwards).
    const stopFirst =
      locked && armed?.where === 'before' && !isFencedRead(text0)
        ? harnessDb.query<{ live: boolean }>('SELECT deleted_at IS NULL AS live FROM circuits WHERE id = $1', [(params as unknown[])[0]]).then(
            (r) => void (r.rows[0]?.live === true && fire('circuitry:before-locked-statement', String((params as unknown[])[0]))),
            () => {},
          )
        : Promise.resolve();
    return stopFirst.then(() => {
      const sent = Date.now();
      return (origQuery(text, ...args.slice(1)) as Promise<{ rows: Array<Record<string, unknown>> }>).then(async (res) => {
        const c = commitOf(text, params as unknown[] | undefined, res.rows ?? []);
        if (c !== null) {
          commitsSeen++;
          als.getStore()?.commits.push(c);
        }
        if (locked) {
          const p = params as unknown[];
          als.getStore()?.locked.push({ c: String(p[0]), epoch: Number(p[1]), rev: Number(p[2]), sent, done: Date.now(), rows: res.rows?.length ?? 0 });
          await critical(`circuitry:after-locked-${c?.what ?? 'read'}`);
        }
        return res;
      });
    });
  };
}

if (process.env.CHAOS_BYPASS_LIVENESS === '1') Session.trustLocalClock = false;

const rt = getRuntime();
instrument(rt);
const { handler: circuitsApi } = await import('../../functions/circuits-api.js');
const { handler: updateRoutesFn } = await import('../../functions/update-routes.js');
const { handler: unloadFn } = await import('../../functions/unload.js');
const naive = new NaiveWriter(rt, critical);
// The harness's own connection for targeting (which circuit is a slot's current one).
const harnessDb = createPool({ databaseUrl: rt.config.databaseUrl, neonWsProxy: rt.config.neonWsProxy, max: 2, connectionTimeoutMillis: 3000, onError: () => {} });

// ---- targeting ----------------------------------------------------------------------------------------

interface SlotState {
  /** Incarnations created so far. */
  n: number;
  /** The newest incarnation's id, generation and state (null when none was ever created). */
  current: { id: string; k: number; generation: number; deleted: boolean } | null;
}

/** The harness could not read its own targeting data (database connections dropped): not an outcome of the system. */
class TargetingError extends Error {
  override name = 'TargetingError';
}

async function slotState(slot: number): Promise<SlotState> {
  let r: { rows: Array<{ id: string; generation: string; deleted: boolean }> } | undefined;
  for (let attempt = 1; r === undefined; attempt++) {
    try {
      r = await harnessDb.query<{ id: string; generation: string; deleted: boolean }>(
        'SELECT id, generation, deleted_at IS NOT NULL AS deleted FROM circuits WHERE worker = $1 AND frontend_port = $2 ORDER BY created_at',
        [slotAuthority(slot), slotPort(slot)],
      );
    } catch (err) {
      if (attempt >= 3) throw new TargetingError(`reading slot ${slot}: ${(err as Error).message}`);
      await new Promise((res) => setTimeout(res, 100 * attempt));
    }
  }
  const n = r.rows.length;
  // Prefer the live incarnation; else the newest.
  const row = r.rows.find((x) => !x.deleted) ?? r.rows[n - 1];
  if (row === undefined) return { n, current: null };
  let k = 0;
  while (k < n + 8 && circuitIdFor(cfg!.seed, slot, k) !== row.id) k++;
  return { n, current: { id: row.id, k, generation: Number(row.generation), deleted: row.deleted } };
}

// ---- operations ---------------------------------------------------------------------------------------

interface Outcome {
  status: string;
  circuitId?: string;
  http?: number;
  detail?: string;
  generation?: number;
  extra?: Record<string, unknown>;
}

function httpOutcome(res: unknown, circuitId: string): Outcome {
  const { statusCode, body } = parseHttpResult(res);
  const applied = (body.publish as { applied?: boolean } | undefined)?.applied ?? (body.applied as boolean | undefined);
  const status =
    statusCode >= 200 && statusCode < 300
      ? applied === false
        ? 'ok-not-applied'
        : 'ok'
      : ({ 404: 'not-found', 409: 'conflict', 422: 'rejected', 503: 'unavailable', 500: 'error' } as Record<number, string>)[statusCode] ?? `http-${statusCode}`;
  const detail = typeof body.detail === 'string' ? body.detail : typeof body.notAppliedReason === 'string' ? body.notAppliedReason : undefined;
  const generation = typeof body.generation === 'number' ? body.generation : undefined;
  return { status, circuitId, http: statusCode, ...(detail !== undefined ? { detail } : {}), ...(generation !== undefined ? { generation } : {}) };
}

const PROGRAMMING_ERRORS = [TypeError, ReferenceError, SyntaxError, RangeError];

function errorOutcome(err: unknown, circuitId?: string): Outcome {
  const e = err as Error;
  const name = e?.name ?? 'Error';
  const unavailable = classify(err).retryable || /Connection terminated|ECONNREFUSED|ECONNRESET|timeout|DEADLINE_EXCEEDED|UNAVAILABLE/i.test(e?.message ?? '');
  const status = PROGRAMMING_ERRORS.some((c) => err instanceof c)
    ? 'harness-error'
    : err instanceof ConflictError
      ? 'conflict'
      : err instanceof NotFoundError
        ? 'not-found'
        : /committed in the database but not applied/.test(e?.message ?? '')
          ? 'not-applied'
          : unavailable || /DependencyError|LockTimeoutError|LockLostError|SessionLostError|FencedWriteError|OutcomeUnknownError/.test(name)
            ? 'unavailable'
            : 'error';
  return { status, ...(circuitId ? { circuitId } : {}), detail: `${name}: ${(e?.message ?? String(err)).slice(0, 300)}` };
}

async function deliverUnload(slot: number, k: number): Promise<Outcome> {
  const id = circuitIdFor(cfg!.seed, slot, k);
  const event = eventBridgeEvent(unloadEventIdFor(cfg!.seed, slot, k), CIRCUIT_UNLOAD_REQUESTED, { circuitId: id });
  if (cfg!.strategy === 'naive') {
    try {
      const r = await naive.unload(id);
      return { status: r.status, circuitId: id };
    } catch (err) {
      return errorOutcome(err, id);
    }
  }
  try {
    const r = (await unloadFn(event, lambdaContext(30_000, 'unload'))) as { status?: string };
    const status = r?.status === 'unloaded' ? 'ok' : r?.status === 'already-unloaded' ? 'noop' : r?.status === 'unknown-circuit' ? 'not-found' : `unexpected-${r?.status}`;
    return { status, circuitId: id };
  } catch (err) {
    return errorOutcome(err, id);
  }
}

/**
 * DELETE through the API (durable before its 202), then the event delivery EventBridge would make
 * — unless a drop-unload fault is armed: then the event is never delivered and only the sweep can
 * complete the unload (I6).
 */
async function requestAndDeliverUnload(slot: number, k: number): Promise<Outcome> {
  if (cfg!.strategy === 'naive') return deliverUnload(slot, k);
  const id = circuitIdFor(cfg!.seed, slot, k);
  const res = await circuitsApi(apiEvent({ method: 'DELETE', path: `/v2/circuits/${id}`, pathParameters: { id }, token: API_TOKEN }), lambdaContext(30_000, 'circuits-api'));
  const accepted = httpOutcome(res, id);
  if (accepted.http !== 202) return { ...accepted, extra: { delete: accepted.http } };
  if (armedDrop !== null) {
    send({ t: 'fire', fault: 'drop-unload', id: armedDrop.id, point: 'event-not-delivered', at: Date.now(), circuitId: id });
    armedDrop = null;
    return { status: 'accepted-dropped', circuitId: id, http: 202, extra: { accepted: true, delivered: false } };
  }
  const delivered = await deliverUnload(slot, k);
  return { ...delivered, http: 202, extra: { accepted: true, delivered: true, delivery: delivered.status } };
}

async function execute(op: Op): Promise<Outcome> {
  const { seed } = cfg!;
  switch (op.kind) {
    case 'create':
    case 'create-retry': {
      const s = await slotState(op.slot);
      // A retry re-sends the creation of the slot's current incarnation; a create makes the next one.
      const k = op.kind === 'create-retry' && s.current !== null ? s.current.k : s.n;
      const id = circuitIdFor(seed, op.slot, k);
      const body = createBody(shape, op.slot, id, createChoicesFor(shape, op.slot, k), cfg!.backendPorts);
      if (cfg!.strategy === 'naive') {
        try {
          const input = createCircuitSchema(rt.config.maxRoutesPerCircuit).parse(body);
          const r = await naive.create(id, input);
          return { status: r.status, circuitId: id };
        } catch (err) {
          return errorOutcome(err, id);
        }
      }
      const res = await circuitsApi(apiEvent({ method: 'POST', path: '/v2/circuits', body, token: API_TOKEN }), lambdaContext(30_000, 'circuits-api'));
      return httpOutcome(res, id);
    }
    case 'update-routes': {
      const s = await slotState(op.slot);
      const id = s.current?.id ?? circuitIdFor(seed, op.slot, 0);
      const routes = routeBodies(seed, op.slot, op.routes, cfg!.backendPorts);
      const ifMatch = op.ifMatch && s.current ? s.current.generation : undefined;
      if (cfg!.strategy === 'naive') {
        try {
          const r = await naive.updateRoutes(id, routesSchema(rt.config.maxRoutesPerCircuit).parse(routes), ifMatch);
          return { status: r.status, circuitId: id };
        } catch (err) {
          return errorOutcome(err, id);
        }
      }
      const res = await updateRoutesFn(
        apiEvent({
          method: 'PUT',
          path: `/v2/circuits/${id}/routes`,
          pathParameters: { id },
          body: { routes },
          headers: ifMatch !== undefined ? { 'if-match': `"${ifMatch}"` } : {},
          token: API_TOKEN,
        }),
        lambdaContext(30_000, 'update-routes'),
      );
      return httpOutcome(res, id);
    }
    case 'unload':
    case 'unload-dup': {
      const s = await slotState(op.slot);
      const k = s.current?.k ?? 0;
      if (op.kind === 'unload') return requestAndDeliverUnload(op.slot, k);
      // At-least-once delivery: the same event handed to two invocations at once.
      const [a, b] = await Promise.all([deliverUnload(op.slot, k), deliverUnload(op.slot, k)]);
      return { ...a!, extra: { duplicate: b!.status } };
    }
    case 'unload-late': {
      // A late re-delivery of the unload event of an older incarnation (usually long deleted).
      const s = await slotState(op.slot);
      const k = Math.max(0, s.n - 1 - op.lateBack);
      const o = await deliverUnload(op.slot, k);
      return { ...o, extra: { incarnation: k, of: s.n } };
    }
    case 'sweep': {
      if (cfg!.strategy === 'naive') {
        const r = await naive.sweep(getProber(rt.config));
        return { status: 'ok', extra: r };
      }
      // scheduled-health's body (functions/scheduled-health.ts is still a placeholder): one pass.
      const inv = new Invocation(rt);
      try {
        const s = await runSweep(inv, { publish: async () => {}, drift: op.drift });
        return {
          status: s.errors.length > 0 ? 'partial' : 'ok',
          extra: {
            claimed: s.circuitsClaimed,
            statusChanges: s.statusChanges,
            driftRepaired: s.driftRepaired,
            orphansRemoved: s.orphansRemoved,
            notApplied: s.notApplied,
            ...(s.errors.length ? { errors: s.errors.slice(0, 3).map((e) => e.slice(0, 200)) } : {}),
          },
        };
      } finally {
        await inv.close().catch(() => {});
      }
    }
  }
}

// ---- the loop -------------------------------------------------------------------------------------------

let next = cfg.from;
let draining = false;

async function runOne(op: Op): Promise<void> {
  const trace: Trace = { leases: [], txns: [], commits: [], locked: [], intents: [] };
  const start = Date.now();
  send({ t: 'start', i: op.i, kind: op.kind, at: start });
  let out: Outcome;
  try {
    out = await als.run(trace, () => execute(op));
  } catch (err) {
    out = errorOutcome(err);
    if (err instanceof TargetingError) out.status = 'skipped';
  }
  const end = Date.now();
  logOp({
    w: cfg!.worker,
    inc: cfg!.incarnation,
    pid: process.pid,
    i: op.i,
    kind: op.kind,
    slot: op.slot,
    ...out,
    start,
    end,
    ms: end - start,
    leases: trace.leases,
    txns: trace.txns,
    ...(trace.commits.length ? { commits: trace.commits } : {}),
    ...(trace.locked.length ? { locked: trace.locked } : {}),
    ...(trace.intents.length ? { intents: trace.intents } : {}),
  });
  send({ t: 'end', i: op.i, status: out.status, at: end });
}

async function lane(): Promise<void> {
  for (;;) {
    if (draining || next >= cfg!.count) return;
    // An armed fault that found no critical point within 3 s fires at the start of an operation.
    if (armed !== null && Date.now() - armed.at > 3000) fire('op-start');
    const i = next++;
    await runOne(opFor(shape, cfg!.worker, i));
  }
}

/**
 * A reader scheduled by the coordinator while another worker is paused before a statement under
 * this circuit's lock: a drift repair of that one circuit (a lock holder that reads it, and writes
 * only what differs). Logged like an operation (kind "reader", negative index), not counted as one.
 */
let readers = 0;
// A reader, right after its read under the lock, tells the coordinator (which resumes the paused
// writer) and holds on a moment before writing: the writer's statement lands in between.
armFailpoint('propagate.read', async (ctx) => {
  const m = /^chaos-reader:(\d+)$/.exec(ctx.holder ?? '');
  if (m === null) return;
  send({ t: 'reader-read', readerId: Number(m[1]) });
  await new Promise((r) => setTimeout(r, 300));
});
async function runReader(circuitId: string, readerId: number): Promise<void> {
  const i = -1 - readers++;
  const trace: Trace = { leases: [], txns: [], commits: [], locked: [], intents: [] };
  const start = Date.now();
  let out: Outcome;
  const inv = new Invocation(rt, `chaos-reader:${readerId}`);
  try {
    const r = await als.run(trace, () => propagate(inv, circuitId));
    out = { status: r.applied ? (r.unchanged ? 'noop' : 'ok') : r.found ? 'not-applied' : 'not-found', circuitId, ...(r.notAppliedReason ? { detail: r.notAppliedReason } : {}) };
  } catch (err) {
    out = errorOutcome(err, circuitId);
  } finally {
    await inv.close().catch(() => {});
  }
  const end = Date.now();
  logOp({ w: cfg!.worker, inc: cfg!.incarnation, pid: process.pid, i, kind: 'reader', slot: -1, ...out, start, end, ms: end - start, leases: trace.leases, txns: trace.txns, ...(trace.locked.length ? { locked: trace.locked } : {}) });
  send({ t: 'reader-done', readerId, status: out.status });
}

createInterface({ input: process.stdin })
  .on('line', (line) => {
    let msg: { t?: string; fault?: 'pause' | 'kill' | 'drop-unload'; id?: number; where?: string };
    try {
      msg = JSON.parse(line) as typeof msg;
    } catch {
      return;
    }
    if (msg.t === 'arm' && msg.fault === 'drop-unload') armedDrop = { id: msg.id ?? -1 };
    else if (msg.t === 'arm' && (msg.fault === 'pause' || msg.fault === 'kill')) {
      armed = { fault: msg.fault, id: msg.id ?? -1, at: Date.now(), where: msg.where === 'before' && cfg!.strategy !== 'naive' ? 'before' : 'after' };
    }
    if (msg.t === 'drain') draining = true;
    if (msg.t === 'reader' && typeof (msg as { circuitId?: unknown }).circuitId === 'string' && cfg!.strategy !== 'naive') {
      void runReader((msg as { circuitId: string }).circuitId, Number((msg as { readerId?: unknown }).readerId));
    }
  })
  .on('close', () => {
    draining = true;
  });

send({ t: 'ready', pid: process.pid, from: cfg.from });
await Promise.all(Array.from({ length: cfg.lanes }, () => lane()));
send({ t: 'done', commitsSeen });
closeProbers();
await Promise.race([Promise.all([closeRuntime(rt), harnessDb.end().catch(() => {})]), new Promise((r) => setTimeout(r, 2000))]);
process.exit(0);
