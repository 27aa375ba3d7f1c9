// Vitest globalSetup of the `integration` project: starts one real etcd + PostgreSQL (+ the
// loopback WebSocket proxy) for the whole run, applies the migrations when lib/db/migrate.ts
// exists, and exports the connection settings plus a default test configuration.
//
// Test files run in worker processes (pool 'forks'); they are forked after this setup, so the
// variables set on process.env here are inherited. The same values are also provided to the
// tests as `inject('services')` for pools that do not inherit the environment.
//
// Chaos tests that need to drop the shared proxy's connections can POST to
// `http://${NEON_WS_PROXY host:port}/_admin/drop-all`; tests that stop/start etcd or Postgres
// should start their own instance with startServices() instead of disturbing the shared one.
import fs from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { TestProject } from 'vitest/node';
import { startServices } from '../../harness/devstack/services.js';

export interface ProvidedServices {
  ETCD_ENDPOINTS: string;
  DATABASE_URL: string;
  NEON_WS_PROXY: string;
  /** Everything set on process.env by the setup (the above plus the test configuration). */
  env: Record<string, string>;
  etcdPid: number;
  postgresPid: number;
}

declare module 'vitest' {
  export interface ProvidedContext {
    services: ProvidedServices;
  }
}

/** Test configuration shared by the integration tests (see lib/config.ts). */
export const TEST_CONFIG: Readonly<Record<string, string>> = {
  API_TOKENS: 'test-token-0123456789abcdef',
  LOCK_TTL_SECONDS: '2',
  LOCK_WAIT_MS: '3000',
  ALLOWED_BACKEND_CIDRS: '127.0.0.0/8',
  EVENT_BUS_NAME: 'test-bus',
  EVENT_SOURCE: 'circuitry.test',
};

type Migrate = (databaseUrl: string, neonWsProxy?: string, log?: (line: string) => void) => Promise<unknown>;

/** lib/db/migrate.ts when it exists (imported dynamically so this file works without it). */
async function loadMigrate(): Promise<Migrate | undefined> {
  const file = fileURLToPath(new URL('../../lib/db/migrate.ts', import.meta.url));
  if (!fs.existsSync(file)) return undefined;
  const specifier: string = pathToFileURL(file).href;
  const mod = (await import(specifier)) as { migrate?: unknown };
  return typeof mod.migrate === 'function' ? (mod.migrate as Migrate) : undefined;
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const verbose = process.env.CIRCUITRY_SERVICES_LOG === '1';
  const log = (line: string): void => {
    if (verbose) process.stderr.write(`${line}\n`);
  };
  // Auto-compaction as in production (README: etcd maintenance); tests that read old revisions read recent ones.
  const services = await startServices({ log, etcdAutoCompaction: { mode: 'revision', retention: '10000' } });
  try {
    const migrate = await loadMigrate();
    if (migrate) await migrate(services.env.DATABASE_URL!, services.env.NEON_WS_PROXY, log);

    const env: Record<string, string> = { ...services.env, ...TEST_CONFIG };
    Object.assign(process.env, env);
    project.provide('services', {
      ETCD_ENDPOINTS: services.env.ETCD_ENDPOINTS!,
      DATABASE_URL: services.env.DATABASE_URL!,
      NEON_WS_PROXY: services.env.NEON_WS_PROXY!,
      env,
      etcdPid: services.etcd.pid,
      postgresPid: services.postgres.pid,
    });
    log(`services: etcd ${services.timings.etcdMs} ms, postgres ${services.timings.postgresMs} ms, dir ${services.dir}`);
  } catch (err) {
    await services.stop();
    throw err;
  }

  return async () => {
    await services.stop();
  };
}
