// One OS process contending for a circuitry mutex, driven by test/integration/mutex.test.ts.
//   counter <prefix> <rounds> [--no-lock]   read-modify-write a Postgres counter under the lock
//   fifo <prefix> <name> <holdMs>           acquire, log arrival order in Postgres, hold, release
//   try <prefix> <waitMs>                   try to acquire; report the outcome and elapsed time
//   pause <prefix> <key> [--no-fence]       acquire, announce, wait for "go" on stdin, then write
//                                           <key> through the fence (or without it)
import { setTimeout as sleep } from 'node:timers/promises';
import { parseConfig } from '../../../lib/config.js';
import { closeRuntime, createRuntime, Invocation } from '../../../lib/runtime.js';
import { acquire, applyFenced, Session, withLock } from '../../../lib/etcd/index.js';
import { enc } from '../../../lib/etcd/keys.js';
import { waitForGo } from './wait-for-go.js';

const [mode, prefix, ...args] = process.argv.slice(2);
const rt = createRuntime(parseConfig(process.env));
const inv = new Invocation(rt);
const db = rt.db;
const opts = { prefix: prefix ?? '', epochKey: `${prefix ?? ''}epoch`, waitMs: rt.config.lockWaitMs, rpcTimeoutMs: rt.config.etcd.timeoutMs };
const out = (o: unknown) => process.stdout.write(JSON.stringify(o) + '\n');

async function main(): Promise<void> {
  if (prefix === undefined) throw new Error('usage: mutex-worker <mode> <prefix> ...');
  const session = await inv.session();
  switch (mode) {
    case 'counter': {
      const rounds = Number(args[0]);
      const noLock = args.includes('--no-lock');
      const name = prefix;
      const step = async () => {
        const r = await db.query<{ value: number }>('SELECT value FROM test_counter WHERE name = $1', [name]);
        await sleep(Math.random() * 3);
        await db.query('UPDATE test_counter SET value = $2 WHERE name = $1', [name, r.rows[0]!.value + 1]);
      };
      for (let i = 0; i < rounds; i++) {
        if (noLock) await step();
        else await withLock(session, { ...opts, waitMs: 60_000 }, step);
      }
      out({ done: rounds });
      break;
    }
    case 'fifo': {
      const [name, holdMs] = args;
      out({ queued: name });
      await withLock(session, { ...opts, waitMs: 60_000 }, async () => {
        await db.query('INSERT INTO test_fifo_log (prefix, name) VALUES ($1, $2)', [prefix, name]);
        await sleep(Number(holdMs));
      });
      out({ released: name });
      break;
    }
    case 'try': {
      const started = Date.now();
      try {
        const a = await acquire(session, { ...opts, waitMs: Number(args[0]) });
        await a.lock.release(opts.rpcTimeoutMs);
        out({ acquired: true, elapsedMs: Date.now() - started });
      } catch (err) {
        out({ acquired: false, error: (err as Error).name, elapsedMs: Date.now() - started });
      }
      break;
    }
    case 'pause': {
      const [key, flag] = args;
      const a = await acquire(session, opts);
      out({ acquired: a.lock.createRevision, key: a.lock.key });
      await waitForGo();
      if (flag === '--no-fence') {
        await rt.etcd.kv.put({ key: enc(key!), value: enc('stale') });
        out({ result: 'applied' });
      } else {
        // Bypass the local liveness check on purpose: this proves etcd's fence alone refuses
        // the write of a holder that lost its lock while paused.
        Session.trustLocalClock = false;
        try {
          await applyFenced({
            lock: a.lock,
            metaKey: `${key}.meta`,
            seen: { modRevision: '0', value: null },
            steps: [{ puts: [[key!, 'stale']], deletes: [], deletePrefixes: [] }],
            meta: { generation: 1, deleted: false, worker: null },
            rpcTimeoutMs: opts.rpcTimeoutMs,
          });
          out({ result: 'applied' });
        } catch (err) {
          out({ result: 'rejected', error: (err as Error).name, reason: (err as { fence?: string }).fence });
        }
      }
      break;
    }
    default:
      throw new Error(`unknown mode ${mode}`);
  }
}

main()
  .catch((err) => {
    process.stderr.write(`${(err as Error).stack}\n`);
    process.exitCode = 1;
  })
  .finally(async () => {
    await inv.close().catch(() => {});
    await closeRuntime(rt);
  });
