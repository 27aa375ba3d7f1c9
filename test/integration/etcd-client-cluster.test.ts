// lib/etcd's client under etcd cluster faults, on a real 3-member cluster (harness/devstack/
// etcd-cluster.ts; faults injected by its fault proxies): each test forces one failure of the
// client's own making that the cluster tests measured (test/integration/etcd-cluster.test.ts):
//   - a caller's deadline spent by the first attempt, so the retries on another member start
//     already expired;
//   - a retried transaction that must not apply twice (the first attempt's answer is lost);
//   - every ~1/N call paying a full deadline on an unreachable member;
//   - a session's lease lost after one TTL because its keepalives go to an unreachable member;
//   - a lock waiter whose watch stream is stuck on an unreachable member;
//   - the session's own clock across a real leader change (it must stay conservative).
// Host order is made deterministic where a test needs the unreachable member tried first
// (ConnectionPool.deterministicOrder: the LAST endpoint of the list is tried first). Every figure
// is printed (`etcd-client:` lines and a JSON summary).
import fs from 'node:fs';
import { randomUUID } from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Etcd3, type IKeyValue } from 'etcd3';
import { ConnectionPool } from 'etcd3/lib/connection-pool.js';
import { noop } from 'cockatiel';
import { startEtcdCluster, type EtcdCluster } from '../../harness/devstack/etcd-cluster.js';
import { createEtcd } from '../../lib/etcd/client.js';
import { Session } from '../../lib/etcd/session.js';
import { acquire } from '../../lib/etcd/mutex.js';
import { applyFenced } from '../../lib/etcd/fenced-apply.js';
import { readMeta, readPrefixes } from '../../lib/etcd/circuit-keys.js';
import { scanPrefix } from '../../lib/etcd/scan.js';
import { readHistoryState } from '../../lib/etcd/epoch.js';
import { pingEtcd } from '../../lib/etcd/ping.js';
import { enc } from '../../lib/etcd/keys.js';
import { pauseAt } from '../../lib/failpoints.js';
import { DependencyError } from '../../lib/errors.js';

/** ETCD_TIMEOUT_MS of the clients under test: the deadline of one attempt. */
const ATTEMPT_MS = 1000;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const now = (): number => performance.now();
const ms = (t0: number): number => Math.round(now() - t0);
const procExists = (pid: number): boolean => pid > 0 && fs.existsSync(`/proc/${pid}`);
const report: Record<string, unknown> = {};
const note = (key: string, value: unknown): void => {
  report[key] = value;
  console.info(`etcd-client: ${key} = ${JSON.stringify(value)}`);
};

const outcome = (p: Promise<unknown>): Promise<string> => p.then(() => 'ok', (err: Error) => `${err.constructor.name}: ${err.message.slice(0, 100)}`);

