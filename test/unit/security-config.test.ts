// Credentials and transport security in the configuration (lib/config.ts): etcd TLS and auth,
// TLS database URLs, the plaintext local proxy kept on loopback, key prefixes that cannot
// overlap, and error messages that name variables without ever echoing a secret.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError, parseConfig } from '../../lib/config.js';
import { createPool } from '../../lib/db/neon.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'circuitry-config-'));
const file = (name: string) => {
  const p = path.join(dir, name);
  fs.writeFileSync(p, '-----BEGIN CERTIFICATE-----\n');
  return p;
};
const CA = file('ca.pem');
const CERT = file('client.pem');
const KEY = file('client-key.pem');
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

const SECRET_DB = 'db-S3cret-p4ss';
const SECRET_ETCD = 'etcd-S3cret-p4ss';
const SECRET_TOKEN = 'tok-S3cret-0123456789';
const base = {
  ETCD_ENDPOINTS: 'http://127.0.0.1:2379',
  DATABASE_URL: `postgres://app:${SECRET_DB}@ep-cool-bird-123456.eu-central-1.aws.neon.tech/circuitry`,
  API_TOKENS: SECRET_TOKEN,
};

function configError(env: Record<string, string>): string {
  try {
    parseConfig(env);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as Error).message;
  }
  throw new Error('expected a ConfigError');
}

describe('TLS database URL', () => {
  it.each(['require', 'verify-full', 'verify-ca', 'prefer', 'disable'])('accepts ?sslmode=%s (Neon: require)', (mode) => {
    const url = `${base.DATABASE_URL}?sslmode=${mode}`;
    expect(parseConfig({ ...base, DATABASE_URL: url }).databaseUrl).toBe(url);
  });

  it('accepts sslmode among other parameters, and a pool can be created from it', async () => {
    const url = `${base.DATABASE_URL}?application_name=circuitry&sslmode=require&connect_timeout=5`;
    const c = parseConfig({ ...base, DATABASE_URL: url });
    const pool = createPool({ databaseUrl: c.databaseUrl });
    expect((pool as unknown as { options: { connectionString: string } }).options.connectionString).toBe(url);
    await pool.end();
  });

  it('rejects an unknown sslmode, naming the variable but not the URL (it holds the password)', () => {
    const msg = configError({ ...base, DATABASE_URL: `${base.DATABASE_URL}?sslmode=yes-please` });
    expect(msg).toMatch(/DATABASE_URL sslmode must be one of/);
    expect(msg).not.toContain(SECRET_DB);
  });
});

describe('etcd credentials', () => {
  const tls = { ETCD_ENDPOINTS: 'https://10.0.0.1:2379,https://10.0.0.2:2379', ETCD_CA_FILE: CA };

  it('accepts username/password with TLS, and TLS with a client certificate', () => {
    const c = parseConfig({ ...base, ...tls, ETCD_USERNAME: 'circuitry', ETCD_PASSWORD: SECRET_ETCD, ETCD_CERT_FILE: CERT, ETCD_KEY_FILE: KEY });
    expect(c.etcd).toMatchObject({ username: 'circuitry', password: SECRET_ETCD, caFile: CA, certFile: CERT, keyFile: KEY });
  });

  it('accepts bare host:port endpoints as etcdctl does: http, or https when a CA is set', () => {
    expect(parseConfig({ ...base, ETCD_ENDPOINTS: '127.0.0.1:2379, localhost:22379,[::1]:2379' }).etcd.endpoints).toEqual(['http://127.0.0.1:2379', 'http://localhost:22379', 'http://[::1]:2379']);
    expect(parseConfig({ ...base, ETCD_ENDPOINTS: '10.0.0.1:2379,https://10.0.0.2:2379', ETCD_CA_FILE: CA }).etcd.endpoints).toEqual(['https://10.0.0.1:2379', 'https://10.0.0.2:2379']);
    expect(configError({ ...base, ETCD_ENDPOINTS: 'etcd-without-port' })).toMatch(/ETCD_ENDPOINTS each endpoint must be an http\(s\) URL/);
    expect(configError({ ...base, ETCD_ENDPOINTS: 'ftp://10.0.0.1:2379' })).toMatch(/ETCD_ENDPOINTS each endpoint must be an http\(s\) URL/);
  });

  it.each<[string, Record<string, string>, RegExp]>([
    ['a username without a password', { ETCD_USERNAME: 'circuitry' }, /ETCD_USERNAME and ETCD_PASSWORD must be set together/],
    ['a password without a username', { ETCD_PASSWORD: SECRET_ETCD }, /ETCD_USERNAME and ETCD_PASSWORD must be set together/],
    ['a certificate without its key', { ...tls, ETCD_CERT_FILE: CERT }, /ETCD_CERT_FILE and ETCD_KEY_FILE must be set together/],
    ['a client certificate without a CA', { ETCD_ENDPOINTS: 'https://10.0.0.1:2379', ETCD_CERT_FILE: CERT, ETCD_KEY_FILE: KEY }, /need ETCD_CA_FILE/],
    ['a CA with plain http endpoints', { ETCD_CA_FILE: CA }, /ETCD_ENDPOINTS must all be https/],
    ['a CA file that does not exist', { ...tls, ETCD_CA_FILE: path.join(dir, 'missing.pem') }, /ETCD_CA_FILE must name a readable file/],
    ['a key file that does not exist', { ...tls, ETCD_CERT_FILE: CERT, ETCD_KEY_FILE: path.join(dir, 'nope') }, /ETCD_KEY_FILE must name a readable file/],
  ])('rejects %s', (_, env, message) => {
    const msg = configError({ ...base, ...env });
    expect(msg).toMatch(message);
    expect(msg).not.toContain(SECRET_ETCD);
  });
});

