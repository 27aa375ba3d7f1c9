// etcd credentials for real: a CA, a server and a client certificate made with
// openssl; an etcd of this file's own that serves only TLS on 127.0.0.1, requires client
// certificates (--client-cert-auth) and has authentication enabled, with a least-privilege role for
// circuitry (read-write on its Traefik root and meta prefix only). A propagate works with the right
// credentials, and fails with a clear error without each of them; secrets stay out of the logs.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EtcdAuthenticationFailedError, EtcdPermissionDeniedError, EtcdUserNotFoundError } from 'etcd3';

const TOKEN = 'test-token-0123456789abcdef';
const PASSWORD = `circuitry-${randomUUID()}`;
const ROOT_PASSWORD = `root-${randomUUID()}`;
const TRAEFIK_ROOT = 'traefik-tls';
const META_PREFIX = 'circuitry-tls';
const SHARED_ETCD = process.env.ETCD_ENDPOINTS!;
Object.assign(process.env, {
  API_TOKENS: TOKEN,
  TRAEFIK_ROOT,
  META_PREFIX,
  ETCD_TIMEOUT_MS: '1500',
  LOCK_WAIT_MS: '1500',
  AWS_REGION: 'us-east-1',
  POWERTOOLS_LOG_LEVEL: 'DEBUG',
  POWERTOOLS_METRICS_DISABLED: 'true',
});

const { handler: updateRoutesFn } = await import('../../functions/update-routes.js');
const { getRuntime, closeRuntime, createRuntime, Invocation } = await import('../../lib/runtime.js');
const { parseConfig, resetConfigCache } = await import('../../lib/config.js');
const { propagate } = await import('../../lib/circuits/propagate.js');
const { DependencyError, MisconfiguredError } = await import('../../lib/errors.js');
const { toProblem } = await import('../../lib/http/errors.js');
const { route, seedCircuit } = await import('../support/rt.js');
const { call } = await import('../support/lambda.js');

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'circuitry-tls-'));
const f = (name: string) => path.join(dir, name);
let etcd: ChildProcess | undefined;
let endpoint = '';

function openssl(...args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
}

function makeCertificates(): void {
  openssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca-key.pem', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=circuitry-test-ca');
  const leaf = (name: string, cn: string, ext: string) => {
    fs.writeFileSync(f(`${name}.ext`), ext);
    openssl('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${name}-key.pem`, '-out', `${name}.csr`, '-subj', `/CN=${cn}`);
    openssl('x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca-key.pem', '-CAcreateserial', '-out', `${name}.pem`, '-days', '2', '-extfile', `${name}.ext`);
  };
  leaf('server', 'etcd-server', 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n');
  // CN is what etcd would take as the user name for certificate-only requests: not an etcd user.
  leaf('client', 'circuitry-client', 'extendedKeyUsage=clientAuth\n');
  // A certificate from another CA, which the server must refuse.
  openssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'rogue-key.pem', '-out', 'rogue.pem', '-days', '2', '-subj', '/CN=circuitry');
}

async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}

const etcdctl = (...args: string[]) =>
  execFileSync('etcdctl', [`--endpoints=${endpoint}`, `--cacert=${f('ca.pem')}`, `--cert=${f('client.pem')}`, `--key=${f('client-key.pem')}`, ...args], {
    env: { ...process.env, ETCDCTL_API: '3' },
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
  });