describe('lib/etcd on a 3-member cluster under faults', () => {
  let cluster: EtcdCluster;
  const pids = new Set<number>();
  const clients: Etcd3[] = [];
  const sessions: Session[] = [];
  const track = (): void => {
    for (const m of cluster.members) if (m.pid > 0) pids.add(m.pid);
  };
  const keep = <T extends Etcd3>(c: T): T => {
    clients.push(c);
    return c;
  };
  /** The project's client (lib/etcd/client.ts) over the given endpoints. */
  const etcdFor = (endpoints: string[]): Etcd3 => keep(createEtcd({ endpoints, timeoutMs: ATTEMPT_MS }));
  /** The proxied endpoints with member x last: tried first under deterministicOrder. */
  const xFirst = (x: number): string[] => [...cluster.endpoints.filter((_, i) => i !== x), cluster.endpoints[x]!];
  /** A plain client on the members' own ports (no proxy, no retries): the observer. */
  const observer = (except: number[] = []): Etcd3 =>
    keep(new Etcd3({ hosts: cluster.directEndpoints.filter((_, i) => !except.includes(i)), dialTimeout: ATTEMPT_MS, faultHandling: { host: () => noop, global: noop } }));
  const open = async (etcd: Etcd3, ttl: number): Promise<Session> => {
    const s = await Session.open(etcd, ttl);
    sessions.push(s);
    return s;
  };
  const leaseTtl = async (obs: Etcd3, id: string): Promise<number> => Number((await obs.leaseClient.leaseTimeToLive({ ID: id }, { deadline: new Date(Date.now() + ATTEMPT_MS) })).TTL);
  const kvOf = async (obs: Etcd3, key: string): Promise<IKeyValue | undefined> => (await obs.kv.range({ key: enc(key) }, { deadline: new Date(Date.now() + ATTEMPT_MS) })).kvs[0];
  beforeAll(async () => {
    cluster = await startEtcdCluster({ size: 3 });
    track();
  });

  afterEach(async () => {
    ConnectionPool.deterministicOrder = false;
    for (const s of sessions.splice(0)) await s.close().catch(() => {});
    for (const c of clients.splice(0)) c.close();
    if (!cluster) return;
    await cluster.recover(10_000);
    track();
  });

  afterAll(async () => {
    track();
    await cluster?.stop();
    for (const pid of pids) expect(procExists(pid), `etcd pid ${pid} still exists`).toBe(false);
    console.info(`etcd-client summary: ${JSON.stringify(report)}`);
  });

  it('a caller\'s deadline is per attempt: every lib/etcd call that times out on an unreachable member succeeds on another', async () => {
    const x = (await cluster.leader() + 1) % 3;
    const prefix = `client-test/${randomUUID()}/`;
    const setup = etcdFor(cluster.endpoints);
    await setup.put(`${prefix}k`).value('v');
    const epochKey = `${prefix}epoch`;
    // Each call on a fresh client whose first attempt goes to member x, cut off from clients.
    const calls: Array<[string, (etcd: Etcd3) => Promise<unknown>]> = [
      ['readMeta (range)', (e) => readMeta(e, `${prefix}k`, ATTEMPT_MS)],
      ['readPrefixes (txn)', (e) => readPrefixes(e, [prefix], ATTEMPT_MS)],
      ['scanPrefix (paged range)', (e) => scanPrefix(e, prefix, { pageSize: 10, timeoutMs: ATTEMPT_MS, onKv: () => {} })],
      ['readHistoryState (range)', (e) => readHistoryState(e, prefix, ATTEMPT_MS)],
      ['pingEtcd (range)', async (e) => {
        const r = await pingEtcd(e, `${prefix}k`, ATTEMPT_MS);
        if (!r.ok) throw new Error('ping failed');
      }],
      ['Session.open + acquire + Lock.txn (txns)', async (e) => {
        const s = await open(e, 5);
        const a = await acquire(s, { prefix: `${prefix}lock/`, epochKey, waitMs: 3000, rpcTimeoutMs: ATTEMPT_MS });
        const r = await a.lock.txn({ success: [], release: true }, ATTEMPT_MS);
        if (!r.succeeded) throw new Error('guarded txn refused');
      }],
    ];
    const results: Record<string, { outcome: string; ms: number }> = {};
    for (const [name, call] of calls) {
      ConnectionPool.deterministicOrder = true;
      const etcd = etcdFor(xFirst(x));
      cluster.partitionClientsFrom(x);
      const t = now();
      results[name] = { outcome: await outcome(call(etcd)), ms: ms(t) };
      cluster.heal();
      etcd.close();
    }
    note('perAttemptDeadline', results);
    for (const [name, r] of Object.entries(results)) expect(r.outcome, name).toBe('ok');
  });

  it('a call never outlives its budget: with every member unreachable it fails after two attempt deadlines', async () => {
    const etcd = etcdFor(cluster.endpoints);
    await readMeta(etcd, 'client-test/warm', ATTEMPT_MS);
    for (let i = 0; i < 3; i++) cluster.partitionClientsFrom(i);
    const t = now();
    const err = await readMeta(etcd, 'client-test/warm', ATTEMPT_MS).then(() => null, (e: Error) => e);
    const took = ms(t);
    note('allUnreachable', { ms: took, error: err ? `${err.constructor.name}: ${err.message.slice(0, 100)}` : null });
    expect(err).toBeInstanceOf(DependencyError);
    // More than one attempt was made (a fixed deadline would have ended it after one) ...
    expect(took).toBeGreaterThanOrEqual(2 * ATTEMPT_MS - 100);
    // ... and no attempt ran past the budget (loose: a loaded machine's timers fire late).
    expect(took).toBeLessThan(2 * ATTEMPT_MS + 1500);
  });

  describe('a transaction whose answer is lost is retried on another member and applies once', () => {
    let x: number;
    let etcd: Etcd3;
    let obs: Etcd3;
    /** The next call reaches member x, whose answer never comes back. */
    const lose = async (): Promise<void> => {
      await readMeta(etcd, 'client-test/warm', ATTEMPT_MS); // the connection to x is up: the request is delivered
      cluster.members[x]!.clientProxy.blackhole({ direction: 'down' });
    };
    const prepare = async (): Promise<void> => {
      x = (await cluster.leader() + 1) % 3;
      ConnectionPool.deterministicOrder = true;
      etcd = etcdFor(xFirst(x));
      obs = observer();
    };

    it('the acquire: one lock key, queued once, and the lock is ours', async () => {
      await prepare();
      const prefix = `client-test/${randomUUID()}/`;
      const session = await open(etcd, 10);
      await lose();
      const t = now();
      const got = await acquire(session, { prefix: `${prefix}lock/`, epochKey: `${prefix}epoch`, waitMs: 3000, rpcTimeoutMs: ATTEMPT_MS }).then(
        (a) => a,
        (e: Error) => e,
      );
      const took = ms(t);
      cluster.heal();
      expect(got, String(got)).not.toBeInstanceOf(Error);
      const a = got as Awaited<ReturnType<typeof acquire>>;
      const kv = await kvOf(obs, a.lock.key);
      note('lostAcquireAnswer', { ms: took, version: kv?.version, createRevision: kv?.create_revision, lockCreateRevision: a.lock.createRevision });
      expect(kv?.version).toBe('1'); // put once: the retry found its own key instead of putting another
      expect(kv?.create_revision).toBe(a.lock.createRevision);
      expect(await a.lock.isOwner(ATTEMPT_MS)).toBe(true);
      await a.lock.release(ATTEMPT_MS);
    });

    it('the final apply: recognised by its writer, the meta written once, the lock released', async () => {
      await prepare();
      const prefix = `client-test/${randomUUID()}/`;
      const session = await open(etcd, 10);
      const a = await acquire(session, { prefix: `${prefix}lock/`, epochKey: `${prefix}epoch`, waitMs: 3000, rpcTimeoutMs: ATTEMPT_MS });
      await lose();
      const t = now();
      const r = await outcome(
        applyFenced({
          lock: a.lock,
          metaKey: `${prefix}meta`,
          seen: { modRevision: '0', value: null },
          steps: [{ puts: [[`${prefix}t/a`, '1']], deletes: [], deletePrefixes: [] }],
          meta: { generation: 1, deleted: false, worker: 'w' },
          rpcTimeoutMs: ATTEMPT_MS,
        }),
      );
      const took = ms(t);
      cluster.heal();
      // Fresh keys: a key's version is the number of times it was put.
      const versions = { meta: (await kvOf(obs, `${prefix}meta`))?.version, key: (await kvOf(obs, `${prefix}t/a`))?.version };
      note('lostFinalApplyAnswer', { ms: took, outcome: r, versions });
      expect(r).toBe('ok');
      expect(a.lock.released).toBe(true);
      expect(versions).toEqual({ meta: '1', key: '1' });
      expect(await kvOf(obs, a.lock.key)).toBeUndefined();
    });

    it('a staged apply: a retried intermediate step is recognised, every step applies once', async () => {
      await prepare();
      const prefix = `client-test/${randomUUID()}/`;
      const session = await open(etcd, 10);
      const a = await acquire(session, { prefix: `${prefix}lock/`, epochKey: `${prefix}epoch`, waitMs: 3000, rpcTimeoutMs: ATTEMPT_MS });
      await lose(); // the answer of step 1 is lost; steps 2 and 3 go elsewhere (x's breaker is open)
      const step = (n: number) => ({ puts: [[`${prefix}t/${n}a`, 'x'], [`${prefix}t/${n}b`, 'y']] as Array<[string, string]>, deletes: [], deletePrefixes: [] });
      const r = await outcome(
        applyFenced({
          lock: a.lock,
          metaKey: `${prefix}meta`,
          seen: { modRevision: '0', value: null },
          steps: [step(1), step(2), step(3)],
          meta: { generation: 1, deleted: false, worker: 'w' },
          rpcTimeoutMs: ATTEMPT_MS,
        }),
      );
      cluster.heal();
      // Fresh keys: a key's version is the number of times it was put.
      const perKey: Record<string, string | undefined> = {};
      for (const n of [1, 2, 3]) for (const s of ['a', 'b']) perKey[`${n}${s}`] = (await kvOf(obs, `${prefix}t/${n}${s}`))?.version;
      perKey.meta = (await kvOf(obs, `${prefix}meta`))?.version;
      note('lostIntermediateStepAnswer', { outcome: r, putsPerKey: perKey });
      expect(r).toBe('ok');
      expect(perKey).toEqual({ '1a': '1', '1b': '1', '2a': '1', '2b': '1', '3a': '1', '3b': '1', meta: '1' });
    });
  });

  it('failover: with one member unreachable, calls move on to the others instead of paying its deadline every ~1/3 call', async () => {
    const x = (await cluster.leader() + 1) % 3;
    const etcd = etcdFor(cluster.endpoints); // random host order, as in production
    await readMeta(etcd, 'client-test/warm', ATTEMPT_MS);
    cluster.partitionClientsFrom(x);
    const lat: number[] = [];
    let failed = 0;
    for (let i = 0; i < 40; i++) {
      const t = now();
      try {
        await readMeta(etcd, 'client-test/warm', ATTEMPT_MS);
      } catch {
        failed++;
      }
      lat.push(ms(t));
    }
    const slow = lat.filter((l) => l >= 0.9 * ATTEMPT_MS).length;
    const sorted = [...lat].sort((a, b) => a - b);
    note('failoverOneUnreachable', { calls: lat.length, failed, payingADeadline: slow, p50Ms: sorted[Math.floor(sorted.length / 2)], maxMs: sorted[sorted.length - 1], totalMs: lat.reduce((a, b) => a + b, 0) });
    expect(failed).toBe(0);
    // The first call to meet the unreachable member pays one attempt deadline; a half-open
    // trial may pay another. Without failover about a third of the calls would.
    expect(slow).toBeLessThanOrEqual(3);
  });

  it('a session whose keepalives go to an unreachable member keeps its lease through the others', async () => {
    const x = (await cluster.leader() + 1) % 3;
    ConnectionPool.deterministicOrder = true; // the grant and the keepalives go to member x first
    const etcd = etcdFor(xFirst(x));
    const ttl = 2;
    const session = await open(etcd, ttl);
    await sleep(800); // renewed at least once through x
    expect(session.lost).toBe(false);
    const obs = observer([x]);
    cluster.partitionClientsFrom(x);
    const cutAt = Date.now();
    let minTtl = Infinity;
    let minRemaining = Infinity;
    let expiredAt: number | null = null;
    while (Date.now() - cutAt < 3 * ttl * 1000) {
      const t = await leaseTtl(obs, session.leaseId).catch(() => null);
      if (t !== null) minTtl = Math.min(minTtl, t);
      if (t !== null && t < 0 && expiredAt === null) expiredAt = Date.now() - cutAt;
      minRemaining = Math.min(minRemaining, session.remainingMs);
      await sleep(100);
    }
    note('keepaliveThroughOthers', { ttlSeconds: ttl, observedMs: Date.now() - cutAt, minServerTtl: minTtl, minLocalRemainingMs: Math.round(minRemaining), serverExpiredMsAfterCut: expiredAt, sessionLost: session.lost });
    expect(expiredAt).toBeNull();
    expect(session.lost).toBe(false);
    expect(await leaseTtl(obs, session.leaseId)).toBeGreaterThan(0);
  });

  it('a lock waiter whose watch stream is on an unreachable member still takes the lock once it is released', async () => {
    const x = (await cluster.leader() + 1) % 3;
    const prefix = `client-test/${randomUUID()}/`;
    const opts = { prefix: `${prefix}lock/`, epochKey: `${prefix}epoch`, waitMs: 6000, rpcTimeoutMs: ATTEMPT_MS };
    const holderEtcd = etcdFor(cluster.endpoints.filter((_, i) => i !== x));
    const holder = await acquire(await open(holderEtcd, 10), opts);
    ConnectionPool.deterministicOrder = true; // the waiter's watch stream goes to member x
    const waiterEtcd = etcdFor(xFirst(x));
    const waiterSession = await open(waiterEtcd, 10);
    const atWatch = pauseAt('mutex.beforeWatch', (ctx) => ctx.key?.startsWith(opts.prefix) === true && ctx.predecessor === holder.lock.key);
    const waiting = acquire(waiterSession, opts).then((a) => a, (e: Error) => e);
    await atWatch.reached;
    atWatch.release();
    await sleep(300); // the watch is created on x's stream
    cluster.partitionClientsFrom(x);
    await holder.lock.release(ATTEMPT_MS);
    const releasedAt = now();
    const got = await waiting;
    const after = ms(releasedAt);
    note('waiterWatchOnUnreachableMember', { acquiredMsAfterRelease: got instanceof Error ? null : after, outcome: got instanceof Error ? `${got.constructor.name}: ${got.message}` : 'acquired', waitMs: opts.waitMs });
    expect(got, String(got)).not.toBeInstanceOf(Error);
    if (!(got instanceof Error)) await got.lock.release(ATTEMPT_MS);
  });

  it('the session\'s own clock stays conservative across a leader kill: the lease never expires on the server while the session believes it alive', async () => {
    const etcd = etcdFor(cluster.endpoints);
    const ttl = 3;
    const session = await open(etcd, ttl);
    await sleep(1500);
    const old = await cluster.leader();
    const survivors = [0, 1, 2].filter((i) => i !== old);
    const obs = observer([old]);
    const beforeKill = { serverTtl: await leaseTtl(obs, session.leaseId), localRemainingMs: Math.round(session.remainingMs) };
    await cluster.members[old]!.kill();
    await cluster.waitForLeader(5000, { not: old });
    const rightAfter = { serverTtl: await leaseTtl(obs, session.leaseId), localRemainingMs: Math.round(session.remainingMs) };
    // Renewals stop: every client path is cut. The harness still reads the members directly.
    for (const i of survivors) cluster.partitionClientsFrom(i);
    cluster.partitionClientsFrom(old);
    const samples: Array<{ at: number; server: number; local: number }> = [];
    let serverExpiredAt: number | null = null;
    const until = Date.now() + (2 * ttl + 3) * 1000;
    while (Date.now() < until) {
      const local = session.remainingMs;
      const server = await leaseTtl(obs, session.leaseId).catch(() => null);
      if (server !== null) {
        samples.push({ at: Date.now(), server, local });
        if (server < 0) {
          serverExpiredAt = Date.now();
          break;
        }
      }
      await sleep(40);
    }
    const optimistic = samples.filter((s) => s.server < 0 && s.local > 0);
    const lastLocalAlive = samples.filter((s) => s.local > 0).pop();
    note('livenessAcrossLeaderKill', {
      ttlSeconds: ttl,
      beforeKill,
      rightAfterNewLeader: rightAfter,
      serverExpiredMsAfterLocalExpiry: serverExpiredAt !== null && lastLocalAlive ? serverExpiredAt - lastLocalAlive.at : null,
      samples: samples.length,
      optimisticSamples: optimistic.length,
      sessionLost: session.lost,
    });
    expect(serverExpiredAt).not.toBeNull();
    // A new leader renews every lease with a full TTL: the server's view is at least ours.
    expect(rightAfter.serverTtl * 1000 + 1000).toBeGreaterThanOrEqual(rightAfter.localRemainingMs);
    // Never did the server say "expired" while our clock said "alive".
    expect(optimistic).toEqual([]);
    expect(session.lost).toBe(true);
  });
});
