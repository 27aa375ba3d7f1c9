// The promise under etcd cluster faults and database restarts: what etcd (a real 3-member
// cluster, harness/devstack/etcd-cluster.ts, faults injected by fault proxies) and PostgreSQL (a
// real server behind the Neon driver's WebSocket proxy) actually do when a leader dies, a member
// is partitioned away, a response is lost or the database restarts mid-statement, observed
// through the project's own etcd client (lib/etcd/client.ts createEtcd) and plain etcd3.
//
// Every figure is printed (`etcd-cluster:` lines, and a JSON summary at the end); assertions
// check behaviour, with time bounds only where a bound is the behaviour (a leader within a few
// seconds, a statement failing promptly), and loose enough for a loaded 2-core machine.
import fs from 'node:fs';
import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Etcd3, type IOptions } from 'etcd3';
import { ConnectionPool } from 'etcd3/lib/connection-pool.js';
import { noop } from 'cockatiel';
import type { Pool } from '@neondatabase/serverless';
import { startEtcdCluster, type EtcdCluster } from '../../harness/devstack/etcd-cluster.js';
import { startServices, type Services } from '../../harness/devstack/services.js';
import { createEtcd, deadline } from '../../lib/etcd/client.js';
import { Session } from '../../lib/etcd/session.js';
import { cmp, enc, op } from '../../lib/etcd/keys.js';
import { createPool } from '../../lib/db/neon.js';

/** ETCD_TIMEOUT_MS of the clients under test (production default: 3000). */
const TIMEOUT_MS = 1000;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const now = (): number => performance.now();
const procExists = (pid: number): boolean => pid > 0 && fs.existsSync(`/proc/${pid}`);
const report: Record<string, unknown> = {};
const note = (key: string, value: unknown): void => {
  report[key] = value;
  console.info(`etcd-cluster: ${key} = ${JSON.stringify(value)}`);
};

async function waitFor<T>(what: string, fn: () => Promise<T | undefined | false>, timeoutMs: number, everyMs = 20): Promise<T> {
  const until = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v !== undefined && v !== false) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > until) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
    await sleep(everyMs);
  }
}

/** A plain etcd3 client without retries or circuit breaker: each call goes to one host once. */
const plain = (hosts: string[], extra: Partial<IOptions> = {}): Etcd3 =>
  new Etcd3({ hosts, dialTimeout: TIMEOUT_MS, faultHandling: { host: () => noop, global: noop }, ...extra });

const ms = (t0: number): number => Math.round(now() - t0);

