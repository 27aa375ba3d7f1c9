// The store's handle on the database: one query method (each call one round trip over the Neon
// WebSocket) and transactions on a dedicated connection. Driver failures are translated into the
// taxonomy here (lib/errors.ts); SQL errors with their own meaning (a unique violation) reach the
// statement that can name them.
import type { Pool } from '@neondatabase/serverless';
import { CircuitryError, DependencyError, MisconfiguredError } from '../errors.js';

export interface Queryable {
  query<R = Record<string, unknown>>(text: string, params?: unknown[]): Promise<{ rows: R[]; rowCount: number | null }>;
}

export interface Database extends Queryable {
  /** Runs fn inside BEGIN … COMMIT on one connection (ROLLBACK when it throws). */
  transaction<T>(fn: (q: Queryable) => Promise<T>): Promise<T>;
  end(): Promise<void>;
}

// SQLSTATE classes that mean "the database could not be reached or is going away".
const transientSqlState = /^(08|53|57P0[1-3])/;
const transportFailure =
  /connect|connection|terminated|timeout|timed out|ECONN|EPIPE|ENOTFOUND|EAI_AGAIN|EHOSTUNREACH|ENETUNREACH|socket|websocket|closed|not queryable|ErrorEvent/i;

/** A driver error as the taxonomy sees it: an outage, a refused login, or itself (a real SQL error, a bug). */
export function databaseFailure(err: unknown): Error {
  if (err instanceof CircuitryError) return err;
  const e = err instanceof Error ? err : new Error(String(err));
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code)) {
    // SQLSTATE class 28: invalid authorization (wrong DATABASE_URL user or password).
    if (code.startsWith('28')) return new MisconfiguredError('the service is misconfigured: the database refused its credentials', { cause: err });
    return transientSqlState.test(code) ? new DependencyError('database', e.message, { cause: err }) : e;
  }
  // Without a SQLSTATE: transport failures (the driver, the WebSocket, the socket) are an outage;
  // anything else (a TypeError in our own code, say) is a bug and must not be disguised as a 503
  // that clients retry forever.
  if (!(err instanceof Error) || transportFailure.test(`${e.name} ${e.message} ${String(code ?? '')}`)) {
    return new DependencyError('database', e.message || 'connection failed', { cause: err });
  }
  return e;
}

async function translated<T>(p: Promise<T>): Promise<T> {
  try {
    return await p;
  } catch (err) {
    throw databaseFailure(err);
  }
}

export function databaseOf(pool: Pool): Database {
  return {
    query: <R,>(text: string, params?: unknown[]) =>
      translated(pool.query(text, params) as unknown as Promise<{ rows: R[]; rowCount: number | null }>),
    async transaction<T>(fn: (q: Queryable) => Promise<T>): Promise<T> {
      const client = await translated(pool.connect());
      const q: Queryable = {
        query: <R,>(text: string, params?: unknown[]) =>
          translated(client.query(text, params) as unknown as Promise<{ rows: R[]; rowCount: number | null }>),
      };
      let broken = false;
      try {
        await q.query('BEGIN');
        const out = await fn(q);
        await q.query('COMMIT');
        return out;
      } catch (err) {
        await q.query('ROLLBACK').catch(() => (broken = true));
        throw err;
      } finally {
        client.release(broken);
      }
    },
    end: () => pool.end(),
  };
}

/** Reachability of the database for GET /v2/health: one `SELECT 1`. */
export async function pingDatabase(q: Queryable): Promise<{ ok: boolean; latencyMs: number }> {
  const t0 = performance.now();
  try {
    await q.query('SELECT 1');
    return { ok: true, latencyMs: Math.round((performance.now() - t0) * 10) / 10 };
  } catch {
    return { ok: false, latencyMs: Math.round((performance.now() - t0) * 10) / 10 };
  }
}
