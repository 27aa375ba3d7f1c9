// Proves the local service stack: real etcd and PostgreSQL, reached exactly as in Lambda (Postgres
// through the Neon driver over a WebSocket, here via the loopback proxy).
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { Etcd3 } from 'etcd3';
import WebSocket from 'ws';
import { neonConfig, type Pool } from '@neondatabase/serverless';
import { startServices, type Services } from '../../harness/devstack/services.js';
import { startWsProxy, isLoopbackHost, parseAddress } from '../../harness/devstack/wsproxy.js';
import { createPool } from '../../lib/db/neon.js';

const isAlive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

/** Opens a raw WebSocket to the proxy and resolves with its close code and reason. */
function closeCodeFor(proxyUrl: string, address: string): Promise<{ code: number; reason: string; opened: boolean }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://${proxyUrl}?address=${encodeURIComponent(address)}`);
    let opened = false;
    ws.on('open', () => (opened = true));
    ws.on('close', (code, reason) => resolve({ code, reason: reason.toString(), opened }));
    ws.on('error', reject);
  });
}

describe('global setup', () => {
  it('exports the services to test workers through process.env and inject()', () => {
    const provided = inject('services');
    expect(process.env.ETCD_ENDPOINTS).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(process.env.DATABASE_URL).toMatch(/^postgres:\/\/postgres:postgres@127\.0\.0\.1:\d+\/circuitry$/);
    expect(process.env.NEON_WS_PROXY).toMatch(/^127\.0\.0\.1:\d+\/v2$/);
    expect(provided.ETCD_ENDPOINTS).toBe(process.env.ETCD_ENDPOINTS);
    expect(provided.DATABASE_URL).toBe(process.env.DATABASE_URL);
    expect(provided.NEON_WS_PROXY).toBe(process.env.NEON_WS_PROXY);
    expect(process.env.API_TOKENS).toBe('test-token-0123456789abcdef');
    expect(process.env.LOCK_TTL_SECONDS).toBe('2');
    expect(process.env.LOCK_WAIT_MS).toBe('3000');
    expect(process.env.ALLOWED_BACKEND_CIDRS).toBe('127.0.0.0/8');
    expect(process.env.EVENT_BUS_NAME).toBe('test-bus');
    expect(process.env.EVENT_SOURCE).toBe('circuitry.test');
    expect(isAlive(provided.etcdPid)).toBe(true);
    expect(isAlive(provided.postgresPid)).toBe(true);
  });

  it('the shared Postgres answers through the Neon driver and the proxy', async () => {
    const pool = createPool({ databaseUrl: process.env.DATABASE_URL!, neonWsProxy: process.env.NEON_WS_PROXY, max: 2 });
    try {
      const r = await pool.query<{ db: string }>('SELECT current_database() AS db');
      expect(r.rows).toEqual([{ db: 'circuitry' }]);
    } finally {
      await pool.end();
    }
  });
});

describe('wsproxy address policy', () => {
  it('parses host:port and recognises loopback only', () => {
    expect(parseAddress('127.0.0.1:5432')).toEqual({ host: '127.0.0.1', port: 5432 });
    expect(parseAddress('[::1]:5432')).toEqual({ host: '::1', port: 5432 });
    expect(parseAddress('localhost')).toBeNull();
    expect(parseAddress('127.0.0.1:0')).toBeNull();
    expect(parseAddress('127.0.0.1:70000')).toBeNull();
    for (const h of ['127.0.0.1', '127.255.0.9', 'localhost', 'LOCALHOST', '::1', '::ffff:127.0.0.1']) expect(isLoopbackHost(h)).toBe(true);
    for (const h of ['10.0.0.1', '128.0.0.1', '0.0.0.0', '127.0.0.1.example.com', 'example.com', '::', '::ffff:10.0.0.1']) {
      expect(isLoopbackHost(h)).toBe(false);
    }
  });
});