describe('etcd: a 3-member cluster under faults', () => {
  let cluster: EtcdCluster;
  const pids = new Set<number>();
  const clients: Etcd3[] = [];
  const track = (): void => {
    for (const m of cluster.members) if (m.pid > 0) pids.add(m.pid);
  };
  /** Clients are closed after each test, also when it fails. */
  const client = <T extends Etcd3>(c: T): T => {
    clients.push(c);
    return c;
  };
  const etcdFor = (endpoints: string[]): Etcd3 => client(createEtcd({ endpoints, timeoutMs: TIMEOUT_MS }));
  /** Revision of every running member, once they are all equal. */
  const converged = (timeoutMs = 5000): Promise<number> =>
    waitFor(
      'all members at the same revision',
      async () => {
        const revs = await Promise.all(cluster.members.map((_, i) => cluster.status(i).then((s) => s.revision)));
        return revs.every((r) => r === revs[0]) ? revs[0] : undefined;
      },
      timeoutMs,
    );

  beforeAll(async () => {
    cluster = await startEtcdCluster({ size: 3 });
    track();
    note('start3Ms', cluster.timings);
  });

  afterEach(async () => {
    ConnectionPool.deterministicOrder = false;
    for (const c of clients.splice(0)) c.close();
    if (!cluster) return;
    await cluster.recover(10_000);
    track();
  });

  afterAll(async () => {
    track();
    await cluster?.stop();
    await cluster?.stop(); // idempotent
    expect(pids.size).toBeGreaterThanOrEqual(3);
    for (const pid of pids) expect(procExists(pid), `etcd pid ${pid} still exists`).toBe(false);
    if (cluster) expect(fs.existsSync(cluster.dir)).toBe(false);
  });

  it('starts with one leader; member list advertises the proxies, and peer traffic flows through them', async () => {
    expect(cluster.members).toHaveLength(3);
    const leader = await cluster.leader();
    const sts = await Promise.all(cluster.members.map((_, i) => cluster.status(i)));
    expect(sts.filter((s) => s.isLeader)).toHaveLength(1);
    expect(new Set(sts.map((s) => s.leaderId))).toEqual(new Set([cluster.members[leader]!.id]));

    const out = execFileSync('etcdctl', ['--endpoints', cluster.directEndpoints[0]!, 'member', 'list', '-w', 'json'], { encoding: 'utf8' });
    const listed = (JSON.parse(out) as { members: { name: string; peerURLs: string[]; clientURLs: string[] }[] }).members;
    expect(listed).toHaveLength(3);
    for (const m of cluster.members) {
      const entry = listed.find((x) => x.name === m.name);
      expect(entry?.peerURLs).toEqual([m.peerUrl]);
      expect(entry?.clientURLs).toEqual([m.endpoint]);
      expect(m.peerUrl).toBe(`http://${m.peerProxy.url}`);
      expect(m.peerUrl).not.toBe(m.directPeerUrl);
    }
    // Each member is dialled through its peer proxy by both others (identified by process).
    for (const m of cluster.members) {
      const others = cluster.members.filter((o) => o !== m).map((o) => o.name);
      await waitFor(
        `${m.name}'s peer proxy carrying connections from ${others.join(', ')}`,
        async () => others.every((n) => m.peerProxy.connections().some((c) => c.source === n)),
        5000,
      );
    }
    const before = cluster.members.map((m) => m.peerProxy.stats().bytesUp + m.peerProxy.stats().bytesDown);
    const etcd = etcdFor(cluster.endpoints);
    for (let i = 0; i < 5; i++) await etcd.put('start/k').value('x'.repeat(10_000));
    const after = cluster.members.map((m) => m.peerProxy.stats().bytesUp + m.peerProxy.stats().bytesDown);
    // The leader replicated 5 × 10 kB to each follower, through the followers' peer proxies or
    // through connections they dialled to the leader's: at least 100 kB crossed the proxies.
    expect(after.reduce((a, b) => a + b, 0) - before.reduce((a, b) => a + b, 0)).toBeGreaterThan(100_000);
  });

  it('leader SIGKILL: a new leader within a bound, the client fails over, the member restarts with its data and catches up', async () => {
    const etcd = etcdFor(cluster.endpoints);
    const events: { s: number; e: number; ok: boolean; err?: string }[] = [];
    let running = true;
    let written = -1;
    const loop = (async () => {
      for (let i = 0; running; i++) {
        const s = now();
        try {
          await etcd.put('kill/loop').value(String(i));
          written = i;
          events.push({ s, e: now(), ok: true });
        } catch (err) {
          events.push({ s, e: now(), ok: false, err: (err as Error).message.slice(0, 80) });
          await sleep(5);
        }
      }
    })();
    try {
      await waitFor('the put loop running', async () => events.filter((e) => e.ok).length >= 20, 5000);
      const old = await cluster.leader();
      const killedPid = cluster.members[old]!.pid;
      const killAt = now();
      await cluster.members[old]!.kill();
      expect(procExists(killedPid)).toBe(false);
      const next = await cluster.waitForLeader(5000, { not: old });
      const electedMs = ms(killAt);
      expect(next).not.toBe(old);
      await waitFor('20 puts after the new leader', async () => events.filter((e) => e.ok && e.s > killAt + electedMs).length >= 20, 4 * TIMEOUT_MS + 2000);
      running = false;
      await loop;

      const ok = events.filter((e) => e.ok);
      const lastBefore = Math.max(...ok.filter((e) => e.e <= killAt).map((e) => e.e));
      const firstAfter = Math.min(...ok.filter((e) => e.e > killAt).map((e) => e.e));
      const failed = events.filter((e) => !e.ok && e.e > killAt);
      const slowest = Math.max(...events.filter((e) => e.e > killAt).map((e) => e.e - e.s));
      note('leaderKill', {
        electionMs: electedMs,
        clientGapMs: Math.round(firstAfter - lastBefore),
        firstPutAfterKillMs: Math.round(firstAfter - killAt),
        slowestPutMs: Math.round(slowest),
        failedPuts: failed.length,
        errors: [...new Set(failed.map((e) => e.err))],
      });
      expect(electedMs).toBeLessThan(5000);
      // The client worked through the two remaining endpoints within one RPC deadline or so.
      expect(firstAfter - lastBefore).toBeLessThan(3 * TIMEOUT_MS + 2000);

      // The killed member comes back with its data and catches up to the same revision.
      const restartAt = now();
      await cluster.members[old]!.start();
      track();
      expect(cluster.members[old]!.pid).not.toBe(killedPid);
      const rev = await converged();
      note('killedMemberCatchUpMs', ms(restartAt));
      const direct = client(plain([cluster.directEndpoints[old]!]));
      const local = await direct.get('kill/loop').serializable(true).string();
      expect(local).toBe(String(written));
      expect((await cluster.status(old)).revision).toBe(rev);
    } finally {
      running = false;
      await loop;
    }
  });

  it('isolate(follower): the majority keeps writing; a linearizable read at the isolated member fails, never stale; heal() brings it back', async () => {
    const leader = await cluster.leader();
    const f = (leader + 1) % 3;
    const majority = [0, 1, 2].filter((i) => i !== f);
    const etcd = etcdFor(majority.map((i) => cluster.endpoints[i]!));
    const termBefore = (await cluster.status(leader)).raftTerm;
    const put = await etcd.put('iso/k').value('before').exec();
    await waitFor('the follower applying "before"', async () => (await cluster.status(f)).revision >= Number(put.header.revision), 5000);

    cluster.isolate(f); // clients still reach it
    // Every peer connection was attributed to a member, so the rules cover all of f's traffic...
    for (const m of cluster.members) expect(m.peerProxy.connections().every((c) => c.source !== undefined)).toBe(true);
    // ...including the streams f dialled itself, which carry the leader's heartbeats to it: f
    // stops hearing from any leader (asked over its direct client port, which no rule touches).
    const isolatedAt = now();
    await waitFor('the isolated member to lose its leader', async () => (await cluster.status(f)).leaderId === '0', 5000);
    const lostLeaderMs = ms(isolatedAt);
    const writeMs: number[] = [];
    for (let i = 0; i < 5; i++) {
      const t = now();
      await etcd.put('iso/k').value(`after-${i}`);
      writeMs.push(ms(t));
    }
    const onlyF = client(plain([cluster.endpoints[f]!]));
    const t = now();
    const [lin, write] = await Promise.allSettled([
      onlyF.get('iso/k').options({ deadline: new Date(Date.now() + 1500) }).string(),
      onlyF.put('iso/other').value('x').options({ deadline: new Date(Date.now() + 1500) }).exec(),
    ]);
    const failMs = ms(t);
    // Linearizable: refused (no quorum behind it), never the stale "before".
    expect(lin.status).toBe('rejected');
    expect(write.status).toBe('rejected');
    // A serializable read is answered locally, from the past: why every read we rely on must be linearizable.
    const stale = await onlyF.get('iso/k').serializable(true).options({ deadline: new Date(Date.now() + 1500) }).string();
    expect(stale).toBe('before');
    expect([0, 1, 2].filter((i) => i !== f)).toContain(await cluster.leader());
    note('isolate', {
      majorityWriteMs: writeMs,
      isolatedLinearizableRead: lin.status === 'rejected' ? String((lin.reason as Error).message).slice(0, 90) : 'resolved',
      isolatedFailMs: failMs,
      isolatedMemberLostLeaderMs: lostLeaderMs,
      serializableReadAtIsolated: stale,
    });

    const healAt = now();
    cluster.heal();
    await converged();
    const healed = await onlyF.get('iso/k').options({ deadline: new Date(Date.now() + 3000) }).string();
    expect(healed).toBe('after-4');
    const after = await cluster.leader();
    note('isolateHeal', { catchUpMs: ms(healAt), leaderBefore: leader, leaderAfter: after, termBefore, termAfter: (await cluster.status(after)).raftTerm });
  });

  it('clients partitioned from the leader: requests through the other members succeed (forwarded over peer links)', async () => {
    const leader = await cluster.partitionClientsFromLeader();
    const others = [0, 1, 2].filter((i) => i !== leader);
    const viaOthers = etcdFor(others.map((i) => cluster.endpoints[i]!));
    const lat: number[] = [];
    for (let i = 0; i < 10; i++) {
      const t = now();
      await viaOthers.put('part/k').value(String(i));
      expect(await viaOthers.get('part/k').string()).toBe(String(i));
      lat.push(ms(t));
    }
    const txn = await viaOthers.kv.txn({ compare: [], success: [op.put('part/t', 'x')], failure: [] }, deadline(TIMEOUT_MS));
    expect(txn.succeeded).toBe(true);

    // With the leader's endpoint in the client's list and tried first (deterministic host order:
    // the last host first), one attempt is lost to the blackhole, and the retry succeeds on the
    // next member: each attempt has a deadline of its own (lib/etcd/client.ts), whether the caller
    // passed one (deadline(), as lib/etcd does) or not. Once failed, the member is skipped
    // (lib/etcd/failover.ts), so the second call does not meet the blackhole at all.
    ConnectionPool.deterministicOrder = true;
    const withLeader = etcdFor([...others.map((i) => cluster.endpoints[i]!), cluster.endpoints[leader]!]);
    let t = now();
    await withLeader.put('part/default-deadline').value('1');
    const defaultDeadlineMs = ms(t);
    t = now();
    const explicit = await withLeader.kv
      .txn({ compare: [], success: [op.put('part/explicit-deadline', '1')], failure: [] }, deadline(TIMEOUT_MS))
      .then(() => 'succeeded', (err: Error) => `${err.constructor.name}: ${err.message.slice(0, 60)}`);
    const explicitMs = ms(t);
    const fresh = etcdFor([...others.map((i) => cluster.endpoints[i]!), cluster.endpoints[leader]!]);
    t = now();
    const explicitFirst = await fresh.kv
      .txn({ compare: [], success: [op.put('part/explicit-deadline', '2')], failure: [] }, deadline(TIMEOUT_MS))
      .then(() => 'succeeded', (err: Error) => `${err.constructor.name}: ${err.message.slice(0, 60)}`);
    const explicitFirstMs = ms(t);
    note('clientsPartitionedFromLeader', { viaOthersMs: lat, defaultDeadlinePutMs: defaultDeadlineMs, explicitDeadlineTxn: explicit, explicitDeadlineMs: explicitMs, explicitDeadlineOnFreshClient: explicitFirst, explicitDeadlineOnFreshClientMs: explicitFirstMs });
    expect(defaultDeadlineMs).toBeGreaterThanOrEqual(TIMEOUT_MS * 0.9);
    expect(explicit).toBe('succeeded');
    expect(explicitMs).toBeLessThan(TIMEOUT_MS * 0.9);
    expect(explicitFirst).toBe('succeeded');
    expect(explicitFirstMs).toBeGreaterThanOrEqual(TIMEOUT_MS * 0.9);
  });

  it('leases across a leader change: kept-alive leases survive; every lease is extended to its full TTL', async () => {
    const leader = await cluster.leader();
    const others = [0, 1, 2].filter((i) => i !== leader);
    const etcd = etcdFor(cluster.endpoints);
    const session = await Session.open(etcd, 5);
    const kept = etcd.lease(5);
    const keptId = await kept.grant();
    const gaps: number[] = [];
    let lastKa = Date.now();
    kept.on('keepaliveSucceeded', () => {
      gaps.push(Date.now() - lastKa);
      lastKa = Date.now();
    });
    let keptLost = false;
    kept.on('lost', () => (keptLost = true));
    const idleGrantedAt = Date.now();
    const idle = etcd.lease(5, { autoKeepAlive: false });
    const idleId = await idle.grant();
    const reader = client(plain(others.map((i) => cluster.directEndpoints[i]!)));
    const ttl = async (id: string): Promise<number> => Number((await reader.leaseClient.leaseTimeToLive({ ID: id }, { deadline: new Date(Date.now() + TIMEOUT_MS) })).TTL);

    await sleep(2500);
    const before = { kept: await ttl(keptId), idle: await ttl(idleId), session: await ttl(session.leaseId) };
    const killAt = Date.now();
    await cluster.members[leader]!.kill();
    await cluster.waitForLeader(5000, { not: leader });
    const changedAt = Date.now();
    const rightAfter = { kept: await ttl(keptId), idle: await ttl(idleId), session: await ttl(session.leaseId), msAfterKill: changedAt - killAt };
    const idleExpiredAt = await waitFor('the idle lease to expire', async () => ((await ttl(idleId)) < 0 ? Date.now() : undefined), 12_000, 100);
    const end = { kept: await ttl(keptId), session: await ttl(session.leaseId), sessionLost: session.lost, keptLost };
    note('leaseAcrossLeaderChange', {
      ttlSeconds: 5,
      before,
      rightAfter,
      idleLeaseLifetimeMs: idleExpiredAt - idleGrantedAt,
      idleLeaseExpiredMsAfterChange: idleExpiredAt - changedAt,
      maxKeepaliveGapMs: Math.max(...gaps),
      end,
    });
    // Kept alive across the change (the session's own clock never saw a gap of a TTL).
    expect(end.sessionLost).toBe(false);
    expect(keptLost).toBe(false);
    expect(end.kept).toBeGreaterThan(0);
    expect(end.session).toBeGreaterThan(0);
    // The lease nobody renewed was extended by the leader change: it outlived its 5 s TTL.
    expect(rightAfter.idle).toBeGreaterThan(before.idle);
    expect(idleExpiredAt - idleGrantedAt).toBeGreaterThan(5500);
    kept.release();
    await session.close();
  });

  it('a transaction whose response is lost: the retry on another member cannot apply it twice when it compares a mod revision', async () => {
    const leader = await cluster.leader();
    const x = (leader + 1) % 3; // the member that receives the first attempt
    const rest = [0, 1, 2].filter((i) => i !== x);
    ConnectionPool.deterministicOrder = true; // the last host is tried first: member x
    // A fresh client per case: a client skips a member that failed it (lib/etcd/failover.ts).
    let etcd = etcdFor([...rest.map((i) => cluster.endpoints[i]!), cluster.endpoints[x]!]);
    const reader = client(plain([cluster.directEndpoints[leader]!]));
    const kv = async (key: string) => (await reader.kv.range({ key: enc(key) })).kvs[0];
    const lose = async (): Promise<void> => {
      etcd = etcdFor([...rest.map((i) => cluster.endpoints[i]!), cluster.endpoints[x]!]);
      await etcd.get('txn/warm').string(); // the connection to x is up, so the request is delivered
      cluster.members[x]!.clientProxy.blackhole({ direction: 'down' }); // ...and its response is not
    };
    const observed: Record<string, unknown> = {};
    try {
      // 1. Guarded by the key's mod revision (as every fenced write is).
      const base = await etcd.put('txn/guarded').value('v0').exec();
      await lose();
      let t = now();
      const guarded = await etcd.kv.txn({
        compare: [cmp.modRevision('txn/guarded', base.header.revision)],
        success: [op.put('txn/guarded', 'v1')],
        failure: [op.get('txn/guarded')],
      });
      observed.guarded = {
        ms: ms(t),
        succeededAsSeenByCaller: guarded.succeeded,
        failureBranchValue: guarded.responses[0]?.response_range.kvs[0]?.value.toString(),
      };
      const g = await kv('txn/guarded');
      expect(guarded.succeeded).toBe(false); // the retry's compare failed ...
      expect(g?.value.toString()).toBe('v1'); // ... because the first attempt had applied
      expect(g?.version).toBe('2'); // exactly once
      cluster.heal();

      // 2. Without a compare: the retry applies it a second time.
      await lose();
      t = now();
      const once = randomUUID();
      const blind = await etcd.kv.txn({ compare: [], success: [op.put('txn/blind', once)], failure: [] });
      const b = await kv('txn/blind');
      observed.unguarded = { ms: ms(t), succeededAsSeenByCaller: blind.succeeded, version: b?.version };
      expect(blind.succeeded).toBe(true);
      expect(b?.version).toBe('2'); // applied twice (same value: two revisions, two watch events)
      cluster.heal();

      // 3. As lib/etcd does it (deadline(): one per attempt, a total budget): the retry runs, its
      //    compare fails because the first attempt applied, exactly once; lib/etcd's transactions
      //    then recognise their own write (test/integration/etcd-client-cluster.test.ts).
      const base3 = await etcd.put('txn/lib').value('v0').exec();
      await lose();
      t = now();
      const lib = await etcd.kv
        .txn(
          { compare: [cmp.modRevision('txn/lib', base3.header.revision)], success: [op.put('txn/lib', 'v1')], failure: [] },
          deadline(TIMEOUT_MS),
        )
        .then((r) => (r.succeeded ? 'succeeded' : 'compare failed'), (err: Error) => err.constructor.name);
      const l = await kv('txn/lib');
      observed.libStyle = { ms: ms(t), callerSaw: lib, value: l?.value.toString(), version: l?.version };
      expect(lib).toBe('compare failed');
      expect(l?.value.toString()).toBe('v1');
      expect(l?.version).toBe('2');
    } finally {
      note('lostResponseTxn', observed);
    }
  });

  it('etcd3\'s own lease keepalive: its one stream pinned to a member the client cannot reach loses the lease although a majority is reachable', async () => {
    // Why lib/etcd/session.ts renews with a request of its own each time instead: a plain etcd3
    // lease keeps one keepalive stream, and a blackholed member never fails it in time.
    const x = (await cluster.leader() + 1) % 3;
    const rest = [0, 1, 2].filter((i) => i !== x);
    ConnectionPool.deterministicOrder = true; // grant and keepalive stream go to member x
    const etcd = client(plain([...rest.map((i) => cluster.endpoints[i]!), cluster.endpoints[x]!]));
    const lease = etcd.lease(2);
    let lostAt: number | null = null;
    lease.on('lost', () => (lostAt ??= Date.now()));
    const id = await lease.grant();
    await sleep(800); // a keepalive went through
    const cutAt = Date.now();
    cluster.partitionClientsFrom(x);
    const reader = client(plain(rest.map((i) => cluster.directEndpoints[i]!)));
    const serverExpiredAt = await waitFor(
      'the lease to expire on the server',
      async () => (Number((await reader.leaseClient.leaseTimeToLive({ ID: id })).TTL) < 0 ? Date.now() : undefined),
      6000,
      50,
    );
    note('keepaliveStreamPartitioned', {
      ttlSeconds: 2,
      serverExpiredMsAfterCut: serverExpiredAt - cutAt,
      leaseLostEventMsAfterCut: lostAt === null ? null : lostAt - cutAt,
      putThroughOthersWorks: await etcdFor(rest.map((i) => cluster.endpoints[i]!)).put('ka/k').value('1').then(() => true, () => false),
    });
    expect(serverExpiredAt - cutAt).toBeLessThan(4000);
    lease.release();
  });
});

