// The FIFO mutex with several OS processes on the real etcd and Postgres.
import { randomUUID } from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { setTimeout as sleep } from 'node:timers/promises';
import { closeRuntime, Invocation, type Runtime } from '../../lib/runtime.js';
import { acquire } from '../../lib/etcd/index.js';
import { enc } from '../../lib/etcd/keys.js';
import { db, keysUnder, killAll, startProc, testRuntime } from '../support/rt.js';

let rt: Runtime;
const env = (over: Record<string, string> = {}) => ({ META_PREFIX: rt.config.metaPrefix, TRAEFIK_ROOT: rt.config.traefikRoot, ...over });
const newPrefix = () => `${rt.config.metaPrefix}/locks/${randomUUID()}/`;

beforeAll(async () => {
  rt = testRuntime();
  await db(rt).query('CREATE TABLE IF NOT EXISTS test_counter (name text PRIMARY KEY, value int NOT NULL)');
  await db(rt).query('CREATE TABLE IF NOT EXISTS test_fifo_log (seq bigserial PRIMARY KEY, prefix text NOT NULL, name text NOT NULL)');
});
afterEach(() => killAll());
afterAll(async () => {
  killAll();
  await closeRuntime(rt);
});

async function runCounter(procs: number, rounds: number, extra: string[] = []): Promise<number> {
  const prefix = newPrefix();
  await db(rt).query('INSERT INTO test_counter (name, value) VALUES ($1, 0)', [prefix]);
  const ps = Array.from({ length: procs }, () => startProc('mutex-worker', ['counter', prefix, String(rounds), ...extra], env()));
  const codes = await Promise.all(ps.map((p) => p.exited));
  expect(codes).toEqual(ps.map(() => 0));
  const r = await db(rt).query<{ value: number }>('SELECT value FROM test_counter WHERE name = $1', [prefix]);
  return r.rows[0]!.value;
}

describe('mutex across OS processes', () => {
  it('4 processes x 25 read-modify-write rounds under the lock end at exactly 100', async () => {
    expect(await runCounter(4, 25)).toBe(100);
  });

  it('(control) the same workload without the lock loses updates, so the test above can fail', async () => {
    expect(await runCounter(4, 25, ['--no-lock'])).toBeLessThan(100);
  });

  it('serves waiters in arrival order', async () => {
    const prefix = newPrefix();
    const inv = new Invocation(rt);
    const holder = await acquire(await inv.session(), { prefix, epochKey: `${prefix}epoch`,  waitMs: 1000, rpcTimeoutMs: 3000 });
    const names = ['a', 'b', 'c', 'd', 'e'];
    const ps = [];
    for (const [i, name] of names.entries()) {
      ps.push(startProc('mutex-worker', ['fifo', prefix, name, '20'], env()));
      // Wait until this waiter's key is queued before starting the next: arrival order is known.
      for (let t = 0; (await keysUnder(rt.etcd, prefix)).size < i + 2; t++) {
        if (t > 600) throw new Error('waiter never queued');
        await sleep(20);
      }
    }
    await holder.lock.release(3000);
    await Promise.all(ps.map((p) => p.exited));
    const r = await db(rt).query<{ name: string }>('SELECT name FROM test_fifo_log WHERE prefix = $1 ORDER BY seq', [prefix]);
    expect(r.rows.map((x) => x.name)).toEqual(names);
    await inv.close();
  });

  it('gives up cleanly after the wait bound and withdraws its queue key', async () => {
    const prefix = newPrefix();
    const inv = new Invocation(rt);
    const holder = await acquire(await inv.session(), { prefix, epochKey: `${prefix}epoch`,  waitMs: 1000, rpcTimeoutMs: 3000 });
    const p = startProc('mutex-worker', ['try', prefix, '400'], env());
    const line = JSON.parse(await p.waitFor(/acquired/));
    expect(line).toMatchObject({ acquired: false, error: 'LockTimeoutError' });
    expect(line.elapsedMs).toBeGreaterThanOrEqual(400);
    expect(line.elapsedMs).toBeLessThan(5000);
    expect([...(await keysUnder(rt.etcd, prefix)).keys()]).toEqual([holder.lock.key]);
    await holder.lock.release(3000);
    await inv.close();
  });

  // A holder paused (SIGSTOP) past its lease TTL loses the lock; a new holder writes; when the
  // old one resumes, its write must be refused by the fence in etcd itself.
  async function pausedHolder(fence: boolean): Promise<{ value: string | undefined; result: string }> {
    const prefix = newPrefix();
    const dataKey = `${rt.config.metaPrefix}/data/${randomUUID()}`;
    const p = startProc('mutex-worker', ['pause', prefix, dataKey, ...(fence ? [] : ['--no-fence'])], env({ LOCK_TTL_SECONDS: '2' }));
    await p.waitFor(/"acquired"/);
    p.child.kill('SIGSTOP');
    const inv = new Invocation(rt);
    try {
      // Our acquire queues behind the paused holder and gets the lock once its lease expires.
      const mine = await acquire(await inv.session(), { prefix, epochKey: `${prefix}epoch`,  waitMs: 15_000, rpcTimeoutMs: 3000 });
      expect(mine.waitedMs).toBeGreaterThan(500);
      await rt.etcd.kv.put({ key: enc(dataKey), value: enc('fresh') });
      p.child.kill('SIGCONT');
      p.send('go');
      const result = JSON.parse(await p.waitFor(/"result"/)).result as string;
      await mine.lock.release(3000);
      return { value: (await keysUnder(rt.etcd, dataKey)).get(dataKey), result };
    } finally {
      p.child.kill('SIGCONT');
      await inv.close();
    }
  }

  it('a holder paused past its TTL is fenced off when it resumes', async () => {
    const r = await pausedHolder(true);
    expect(r.result).toBe('rejected');
    expect(r.value).toBe('fresh');
  }, 40_000);

  it('(test of the test) without the fence compare the paused holder writes stale data', async () => {
    const r = await pausedHolder(false);
    expect(r.result).toBe('applied');
    expect(r.value).toBe('stale');
  }, 40_000);
});
