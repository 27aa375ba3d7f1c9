// Applies migrations/*.sql with umzug, through the same Neon driver the functions use. Each
// migration runs in its own transaction together with its bookkeeping row, and a session-level
// advisory lock serialises concurrent runs (several test processes, a deploy racing a local run).
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import type { UmzugStorage } from 'umzug';
import type { PoolClient } from '@neondatabase/serverless';
import { createPool } from './neon.js';

// umzug (and what it brings) is loaded by migrate() itself: this module is exported with the rest
// of the store, and a static import would put it into every function's bundle.
const migrationsDir = (): string => fileURLToPath(new URL('../../migrations/', import.meta.url));
const ADVISORY_LOCK_ID = 0x63697263; // "circ"

type Log = (line: string) => void;

function storage(client: PoolClient): UmzugStorage<PoolClient> {
  return {
    async executed() {
      await client.query(
        'CREATE TABLE IF NOT EXISTS circuitry_migrations (name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())',
      );
      const r = await client.query<{ name: string }>('SELECT name FROM circuitry_migrations ORDER BY name');
      return r.rows.map((row) => row.name);
    },
    // Logged inside the migration's own transaction (see up() below), so nothing to do here.
    async logMigration() {},
    async unlogMigration({ name }) {
      await client.query('DELETE FROM circuitry_migrations WHERE name = $1', [name]);
    },
  };
}

/** Applies pending migrations; returns the names applied (empty when already up to date). */
export async function migrate(databaseUrl: string, neonWsProxy?: string, log: Log = () => {}): Promise<string[]> {
  const { Umzug } = await import('umzug');
  const pool = createPool({ databaseUrl, neonWsProxy, max: 1 });
  const client = await pool.connect();
  try {
    await client.query('SELECT pg_advisory_lock($1)', [ADVISORY_LOCK_ID]);
    const umzug = new Umzug<PoolClient>({
      migrations: {
        glob: ['*.sql', { cwd: migrationsDir() }],
        resolve: ({ name, path }) => ({
          name,
          up: async () => {
            const sql = await readFile(path!, 'utf8');
            await client.query('BEGIN');
            try {
              await client.query(sql);
              await client.query('INSERT INTO circuitry_migrations (name) VALUES ($1)', [name]);
              await client.query('COMMIT');
            } catch (err) {
              await client.query('ROLLBACK');
              throw new Error(`migration ${name} failed: ${(err as Error).message}`, { cause: err });
            }
          },
        }),
      },
      context: client,
      storage: storage(client),
      logger: undefined,
    });
    const pending = await umzug.pending();
    for (const m of pending) log(`applying ${m.name}`);
    const applied = await umzug.up();
    return applied.map((m) => m.name);
  } finally {
    await client.query('SELECT pg_advisory_unlock($1)', [ADVISORY_LOCK_ID]).catch(() => {});
    client.release();
    await pool.end();
  }
}