describe('other transport and layout guards', () => {
  it('keeps the plaintext WebSocket proxy on loopback', () => {
    expect(parseConfig({ ...base, NEON_WS_PROXY: '127.0.0.1:40123/v2' }).neonWsProxy).toBe('127.0.0.1:40123/v2');
    expect(parseConfig({ ...base, NEON_WS_PROXY: 'localhost:40123/v2' }).neonWsProxy).toBe('localhost:40123/v2');
    expect(configError({ ...base, NEON_WS_PROXY: 'proxy.internal:80/v2' })).toMatch(/NEON_WS_PROXY must be a loopback address/);
    expect(configError({ ...base, NEON_WS_PROXY: '10.0.0.5:80/v2' })).toMatch(/NEON_WS_PROXY/);
  });

  it.each([
    [{ TRAEFIK_ROOT: 'traefik', META_PREFIX: 'traefik/circuitry' }],
    [{ TRAEFIK_ROOT: 'kv/traefik', META_PREFIX: 'kv' }],
    [{ TRAEFIK_ROOT: 'same', META_PREFIX: 'same' }],
  ])('refuses locks inside Traefik\'s tree: %j', (env) => {
    expect(configError({ ...base, ...env })).toMatch(/must not contain one another/);
  });

  it('allows sibling prefixes that merely share a leading string', () => {
    expect(parseConfig({ ...base, TRAEFIK_ROOT: 'traefik', META_PREFIX: 'traefik-meta' }).metaPrefix).toBe('traefik-meta');
  });

  it.each(['..', 'a/../b', './traefik', 'traefik/.'])('refuses the dot segment path %s', (root) => {
    expect(configError({ ...base, TRAEFIK_ROOT: root })).toMatch(/TRAEFIK_ROOT must not contain/);
  });

  it('never echoes a secret in any configuration error', () => {
    const msgs = [
      configError({ ...base, API_TOKENS: 'short-secret' }),
      configError({ ...base, ETCD_PASSWORD: SECRET_ETCD, ETCD_ENDPOINTS: `ftp://root:${SECRET_ETCD}@h` }),
      configError({ ...base, DATABASE_URL: `mysql://app:${SECRET_DB}@h/db` }),
      configError({ ...base, DATABASE_URL: `postgres://app:${SECRET_DB}@h` }),
      configError({ ...base, LOCK_TTL_SECONDS: SECRET_TOKEN }),
    ];
    for (const m of msgs) {
      for (const s of ['short-secret', SECRET_ETCD, SECRET_DB, SECRET_TOKEN]) expect(m).not.toContain(s);
    }
    expect(msgs[0]).toMatch(/API_TOKENS each token must be at least 16 characters/);
    expect(msgs[2]).toMatch(/DATABASE_URL must be a postgres:\/\/ URL/);
  });
});

describe('state retention and ownership settings', () => {
  it('defaults: 60 s unload grace, report orphans, tombstones for an hour, deleted rows for 30 days', () => {
    const c = parseConfig(base);
    expect(c).toMatchObject({ unloadGraceSeconds: 60, orphanPolicy: 'report', functionTimeoutSeconds: 900, tombstoneRetentionSeconds: 3600, deletedRetentionDays: 30 });
  });

  it('refuses a tombstone retention shorter than the longest life of a stale writer (function timeout + lock TTL)', () => {
    const bad = { ...base, FUNCTION_TIMEOUT_SECONDS: '30', LOCK_TTL_SECONDS: '10', TOMBSTONE_RETENTION_SECONDS: '40' };
    expect(() => parseConfig(bad)).toThrow(/TOMBSTONE_RETENTION_SECONDS must exceed FUNCTION_TIMEOUT_SECONDS \+ LOCK_TTL_SECONDS \(40 s\)/);
    expect(parseConfig({ ...bad, TOMBSTONE_RETENTION_SECONDS: '41' }).tombstoneRetentionSeconds).toBe(41);
  });

  it('refuses deleted rows that would be purged before their tombstone retires', () => {
    expect(() => parseConfig({ ...base, TOMBSTONE_RETENTION_SECONDS: String(2 * 86400), DELETED_RETENTION_DAYS: '1' })).toThrow(/DELETED_RETENTION_DAYS must be longer than TOMBSTONE_RETENTION_SECONDS/);
  });

  it.each([
    ['ORPHAN_POLICY', 'purge', /ORPHAN_POLICY must be "report" or "delete"/],
    ['UNLOAD_GRACE_SECONDS', '-1', /UNLOAD_GRACE_SECONDS/],
    ['DELETED_RETENTION_DAYS', '0', /DELETED_RETENTION_DAYS/],
  ])('names %s when it is invalid', (name, value, message) => {
    expect(() => parseConfig({ ...base, [name]: value })).toThrow(message);
  });
});
