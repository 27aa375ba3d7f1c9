// The chaos harness's checkers on hand-made histories: each invariant is shown violated by a
// minimal history and satisfied by a correct one (if a checker cannot fail, a clean chaos run
// proves nothing).
import { describe, expect, it } from 'vitest';
import {
  checkAccepted,
  checkConvergence,
  checkFreshness,
  checkHistory,
  checkResponses,
  parseWriter,
  serverAddress,
  type GenerationRecord,
  type HistEvent,
} from '../../harness/chaos/check.js';
import { parseOptions, replayCommand, UsageError } from '../../harness/chaos/options.js';
import { opFor, planFaults } from '../../harness/chaos/workload.js';

const L = { traefikRoot: 'traefik', metaPrefix: 'circuitry' };
const C = '11111111-1111-4111-8111-111111111111';
const D = '22222222-2222-4222-8222-222222222222';
const ROOT = 'traefik/worker_w1';
const A = '10.0.0.1:8080';
const B = '10.0.0.2:8080';

/** The keys circuitry renders for a circuit with these route addresses (simplified, http). */
function render(c: string, addrs: string[]): Map<string, string> {
  const m = new Map<string, string>();
  if (addrs.length === 0) return m;
  m.set(`${ROOT}/http/routers/bai_router_${c}/rule`, 'Host(`w1.example.com`)');
  m.set(`${ROOT}/http/routers/bai_router_${c}/service`, `bai_service_${c}`);
  m.set(`${ROOT}/http/routers/bai_router_${c}/entryPoints/0`, 'portproxy_30000');
  addrs.forEach((a, i) => {
    m.set(`${ROOT}/http/services/bai_service_${c}/loadBalancer/servers/${i}/url`, `http://${a}/`);
    m.set(`${ROOT}/http/services/bai_service_${c}/loadBalancer/servers/${i}/weight`, '1');
  });
  return m;
}

const meta = (generation: number, deleted: boolean, writer: string) => JSON.stringify({ generation, deleted, worker: 'w1', writer, at: '' });
const metaKey = (c: string) => `circuitry/circuits/${c}`;
const lockKey = (c: string, lease: string) => `circuitry/locks/${c}/${lease}`;

/** Builds a history transaction by transaction, tracking what each circuit currently has. */
class History {
  rev = 1;
  readonly events: HistEvent[] = [];
  private readonly live = new Map<string, { value: string; create: number }>();

  txn(ops: Array<['put', string, string] | ['del', string]>): number {
    const r = ++this.rev;
    for (const o of ops) {
      if (o[0] === 'put') {
        const prev = this.live.get(o[1]);
        const create = prev ? prev.create : r;
        this.live.set(o[1], { value: o[2], create });
        this.events.push({ rev: r, type: 'put', key: o[1], value: o[2], create });
      } else if (this.live.delete(o[1])) {
        this.events.push({ rev: r, type: 'delete', key: o[1], value: '', create: 0 });
      }
    }
    return r;
  }

  keysOf(c: string): string[] {
    return [...this.live.keys()].filter((k) => k.startsWith(`${ROOT}/`) && k.includes(c));
  }

  /** circuitry's protocol: lock, then one txn with the diff + meta + release. Returns the write revision. */
  fenced(c: string, lease: string, generation: number, addrs: string[] | 'deleted'): number {
    const lockRev = this.txn([['put', lockKey(c, lease), '']]);
    return this.apply(c, lease, lockRev, generation, addrs);
  }

  apply(c: string, lease: string, lockRev: number, generation: number, addrs: string[] | 'deleted', release = true): number {
    const desired = addrs === 'deleted' ? new Map<string, string>() : render(c, addrs);
    const ops: Array<['put', string, string] | ['del', string]> = [];
    for (const k of this.keysOf(c)) if (!desired.has(k)) ops.push(['del', k]);
    for (const [k, v] of desired) if (this.live.get(k)?.value !== v) ops.push(['put', k, v]);
    ops.push(['put', metaKey(c), meta(generation, addrs === 'deleted', `${lease}@${lockRev}`)]);
    if (release) ops.push(['del', lockKey(c, lease)]);
    return this.txn(ops);
  }

