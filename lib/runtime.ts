// The clients of one cold start (DESIGN §6: create once, reuse across invocations) and the
// per-invocation state: one etcd session, opened lazily by the first write that needs a lock.
import type { Etcd3 } from 'etcd3';
import { getConfig, type Config } from './config.js';
import { createEtcd, etcdFailure, Session } from './etcd/index.js';
import { createPool, databaseOf, type Database } from './db/index.js';

export interface Runtime {
  config: Config;
  etcd: Etcd3;
  db: Database;
}

export interface RuntimeOptions {
  onDatabaseError?: (err: Error) => void;
  /** Connections of the pool (default 10): one function invocation needs few; a process of many concurrent writers more. */
  poolMax?: number;
}

export function createRuntime(config: Config, opts: RuntimeOptions = {}): Runtime {
  const pool = createPool({
    databaseUrl: config.databaseUrl,
    neonWsProxy: config.neonWsProxy,
    connectionTimeoutMillis: config.databaseTimeoutMs,
    ...(opts.poolMax === undefined ? {} : { max: opts.poolMax }),
    ...(opts.onDatabaseError ? { onError: opts.onDatabaseError } : {}),
  });
  // connectionTimeoutMillis only bounds getting a connection. A server that stops answering on
  // an open connection (frozen, partitioned) would hang a query until the Lambda times out:
  // bound every query too (client side: the driver rejects it with "Query read timeout" and the
  // pool discards that connection). pg-pool hands `options` to every new client.
  (pool as unknown as { options: Record<string, unknown> }).options.query_timeout = config.databaseTimeoutMs;
  return { config, etcd: createEtcd(config.etcd), db: databaseOf(pool) };
}

let shared: Runtime | undefined;

/** The runtime of this cold start. */
export function getRuntime(): Runtime {
  shared ??= createRuntime(getConfig());
  return shared;
}

export async function closeRuntime(rt: Runtime): Promise<void> {
  rt.etcd.close();
  await rt.db.end().catch(() => {});
  if (shared === rt) shared = undefined;
}

/** Per-invocation context: the runtime plus this invocation's etcd session. */
export class Invocation {
  private session$: Promise<Session> | undefined;

  /** @param label who this invocation is, for operators (stored in its lock keys). */
  constructor(
    readonly rt: Runtime,
    readonly label = '',
  ) {}

  /**
   * This invocation's session, granted on first use. A session found lost (the process was
   * frozen past its TTL) is replaced instead of failing the invocation: its locks are gone
   * anyway, and fencing rejects anything its old lock keys would have allowed.
   */
  async session(): Promise<Session> {
    if (this.session$ !== undefined) {
      const s = await this.session$.catch(() => undefined);
      if (s !== undefined && !s.lost) return s;
      this.session$ = undefined;
    }
    this.session$ = Session.open(this.rt.etcd, this.rt.config.lockTtlSeconds, this.rt.config.etcd.timeoutMs).catch((err: unknown) => {
      throw etcdFailure(err);
    });
    return this.session$;
  }

  async close(): Promise<void> {
    const s = await this.session$?.catch(() => undefined);
    this.session$ = undefined;
    await s?.close();
  }

  /**
   * Ends the invocation as a handler does: the lease is revoked without waiting for the answer.
   * Nothing depends on it by then — every lock key was deleted by its release (a failed release
   * already revoked the lease) — and a revoke that never leaves a frozen process only lets the
   * empty lease live out its TTL.
   */
  finish(): void {
    const s$ = this.session$;
    this.session$ = undefined;
    void s$?.then((s) => s.close()).catch(() => {});
  }
}
