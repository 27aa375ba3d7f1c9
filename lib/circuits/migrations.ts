// The database schema, brought up to date (npm run migrate, the local stack, the tests).
import { migrate } from '../db/index.js';

export function applyMigrations(databaseUrl: string, neonWsProxy?: string, log: (line: string) => void = () => {}): Promise<string[]> {
  return migrate(databaseUrl, neonWsProxy, log);
}