  /** The reference system's write: unconditional puts, no meta, no lock. */
  naive(c: string, addrs: string[]): number {
    return this.txn([...render(c, addrs)].map(([k, v]) => ['put', k, v] as ['put', string, string]));
  }
}

function gen(c: string, generation: number, addrs: string[] | 'deleted'): GenerationRecord {
  return {
    circuitId: c,
    generation,
    deleted: addrs === 'deleted',
    addresses: addrs === 'deleted' ? [] : addrs,
    keys: addrs === 'deleted' ? new Map() : render(c, addrs),
  };
}

/** create (A, B) -> remove B -> unload, all through the fenced protocol. */
function cleanLifecycle(): { h: History; gens: GenerationRecord[] } {
  const h = new History();
  h.fenced(C, 'a1', 1, [A, B]);
  h.fenced(C, 'a2', 2, [A]);
  h.fenced(C, 'a3', 3, 'deleted');
  return { h, gens: [gen(C, 1, [A, B]), gen(C, 2, [A]), gen(C, 3, 'deleted')] };
}

const rules = (r: { byRule: Record<string, number> }) => Object.keys(r.byRule).sort();

describe('chaos checkers: helpers', () => {
  it('parses writers and server addresses', () => {
    expect(parseWriter('7a3f@123')).toEqual({ leaseHex: '7a3f', createRevision: 123 });
    expect(parseWriter('naive')).toBeNull();
    expect(serverAddress('x/servers/0/url', 'http://10.0.0.1:8080/')).toBe('10.0.0.1:8080');
    expect(serverAddress('x/servers/3/address', '10.0.0.1:9000')).toBe('10.0.0.1:9000');
    expect(serverAddress('x/servers/3/weight', '1')).toBeNull();
  });
});