describe('own services instance', () => {
  let services: Services;
  let pool: Pool;
  const dbErrors: string[] = [];

  beforeAll(async () => {
    services = await startServices();
    pool = createPool({
      databaseUrl: services.postgres.url,
      neonWsProxy: services.wsProxy.url,
      max: 4,
      onError: (err) => dbErrors.push(err.message),
    });
  });

  afterAll(async () => {
    await pool?.end().catch(() => {});
    const pids = services ? [services.etcd.pid, services.postgres.pid] : [];
    await services?.stop();
    await services?.stop(); // idempotent
    for (const pid of pids) expect(isAlive(pid)).toBe(false);
  });

  it('reports a complete environment and fast startup', () => {
    expect(services.env).toEqual({
      ETCD_ENDPOINTS: services.etcd.endpoint,
      DATABASE_URL: services.postgres.url,
      NEON_WS_PROXY: services.wsProxy.url,
    });
    expect(services.postgres.url).toMatch(/^postgres:\/\/postgres:postgres@127\.0\.0\.1:\d+\/circuitry$/);
    console.info(`startup: etcd ${services.timings.etcdMs} ms, postgres ${services.timings.postgresMs} ms`);
  });

  it('runs select 1 and a transaction through the Neon Pool and the ws proxy', async () => {
    expect((await pool.query<{ one: number }>('select 1 as one')).rows).toEqual([{ one: 1 }]);

    await pool.query('CREATE TABLE kv (k text PRIMARY KEY, v int NOT NULL)');
    const client = await pool.connect();
    try {
      await client.query('BEGIN');
      await client.query('INSERT INTO kv VALUES ($1, $2), ($3, $4)', ['a', 1, 'b', 2]);
      await client.query('COMMIT');
      await client.query('BEGIN');
      await client.query('INSERT INTO kv VALUES ($1, $2)', ['c', 3]);
      await client.query('ROLLBACK');
    } finally {
      client.release();
    }
    const rows = (await pool.query<{ k: string; v: number }>('SELECT k, v FROM kv ORDER BY k')).rows;
    expect(rows).toEqual([
      { k: 'a', v: 1 },
      { k: 'b', v: 2 },
    ]);
  });

  it('Postgres checks the password over TCP; proxy settings stay per pool, not global', async () => {
    const wrong = createPool({
      databaseUrl: services.postgres.url.replace('postgres:postgres@', 'postgres:wrong@'),
      neonWsProxy: services.wsProxy.url,
      max: 1,
      onError: () => {},
    });
    try {
      await expect(wrong.query('SELECT 1')).rejects.toThrow(/password authentication failed/);
    } finally {
      await wrong.end();
    }
    expect(neonConfig.useSecureWebSocket).toBe(true);
    expect(neonConfig.pipelineConnect).toBe('password');
    expect(typeof neonConfig.wsProxy === 'function' ? neonConfig.wsProxy('db.example', 5432) : neonConfig.wsProxy).toBe('db.example/v2');
  });

  it('etcd answers put/get; stop() makes requests fail; start() restores the same endpoint with its data', async () => {
    const endpoint = services.etcd.endpoint;
    const etcd = new Etcd3({ hosts: endpoint, dialTimeout: 500 });
    try {
      await etcd.put('circuitry/test/key').value('v1');
      expect(await etcd.get('circuitry/test/key').string()).toBe('v1');

      const oldPid = services.etcd.pid;
      await services.etcd.stop();
      expect(isAlive(oldPid)).toBe(false);
      await expect(etcd.get('circuitry/test/key').string()).rejects.toThrow();

      await services.etcd.start();
      expect(services.etcd.endpoint).toBe(endpoint);
      expect(services.etcd.pid).not.toBe(oldPid);
      expect(isAlive(services.etcd.pid)).toBe(true);
    } finally {
      etcd.close();
    }
    // A fresh client on the same endpoint sees the data written before the restart.
    const again = new Etcd3({ hosts: endpoint });
    try {
      expect(await again.get('circuitry/test/key').string()).toBe('v1');
    } finally {
      again.close();
    }
  });

  it('the proxy refuses a non-loopback address with 1008 and accepts a loopback one', async () => {
    const refused = await closeCodeFor(services.wsProxy.url, '10.1.2.3:5432');
    expect(refused.code).toBe(1008);
    const refusedName = await closeCodeFor(services.wsProxy.url, 'example.com:5432');
    expect(refusedName.code).toBe(1008);
    const malformed = await closeCodeFor(services.wsProxy.url, 'nonsense');
    expect(malformed.code).toBe(1008);
    // A loopback target with nothing listening: accepted, then closed because the upstream failed.
    const deadPort = await closeCodeFor(services.wsProxy.url, '127.0.0.1:1');
    expect(deadPort.opened).toBe(true);
    expect(deadPort.code).not.toBe(1008);
  });

  it('dropAll() makes an open client fail its next query; a new pool connection works', async () => {
    const held = await pool.connect();
    let released = false;
    try {
      expect((await held.query('SELECT 1 AS x')).rows).toEqual([{ x: 1 }]);
      dbErrors.length = 0;
      services.wsProxy.dropAll();
      await expect.poll(() => dbErrors.length, { timeout: 2000 }).toBeGreaterThan(0);
      await expect(held.query('SELECT 1 AS x')).rejects.toThrow();
      held.release(true); // discard the broken client
      released = true;
      const rows = (await pool.query<{ n: string }>('SELECT count(*) AS n FROM kv')).rows;
      expect(rows).toEqual([{ n: '2' }]);
    } finally {
      if (!released) held.release(true);
    }
  });

  it('POST /_admin/drop-all on the proxy drops connections too (for test workers of a shared proxy)', async () => {
    const held = await pool.connect();
    try {
      await held.query('SELECT 1');
      const res = await fetch(`http://${services.wsProxy.url.replace(/\/v2$/, '')}/_admin/drop-all`, { method: 'POST' });
      expect(res.status).toBe(200);
      expect(((await res.json()) as { dropped: number }).dropped).toBeGreaterThanOrEqual(1);
      await expect.poll(async () => held.query('SELECT 1').then(() => 'ok', () => 'failed'), { timeout: 2000 }).toBe('failed');
    } finally {
      held.release(true);
    }
    expect((await pool.query('SELECT 1 AS x')).rows).toEqual([{ x: 1 }]);
  });

  it('Postgres stop()/start() keeps the port and the data', async () => {
    const { url } = services.postgres;
    await services.postgres.stop();
    await expect(pool.query('SELECT 1')).rejects.toThrow();
    await services.postgres.start();
    expect(services.postgres.url).toBe(url);
    const rows = (await pool.query<{ n: string }>('SELECT count(*) AS n FROM kv')).rows;
    expect(rows).toEqual([{ n: '2' }]);
  });
});

describe('wsproxy lifecycle', () => {
  it('close() ends live connections and stops listening', async () => {
    const proxy = await startWsProxy();
    expect(proxy.url).toBe(`127.0.0.1:${proxy.port}/v2`);
    const ws = new WebSocket(`ws://${proxy.url}?address=127.0.0.1:1`);
    const closed = new Promise<void>((resolve) => ws.on('close', () => resolve()));
    ws.on('error', () => {});
    await proxy.close();
    await closed;
    await proxy.close(); // idempotent
    const err = await new Promise<Error>((resolve) => {
      const again = new WebSocket(`ws://${proxy.url}?address=127.0.0.1:1`);
      again.on('error', resolve);
    });
    expect(err.message).toMatch(/ECONNREFUSED/);
  });
});
