// npm run migrate: applies migrations/*.sql to DATABASE_URL through the Neon driver (the same
// path the functions use). NEON_WS_PROXY is honoured for local WebSocket proxies. With Neon, give
// it the direct (unpooled) connection string: migrations hold an advisory lock for their session.
import { applyMigrations } from '../lib/circuits/migrations.js';

if (process.argv.includes('--help') || process.argv.includes('-h')) {
  process.stdout.write(`usage: npm run migrate
  applies the pending migrations (migrations/*.sql) to DATABASE_URL, each in its own transaction,
  serialised by an advisory lock; prints each migration applied. Environment: DATABASE_URL
  (required), NEON_WS_PROXY (local stack only).\n`);
  process.exit(0);
}
const url = process.env.DATABASE_URL;
if (url === undefined || url === '') {
  process.stderr.write('migrate: DATABASE_URL is not set (e.g. postgres://user:pass@host:5432/circuitry)\n');
  process.exit(2);
}
try {
  const applied = await applyMigrations(url, process.env.NEON_WS_PROXY || undefined, (line) => process.stdout.write(`migrate: ${line}\n`));
  process.stdout.write(applied.length === 0 ? 'migrate: database is up to date\n' : `migrate: applied ${applied.length} migration(s)\n`);
} catch (err) {
  process.stderr.write(`migrate: failed: ${(err as Error).message}\n`);
  process.exit(1);
}