describe('chaos checkers: I1, I3, I4 over a history', () => {
  it('a correct fenced history has no violation', () => {
    const { h, gens } = cleanLifecycle();
    const r = checkHistory(L, h.events, gens);
    expect(r.violations).toEqual([]);
    expect(r.stats.tombstones).toBe(1);
    expect(r.stats.lockAcquisitions).toBe(3);
  });

  it('a re-applied tombstone, an idempotent rewrite and contending lock keys are fine', () => {
    const h = new History();
    h.fenced(C, 'a1', 1, [A]);
    // a2 holds the lock; a3 queues behind it (higher create revision) and writes after a2 released.
    const r2 = h.txn([['put', lockKey(C, 'a2'), '']]);
    const r3 = h.txn([['put', lockKey(C, 'a3'), '']]);
    h.apply(C, 'a2', r2, 2, 'deleted');
    h.apply(C, 'a3', r3, 2, 'deleted'); // duplicate unload: same tombstone again
    h.fenced(D, 'a4', 1, [B]);
    const r = checkHistory(L, h.events, [gen(C, 1, [A]), gen(C, 2, 'deleted'), gen(D, 1, [B])]);
    expect(r.violations).toEqual([]);
  });

  it('I1: a put of the circuit after its unload committed (the reference bug)', () => {
    const { h, gens } = cleanLifecycle();
    const bad = h.naive(C, [A, B]); // a health checker writing its stale snapshot
    const r = checkHistory(L, h.events, gens);
    expect(rules(r)).toContain('I1/put-after-unload');
    const v = r.violations.find((x) => x.rule === 'put-after-unload')!;
    expect(v.circuitId).toBe(C);
    expect(v.revision).toBe(bad);
    expect(v.revisions[0]).toBeLessThan(bad);
    // The naive write is also unfenced.
    expect(r.counts.I3).toBeGreaterThan(0);
  });

  it('I1: a meta rewritten as live after the tombstone', () => {
    const { h, gens } = cleanLifecycle();
    h.txn([['put', metaKey(C), meta(3, false, 'zz@1')]]);
    expect(rules(checkHistory(L, h.events, gens))).toContain('I1/meta-revived');
  });

  it('I1: a write that takes etcd back to an older generation', () => {
    const h = new History();
    h.fenced(C, 'a1', 1, [A, B]);
    h.fenced(C, 'a2', 2, [A]);
    h.fenced(C, 'a3', 1, [A, B]); // fenced, but rendered from generation 1
    const r = checkHistory(L, h.events, [gen(C, 1, [A, B]), gen(C, 2, [A])]);
    expect(rules(r)).toEqual(['I1/generation-regressed']);
  });

  it('I1: a removed route re-appears under a generation that does not have it', () => {
    const h = new History();
    h.fenced(C, 'a1', 1, [A, B]);
    h.fenced(C, 'a2', 2, [A]);
    // generation 3 (health change) keeps only A, but the writer lists B again.
    const lockRev = h.txn([['put', lockKey(C, 'a3'), '']]);
    h.txn([
      ['put', `${ROOT}/http/services/bai_service_${C}/loadBalancer/servers/1/url`, `http://${B}/`],
      ['put', `${ROOT}/http/services/bai_service_${C}/loadBalancer/servers/1/weight`, '1'],
      ['put', metaKey(C), meta(3, false, `a3@${lockRev}`)],
      ['del', lockKey(C, 'a3')],
    ]);
    const r = checkHistory(L, h.events, [gen(C, 1, [A, B]), gen(C, 2, [A]), gen(C, 3, [A])]);
    expect(rules(r)).toContain('I1/route-not-in-database');
    expect(r.violations.find((v) => v.rule === 'route-not-in-database')!.message).toContain(B);
  });

  it('I1: a removed route re-added by a later committed update is fine', () => {
    const h = new History();
    h.fenced(C, 'a1', 1, [A, B]);
    h.fenced(C, 'a2', 2, [A]);
    h.fenced(C, 'a3', 3, [A, B]);
    expect(checkHistory(L, h.events, [gen(C, 1, [A, B]), gen(C, 2, [A]), gen(C, 3, [A, B])]).violations).toEqual([]);
  });

  it('I1: a generation the database never committed', () => {
    const h = new History();
    h.fenced(C, 'a1', 7, [A]);
    expect(rules(checkHistory(L, h.events, [gen(C, 1, [A])]))).toEqual(['I1/unknown-generation']);
  });

  it('I3: a write whose lock key had expired at that revision', () => {
    const h = new History();
    const lockRev = h.txn([['put', lockKey(C, 'a1'), '']]);
    h.txn([['del', lockKey(C, 'a1')]]); // lease expired (the writer was paused)
    h.apply(C, 'a1', lockRev, 1, [A], false);
    const r = checkHistory(L, h.events, [gen(C, 1, [A])]);
    expect(rules(r)).toEqual(['I3/lock-not-held']);
    expect(r.violations[0]!.leases).toEqual(['a1']);
    expect(r.violations[0]!.message).toContain('did not exist');
  });

  it('I3: a write whose lock key was re-created (another create revision)', () => {
    const h = new History();
    const old = h.txn([['put', lockKey(C, 'a1'), '']]);
    h.txn([['del', lockKey(C, 'a1')]]);
    h.txn([['put', lockKey(C, 'a1'), '']]);
    h.apply(C, 'a1', old, 1, [A]);
    expect(rules(checkHistory(L, h.events, [gen(C, 1, [A])]))).toEqual(['I3/lock-not-held']);
  });

  it('I3: a write by a lock key that is not the owner', () => {
    const h = new History();
    h.txn([['put', lockKey(C, 'a0'), '']]); // the owner
    const mine = h.txn([['put', lockKey(C, 'a1'), '']]); // a waiter
    h.apply(C, 'a1', mine, 1, [A]);
    const r = checkHistory(L, h.events, [gen(C, 1, [A])]);
    expect(rules(r)).toEqual(['I3/lock-not-held']);
    expect(r.violations[0]!.message).toContain('not the owner');
  });

  it('I3: a write with no fenced writer at all', () => {
    const h = new History();
    h.naive(C, [A]);
    expect(rules(checkHistory(L, h.events, [gen(C, 1, [A])]))).toContain('I3/unattributed');
  });

  it('I3: a lock-guarded delete that releases the lock in the same transaction is attributed to it', () => {
    const h = new History();
    h.fenced(C, 'a1', 1, [A]);
    const lockRev = h.txn([['put', lockKey(C, 'o1'), '']]);
    // orphan cleanup: delete the circuit's prefixes and release, no meta.
    h.txn([...h.keysOf(C).map((k) => ['del', k] as ['del', string]), ['del', lockKey(C, 'o1')]]);
    const r = checkHistory(L, h.events, [gen(C, 1, [A])]);
    expect(r.counts.I3).toBe(0);
    expect(lockRev).toBeGreaterThan(0);
  });

  it('I3: the intermediate steps of a staged apply are attributed to the lock key they advance', () => {
    const h = new History();
    const lockRev = h.txn([['put', lockKey(C, 'b1'), '']]);
    const keys = [...render(C, [A])];
    // Step 1 adds half the keys and rewrites its lock key (its version advances), the last step the rest + meta + release.
    h.txn([...keys.slice(0, 3).map(([k, v]) => ['put', k, v] as ['put', string, string]), ['put', lockKey(C, 'b1'), '']]);
    h.txn([...keys.slice(3).map(([k, v]) => ['put', k, v] as ['put', string, string]), ['put', metaKey(C), meta(1, false, `b1@${lockRev}`)], ['del', lockKey(C, 'b1')]]);
    expect(checkHistory(L, h.events, [gen(C, 1, [A])]).violations).toEqual([]);
    // The same step by a key that is not the owner is not fenced.
    const g = new History();
    g.txn([['put', lockKey(C, 'e1'), '']]);
    g.txn([['put', lockKey(C, 'b1'), '']]);
    g.txn([...keys.slice(0, 3).map(([k, v]) => ['put', k, v] as ['put', string, string]), ['put', lockKey(C, 'b1'), '']]);
    expect(rules(checkHistory(L, g.events, [gen(C, 1, [A])]))).toContain('I3/lock-not-held');
  });

  it('I4: a meta write whose keys are not that generation (half a change)', () => {
    const h = new History();
    h.fenced(C, 'a1', 1, [A, B]);
    const lockRev = h.txn([['put', lockKey(C, 'a2'), '']]);
    // generation 2 removes B, but only the meta is written.
    h.txn([
      ['put', metaKey(C), meta(2, false, `a2@${lockRev}`)],
      ['del', lockKey(C, 'a2')],
    ]);
    const r = checkHistory(L, h.events, [gen(C, 1, [A, B]), gen(C, 2, [A])]);
    expect(rules(r)).toEqual(['I4/state-differs-from-generation']);
  });

  it('keeps at most capPerRule violations but counts them all', () => {
    const { h, gens } = cleanLifecycle();
    for (let n = 0; n < 5; n++) h.naive(C, [A]);
    const r = checkHistory(L, h.events, gens, { capPerRule: 2 });
    expect(r.byRule['I1/put-after-unload']).toBe(5);
    expect(r.violations.filter((v) => v.rule === 'put-after-unload')).toHaveLength(2);
  });
});