describe('etcd: other cluster sizes and options', () => {
  it('5 members start with one leader; 1 member with periodic auto-compaction compacts old revisions', async () => {
    const five = await startEtcdCluster({ size: 5 });
    const one = await startEtcdCluster({ size: 1, autoCompaction: { mode: 'periodic', retention: '1s' } }).catch(async (err: unknown) => {
      await five.stop();
      throw err;
    });
    const pids = [...five.members, ...one.members].map((m) => m.pid);
    const e = plain(one.endpoints);
    try {
      note('start5Ms', five.timings);
      note('start1Ms', one.timings);
      const leader = await five.leader();
      const sts = await Promise.all(five.members.map((_, i) => five.status(i)));
      expect(sts.filter((s) => s.isLeader)).toHaveLength(1);
      expect(sts.every((s) => s.leaderId === five.members[leader]!.id)).toBe(true);
      const list = await plain([five.directEndpoints[0]!]).cluster.memberList({});
      expect(list.members.map((m) => m.peerURLs[0]).sort()).toEqual(five.members.map((m) => m.peerUrl).sort());

      const first = await e.put('c').value('0').exec();
      for (let i = 1; i < 10; i++) await e.put('c').value(String(i));
      const t = now();
      const compacted = await waitFor(
        'auto-compaction of the first revision',
        () => e.get('c').revision(first.header.revision).string().then(() => undefined, (err: Error) => err.message),
        8000,
        200,
      );
      note('autoCompaction', { afterMs: ms(t), error: compacted.slice(0, 80) });
      expect(compacted).toMatch(/compacted/);
      expect(await e.get('c').string()).toBe('9');
    } finally {
      e.close();
      await Promise.all([five.stop(), one.stop()]);
    }
    for (const pid of pids) expect(procExists(pid)).toBe(false);
  });
});