async function startTlsEtcd(): Promise<void> {
  const [client, peer] = [await freePort(), await freePort()];
  endpoint = `https://127.0.0.1:${client}`;
  const log = fs.openSync(f('etcd.log'), 'a');
  etcd = spawn(
    'etcd',
    [
      '--name', 't', '--data-dir', f('data'),
      '--listen-client-urls', endpoint, '--advertise-client-urls', endpoint,
      '--listen-peer-urls', `http://127.0.0.1:${peer}`, '--initial-advertise-peer-urls', `http://127.0.0.1:${peer}`,
      '--initial-cluster', `t=http://127.0.0.1:${peer}`,
      '--cert-file', f('server.pem'), '--key-file', f('server-key.pem'),
      '--trusted-ca-file', f('ca.pem'), '--client-cert-auth',
      '--heartbeat-interval=10', '--election-timeout=100', '--logger=zap', '--log-level=error',
    ],
    { stdio: ['ignore', log, log], env: { PATH: process.env.PATH, ...(process.arch === 'x64' ? {} : { ETCD_UNSUPPORTED_ARCH: process.arch }) } },
  );
  fs.closeSync(log);
  const until = Date.now() + 15_000;
  for (;;) {
    try {
      etcdctl('endpoint', 'health');
      break;
    } catch (err) {
      if (Date.now() > until || etcd.exitCode !== null) throw new Error(`TLS etcd did not start: ${String(err)}\n${fs.readFileSync(f('etcd.log'), 'utf8').slice(-2000)}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  // Least privilege: circuitry may read and write its Traefik root and its meta prefix, nothing else.
  etcdctl('user', 'add', 'root', `--new-user-password=${ROOT_PASSWORD}`);
  etcdctl('role', 'add', 'circuitry');
  etcdctl('role', 'grant-permission', 'circuitry', '--prefix=true', 'readwrite', `${TRAEFIK_ROOT}/`);
  etcdctl('role', 'grant-permission', 'circuitry', '--prefix=true', 'readwrite', `${META_PREFIX}/`);
  etcdctl('user', 'add', 'circuitry', `--new-user-password=${PASSWORD}`);
  etcdctl('user', 'grant-role', 'circuitry', 'circuitry');
  etcdctl('auth', 'enable');
}

beforeAll(async () => {
  makeCertificates();
  await startTlsEtcd();
}, 60_000);

afterAll(async () => {
  await closeRuntime(getRuntime()).catch(() => {});
  if (etcd && etcd.exitCode === null) {
    const exited = new Promise((r) => etcd!.once('exit', r));
    etcd.kill('SIGTERM');
    await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
    if (etcd.exitCode === null) etcd.kill('SIGKILL');
  }
  fs.rmSync(dir, { recursive: true, force: true });
});

const full = () => ({
  ETCD_ENDPOINTS: endpoint,
  ETCD_CA_FILE: f('ca.pem'),
  ETCD_CERT_FILE: f('client.pem'),
  ETCD_KEY_FILE: f('client-key.pem'),
  ETCD_USERNAME: 'circuitry',
  ETCD_PASSWORD: PASSWORD,
});

function runtime(env: Record<string, string | undefined>) {
  const merged: Record<string, string | undefined> = { ...process.env, ...env };
  for (const [k, v] of Object.entries(env)) if (v === undefined) delete merged[k];
  return createRuntime(parseConfig(merged));
}

/** A circuit in the (shared) database, then one propagate through a runtime with `env`. */
async function propagateWith(env: Record<string, string | undefined>): Promise<{ result?: Awaited<ReturnType<typeof propagate>>; error?: unknown; ms: number; id: string; rt: ReturnType<typeof runtime> }> {
  const rt = runtime(env);
  const { id } = await seedCircuit(rt);
  const inv = new Invocation(rt);
  const t0 = performance.now();
  try {
    return { result: await propagate(inv, id), ms: performance.now() - t0, id, rt };
  } catch (error) {
    return { error, ms: performance.now() - t0, id, rt };
  } finally {
    await inv.close();
  }
}

describe('etcd over TLS with client certificates and authentication', () => {
  it('propagates with the right credentials; circuitry can touch nothing outside its prefixes', async () => {
    const { result, error, id, rt } = await propagateWith(full());
    try {
      expect(error).toBeUndefined();
      expect(result).toMatchObject({ found: true, applied: true, generation: 1 });
      const keys = etcdctl(`--user=root:${ROOT_PASSWORD}`, 'get', '--prefix', '--keys-only', `${TRAEFIK_ROOT}/`);
      expect(keys).toContain(`bai_router_${id}/rule`);
      // The role is enough for the whole protocol (lease, lock, fenced txn, watch), and no more.
      await expect(rt.etcd.put('elsewhere/x').value('1')).rejects.toBeInstanceOf(EtcdPermissionDeniedError);
      await expect(rt.etcd.get('traefik/worker_x/http/routers/r/rule')).rejects.toBeInstanceOf(EtcdPermissionDeniedError);
    } finally {
      await closeRuntime(rt);
    }
  });

  it.each<[string, Record<string, string | undefined>, (e: unknown) => void]>([
    ['without username and password (certificate only)', { ETCD_USERNAME: undefined, ETCD_PASSWORD: undefined }, (e) => {
      // etcd maps the certificate's CN to a user; "circuitry-client" is none.
      const cause = (e as Error).cause;
      expect(cause instanceof EtcdUserNotFoundError || cause instanceof EtcdPermissionDeniedError, String(cause)).toBe(true);
    }],
    ['with a wrong password', { ETCD_PASSWORD: 'not-the-password' }, (e) => {
      expect((e as Error).cause, String(e)).toBeInstanceOf(EtcdAuthenticationFailedError);
      expect(String((e as Error).cause)).toMatch(/authentication failed, invalid user ID or password/);
    }],
    ['with an unknown user', { ETCD_USERNAME: 'mallory' }, (e) => {
      expect((e as Error).cause, String(e)).toBeInstanceOf(EtcdAuthenticationFailedError);
    }],
  ])('fails with a clear error %s, changing nothing', async (_, over, check) => {
    const { result, error, ms, id, rt } = await propagateWith({ ...full(), ...over });
    try {
      expect(result).toBeUndefined();
      check(error);
      expect(error).toBeInstanceOf(MisconfiguredError);
      expect(ms).toBeLessThan(5000);
      // The API answers 500 "misconfigured" (retrying cannot help), never a 503 loop or a leak.
      const p = toProblem(error, 1);
      expect(p).toMatchObject({ status: 500, detail: expect.stringMatching(/etcd refused its credentials/) });
      expect(etcdctl(`--user=root:${ROOT_PASSWORD}`, 'get', '--prefix', '--keys-only', `${TRAEFIK_ROOT}/`)).not.toContain(id);
    } finally {
      await closeRuntime(rt);
    }
  });

  it.each<[string, Record<string, string | undefined>]>([
    ['without a client certificate', { ETCD_CERT_FILE: undefined, ETCD_KEY_FILE: undefined }],
    ['with a certificate from another CA', { ETCD_CERT_FILE: f('rogue.pem'), ETCD_KEY_FILE: f('rogue-key.pem') }],
    ['without the CA (the server certificate is not trusted)', { ETCD_CA_FILE: undefined, ETCD_CERT_FILE: undefined, ETCD_KEY_FILE: undefined }],
  ])('refuses the connection %s: etcd unavailable within the timeout', async (_, over) => {
    const { result, error, ms, rt } = await propagateWith({ ...full(), ...over });
    try {
      expect(result).toBeUndefined();
      expect(error, String(error)).toBeInstanceOf(DependencyError);
      expect((error as InstanceType<typeof DependencyError>).dependency).toBe('etcd');
      expect(ms).toBeLessThan(5000);
    } finally {
      await closeRuntime(rt);
    }
  });

  it('refuses plain http to the TLS port, and TLS settings with http endpoints at configuration time', async () => {
    const { error, rt } = await propagateWith({ ETCD_ENDPOINTS: endpoint.replace('https:', 'http:'), ETCD_CA_FILE: undefined, ETCD_CERT_FILE: undefined, ETCD_KEY_FILE: undefined, ETCD_USERNAME: 'circuitry', ETCD_PASSWORD: PASSWORD });
    await closeRuntime(rt);
    expect(error).toBeInstanceOf(DependencyError);
    expect(() => parseConfig({ ...process.env, ...full(), ETCD_ENDPOINTS: endpoint.replace('https:', 'http:') })).toThrow(/ETCD_ENDPOINTS must all be https/);
  });
});

describe('through the handler', () => {
  const captured: string[] = [];
  const out = process.stdout.write.bind(process.stdout);
  const err = process.stderr.write.bind(process.stderr);

  async function coldStart(env: Record<string, string | undefined>): Promise<void> {
    await closeRuntime(getRuntime()).catch(() => {});
    for (const [k, v] of Object.entries(env)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
    resetConfigCache();
  }

  it('update-routes works with TLS + auth, and a refused password is a 500 that never logs it', async () => {
    await coldStart(full());
    const { id } = await seedCircuit(getRuntime());
    const ok = await call(updateRoutesFn, { method: 'PUT', path: `/v2/circuits/${id}/routes`, pathParameters: { id }, body: { routes: [route(1), route(2)] } });
    expect(ok.statusCode, JSON.stringify(ok.json)).toBe(200);
    expect(ok.json).toMatchObject({ generation: 2, applied: true });

    await coldStart({ ETCD_PASSWORD: `wrong-${PASSWORD}` });
    const grab = ((c: unknown) => (captured.push(String(c)), true)) as typeof process.stdout.write;
    process.stdout.write = grab;
    process.stderr.write = grab;
    let bad;
    try {
      bad = await call(updateRoutesFn, { method: 'PUT', path: `/v2/circuits/${id}/routes`, pathParameters: { id }, body: { routes: [route(3)] } });
    } finally {
      process.stdout.write = out as typeof process.stdout.write;
      process.stderr.write = err as typeof process.stderr.write;
    }
    expect(bad.statusCode).toBe(500);
    expect(bad.json.detail).toMatch(/etcd refused its credentials/);
    const logs = captured.join('');
    expect(logs).toMatch(/authentication failed, invalid user ID or password/);
    expect(logs).not.toContain(PASSWORD);
    expect(logs).not.toContain(TOKEN);
    expect(etcdctl(`--user=root:${ROOT_PASSWORD}`, 'get', `${META_PREFIX}/circuits/${id}`, '--print-value-only')).toMatch(/"generation":2/);
    await coldStart({ ETCD_ENDPOINTS: SHARED_ETCD, ETCD_CA_FILE: undefined, ETCD_CERT_FILE: undefined, ETCD_KEY_FILE: undefined, ETCD_USERNAME: undefined, ETCD_PASSWORD: undefined });
  });
});