describe('chaos checkers: I2 convergence', () => {
  const live = { id: C, generation: 2, deleted: false, expected: render(C, [A]) };
  const gone = { id: D, generation: 3, deleted: true, expected: new Map<string, string>() };
  const metas = new Map([
    [C, meta(2, false, 'a@1')],
    [D, meta(3, true, 'b@2')],
  ]);

  it('etcd equal to render(database) with agreeing metas is converged', () => {
    const r = checkConvergence(L, render(C, [A]), metas, [live, gone]);
    expect(r.violations).toEqual([]);
    expect(r.expectedKeys).toBe(render(C, [A]).size);
  });

  it('a deleted circuit never published needs no meta', () => {
    const r = checkConvergence(L, render(C, [A]), new Map([[C, meta(2, false, 'a@1')]]), [live, gone]);
    expect(r.violations).toEqual([]);
  });

  it('orphan keys of a deleted circuit', () => {
    const keys = new Map([...render(C, [A]), ...render(D, [B])]);
    const r = checkConvergence(L, keys, metas, [live, gone]);
    expect(rules(r)).toEqual(['I2/orphan-keys']);
    expect(r.violations[0]!.circuitId).toBe(D);
  });

  it('a key that names no circuit is an orphan too', () => {
    const keys = new Map([...render(C, [A]), [`${ROOT}/http/routers/stray/rule`, 'Host(`x`)']]);
    expect(rules(checkConvergence(L, keys, metas, [live, gone]))).toEqual(['I2/orphan-keys']);
  });

  it('a missing or stale key', () => {
    const keys = new Map(render(C, [A]));
    const some = [...keys.keys()].find((k) => k.endsWith('/url'))!;
    keys.delete(some);
    expect(rules(checkConvergence(L, keys, metas, [live, gone]))).toEqual(['I2/missing-keys']);
    keys.set(some, 'http://10.9.9.9:1/');
    expect(rules(checkConvergence(L, keys, metas, [live, gone]))).toEqual(['I2/value-differs']);
  });

  it('metas that disagree with the database', () => {
    const keys = render(C, [A]);
    expect(rules(checkConvergence(L, keys, new Map([[C, meta(1, false, 'a@1')], [D, meta(3, true, 'b@2')]]), [live, gone]))).toEqual(['I2/meta-differs']);
    expect(rules(checkConvergence(L, keys, new Map([[C, meta(2, false, 'a@1')], [D, meta(3, false, 'b@2')]]), [live, gone]))).toEqual(['I2/meta-differs']);
    expect(rules(checkConvergence(L, keys, new Map([[D, meta(3, true, 'b@2')]]), [live, gone]))).toEqual(['I2/meta-differs']);
    const unknown = '33333333-3333-4333-8333-333333333333';
    expect(rules(checkConvergence(L, keys, new Map([...metas, [unknown, meta(1, false, 'c@3')]]), [live, gone]))).toEqual(['I2/meta-unknown-circuit']);
  });
});