describe('PostgreSQL restart with a statement in flight (Neon driver over the WebSocket proxy)', () => {
  let services: Services<false, true>;
  let pool: Pool;
  const pgPids = new Set<number>();
  const dbErrors: string[] = [];

  beforeAll(async () => {
    services = await startServices({ etcd: false });
    pgPids.add(services.postgres.pid);
    pool = createPool({ databaseUrl: services.env.DATABASE_URL!, neonWsProxy: services.env.NEON_WS_PROXY, max: 3, onError: (err) => dbErrors.push(err.message) });
    await pool.query('CREATE TABLE kept (v int)');
    await pool.query('INSERT INTO kept VALUES (42)');
  });

  afterAll(async () => {
    await pool?.end().catch(() => {});
    if (services) pgPids.add(services.postgres.pid);
    await services?.stop();
    for (const pid of pgPids) expect(procExists(pid), `postgres pid ${pid} still exists`).toBe(false);
  });

  for (const mode of ['fast', 'immediate'] as const) {
    it(`${mode} restart: the in-flight statement fails promptly, the pool serves the next query`, async () => {
      const t0 = now();
      const sleeping = pool.query('SELECT pg_sleep(5)').then(
        () => ({ ok: true, at: now(), msg: '' }),
        (err: Error) => ({ ok: false, at: now(), msg: err.message }),
      );
      await waitFor(
        'pg_sleep running',
        async () => (await pool.query<{ n: string }>("SELECT count(*) AS n FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(5)' AND state = 'active'")).rows[0]?.n === '1',
        3000,
      );
      const oldPid = services.postgres.pid;
      const restartAt = now();
      const restarting = services.postgres.restart({ mode });
      const failed = await sleeping;
      await restarting;
      pgPids.add(services.postgres.pid);
      const restartMs = ms(restartAt);
      const nextAt = now();
      const next = await pool.query<{ v: number }>('SELECT v FROM kept');
      note(`postgres-${mode}-restart`, {
        statementFailedMsAfterRestart: Math.round(failed.at - restartAt),
        error: failed.msg.slice(0, 90),
        restartMs,
        nextQueryMs: ms(nextAt),
        totalMs: ms(t0),
      });
      expect(failed.ok).toBe(false);
      expect(failed.at - restartAt).toBeLessThan(2000); // not the 5 s of pg_sleep
      expect(services.postgres.pid).not.toBe(oldPid);
      expect(procExists(oldPid)).toBe(false);
      expect(next.rows).toEqual([{ v: 42 }]);
    });
  }
});

afterAll(() => {
  console.info(`etcd-cluster summary: ${JSON.stringify(report)}`);
});