describe('chaos checkers: R honest responses', () => {
  const base = { worker: 0, i: 1, kind: 'update-routes', status: 'unavailable', http: 503 };
  it('a committed change answered "nothing was changed" is a violation', () => {
    const r = checkResponses([
      { ...base, detail: 'the circuit lock was lost before the change; nothing was changed', commits: [{ circuitId: C, generation: 4, what: 'routes' }] },
    ]);
    expect(rules(r)).toEqual(['R/committed-but-reported-unchanged']);
  });
  it('no commit, or an answer that says the outcome may be committed, is fine', () => {
    const r = checkResponses([
      { ...base, detail: 'the circuit lock was lost before the change; nothing was changed', commits: [] },
      { ...base, detail: 'the database is unavailable; nothing was changed, unless the connection broke during the commit: read it', commits: [{ circuitId: C, generation: 4, what: 'routes' }] },
      { ...base, status: 'ok', http: 200, commits: [{ circuitId: C, generation: 4, what: 'routes' }] },
    ]);
    expect(r.violations).toEqual([]);
  });
});

describe('chaos harness: options and seeded plans', () => {
  it('defaults meet the issue targets for 10 000 operations', () => {
    const o = parseOptions(['--seed', 's1']);
    expect(o.ops).toBe(10_000);
    expect(o.procs).toBe(4);
    expect(o.counts.pause).toBeGreaterThanOrEqual(100);
    expect(o.counts.kill).toBeGreaterThanOrEqual(50);
    expect(o.counts['etcd-restart']).toBeGreaterThanOrEqual(3);
    expect(o.counts['drop-unload']).toBeGreaterThanOrEqual(20);
    expect(o.counts['pg-restart']).toBeGreaterThanOrEqual(1);
    expect(o.counts['leader-kill'] + o.counts.partition).toBe(0); // one etcd: no cluster faults
    expect(replayCommand(o)).toBe('npm run chaos -- --ops 10000 --procs 4 --seed s1 --faults pause,kill,etcd-restart,db-drop,drop-unload,pg-restart --strategy circuitry');
    const c = parseOptions(['--seed', 's1', '--etcd-members', '3']);
    expect(c.etcdMembers).toBe(3);
    expect(c.faults).toEqual(['pause', 'kill', 'etcd-restart', 'db-drop', 'drop-unload', 'leader-kill', 'partition', 'pg-restart']);
    expect(c.counts['leader-kill']).toBeGreaterThanOrEqual(3);
    expect(c.counts.partition).toBeGreaterThanOrEqual(5);
    expect(replayCommand(c)).toContain('--etcd-members 3');
  });

  it('rejects bad options with a message that names the option', () => {
    const bad: Array<[string[], RegExp]> = [
      [['--ops', 'ten'], /--ops must be a whole number/],
      [['--ops', '2', '--procs', '4'], /--ops \(2\) must be at least --procs/],
      [['--faults', 'pause,flood'], /unknown fault "flood"/],
      [['--strategy', 'yolo'], /--strategy must be one of circuitry, naive, unfenced-reads/],
      [['--faults', 'pause', '--kills', '3'], /--kills 3 given but "kill" is not in --faults/],
      [['--frobnicate'], /Unknown option/],
      [['--seed', 'a b'], /--seed/],
      [['--faults', 'pause,leader-kill'], /--faults: "leader-kill" needs --etcd-members 3 or more \(got 1\)/],
      [['--faults', 'partition', '--etcd-members', '1'], /"partition" needs --etcd-members 3/],
      [['--leader-kills', '2'], /--leader-kills needs --etcd-members 3 or more/],
      [['--partitions', '1', '--etcd-members', '1'], /--partitions needs --etcd-members 3/],
      [['--etcd-members', '2'], /--etcd-members must be 1 or an odd number/],
      [['--etcd-members', '9'], /--etcd-members must be between 1 and 7/],
      [['--faults', 'pause', '--pg-restarts', '2'], /--pg-restarts 2 given but "pg-restart" is not in --faults/],
    ];
    for (const [argv, msg] of bad) expect(() => parseOptions(argv), argv.join(' ')).toThrow(msg);
    expect(() => parseOptions(['--ops', '-1'])).toThrow(UsageError);
  });

  it('operations and faults are a pure function of the seed', () => {
    const shape = { seed: 'x', slots: 6, backends: 6 };
    expect(opFor(shape, 2, 17)).toEqual(opFor(shape, 2, 17));
    expect(opFor(shape, 2, 17)).not.toEqual(opFor({ ...shape, seed: 'y' }, 2, 17));
    const counts = { pause: 10, kill: 5, 'etcd-restart': 2, 'db-drop': 3, 'drop-unload': 4, 'leader-kill': 0, partition: 0, 'pg-restart': 0 };
    const plan = planFaults('x', 1000, counts, 4, 2000);
    expect(plan).toEqual(planFaults('x', 1000, counts, 4, 2000));
    expect(plan).toHaveLength(24);
    // The cluster kinds come on top without changing the plan of the others (earlier seeds replay).
    const cluster = planFaults('x', 1000, { ...counts, 'leader-kill': 3, partition: 6, 'pg-restart': 2 }, 4, 2000);
    expect(cluster.filter((f) => !['leader-kill', 'partition', 'pg-restart'].includes(f.kind)).map(({ n: _n, ...f }) => f)).toEqual(plan.map(({ n: _n, ...f }) => f));
    expect(cluster.filter((f) => f.kind === 'partition').every((f) => f.variant !== undefined && f.durationMs >= 1000 && f.durationMs <= 4000)).toBe(true);
    expect(cluster.filter((f) => f.kind === 'leader-kill').every((f) => f.durationMs >= 300 && f.durationMs <= 3000)).toBe(true);
    // Faults come until the last 20 operations of a long run (a short one keeps its last 5% free).
    const long = planFaults('x', 10_000, parseOptions(['--etcd-members', '3', '--seed', 'x']).counts, 4, 2000);
    expect(Math.max(...long.map((f) => f.atOps))).toBeGreaterThanOrEqual(9_890);
    expect(Math.max(...long.map((f) => f.atOps))).toBeLessThanOrEqual(9_980);
    expect(Math.max(...plan.map((f) => f.atOps))).toBeLessThanOrEqual(950);
    expect(plan.filter((f) => f.kind === 'pause').every((f) => f.durationMs > 2000)).toBe(true);
    expect(plan.every((f, i) => i === 0 || plan[i - 1]!.atOps <= f.atOps)).toBe(true);
  });
});

describe('I5 only fresh data is written', () => {
  const writeAt = (h: History, gen: number, deleted = false) => h.txn([['put', metaKey(C), meta(gen, deleted, 'a@2')]]);

  it('flags a write that renders a generation older than one committed before it was sent', () => {
    const h = new History();
    const r = writeAt(h, 1);
    const commits = [{ circuitId: C, generation: 2, recordedMs: 1000, fenceEpoch: 1, fenceRevision: 7 }];
    const bad = checkFreshness(L, h.events, commits, [], new Map([[r, 1500]]));
    expect(bad.byRule['I5/stale-render']).toBe(1);
    expect(bad.judged).toBe(1);
    // The same write sent before the commit is fine; a write the logs cannot date is counted, not judged.
    expect(checkFreshness(L, h.events, commits, [], new Map([[r, 900]])).counts.I5).toBe(0);
    const undated = checkFreshness(L, h.events, commits, [], new Map());
    expect(undated.counts.I5).toBe(0);
    expect(undated.unjudged).toBe(1);
  });

  it('flags a commit made under a fence older than one a newer holder already used', () => {
    const stale = [{ circuitId: C, generation: 3, recordedMs: 2000, fenceEpoch: 1, fenceRevision: 10 }];
    const reader = { circuitId: C, epoch: 1, revision: 12, doneMs: 1500 };
    expect(checkFreshness(L, [], stale, [reader], new Map()).byRule['I5/commit-under-superseded-lock']).toBe(1);
    // The newer holder read after the commit, an older holder, another circuit, a creation: fine.
    expect(checkFreshness(L, [], stale, [{ ...reader, doneMs: 2500 }], new Map()).counts.I5).toBe(0);
    expect(checkFreshness(L, [], stale, [{ ...reader, revision: 9 }], new Map()).counts.I5).toBe(0);
    expect(checkFreshness(L, [], stale, [{ ...reader, circuitId: D }], new Map()).counts.I5).toBe(0);
    expect(checkFreshness(L, [], [{ ...stale[0]!, fenceEpoch: 0, fenceRevision: 0 }], [reader], new Map()).counts.I5).toBe(0);
    // A newer epoch wins whatever its revision.
    expect(checkFreshness(L, [], stale, [{ ...reader, epoch: 2, revision: 3 }], new Map()).counts.I5).toBe(1);
  });
});

describe('I6 nothing accepted is lost', () => {
  const final = (opts: { deleted: boolean; generation: number; keys?: Map<string, string>; meta?: string }) => ({
    keys: opts.keys ?? new Map<string, string>(),
    metas: new Map(opts.meta === undefined ? [] : [[C, opts.meta]]),
    circuits: [{ id: C, generation: opts.generation, deleted: opts.deleted, expected: new Map<string, string>() }],
  });

  it('an accepted DELETE must end deleted with its keys gone', () => {
    const del = [{ worker: 0, i: 1, kind: 'delete' as const, circuitId: C }];
    expect(checkAccepted(L, del, final({ deleted: false, generation: 2, meta: meta(2, false, 'a@1') })).byRule['I6/accepted-delete-not-done']).toBe(1);
    expect(checkAccepted(L, del, final({ deleted: true, generation: 3, keys: render(C, [A]) })).byRule['I6/accepted-delete-keys-left']).toBe(1);
    expect(checkAccepted(L, del, final({ deleted: true, generation: 3, meta: meta(3, true, 'a@1') })).counts.I6).toBe(0);
  });

  it('an accepted write must be in etcd at its generation or later, unless the circuit was deleted since', () => {
    const w = [{ worker: 0, i: 1, kind: 'write' as const, circuitId: C, generation: 4 }];
    expect(checkAccepted(L, w, final({ deleted: false, generation: 4, meta: meta(3, false, 'a@1') })).byRule['I6/accepted-write-not-applied']).toBe(1);
    expect(checkAccepted(L, w, final({ deleted: false, generation: 4 })).counts.I6).toBe(1);
    expect(checkAccepted(L, w, final({ deleted: false, generation: 5, meta: meta(5, false, 'a@1') })).counts.I6).toBe(0);
    expect(checkAccepted(L, w, final({ deleted: true, generation: 6 })).counts.I6).toBe(0);
  });
});
