// One probe against real sockets on loopback: statuses, timeouts, no redirects followed (a
// redirect to the metadata address is never fetched), the capped body read, the address policy
// (checked on the address actually connected to), keep-alive reuse with a bounded idle pool, TCP.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import net from 'node:net';
import { Prober, type ProbeTarget } from '../../lib/health/probe.js';
import { closedPort, startBackend, type Backend } from '../support/fake-backends.js';

const backends: Backend[] = [];
let prober: Prober;
beforeAll(() => {
  prober = new Prober({ allowedCidrs: ['127.0.0.0/8'] });
});
afterAll(async () => {
  prober.close();
  await Promise.all(backends.map((b) => b.close()));
});

async function backend(host = '127.0.0.1', initial: Parameters<typeof startBackend>[1] = 200): Promise<Backend> {
  const b = await startBackend(host, initial);
  backends.push(b);
  return b;
}
const target = (b: { host: string; port: number }, over: Partial<ProbeTarget> = {}): ProbeTarget => ({
  protocol: 'http',
  host: b.host,
  port: b.port,
  path: '/health',
  timeoutMs: 1000,
  expectedStatus: 200,
  ...over,
});

describe('HTTP probe', () => {
  it('success iff the status is the expected one', async () => {
    const b = await backend();
    expect(await prober.probe(target(b))).toMatchObject({ ok: true, statusCode: 200, address: '127.0.0.1' });
    b.set(500);
    expect(await prober.probe(target(b))).toMatchObject({ ok: false, statusCode: 500, error: 'HTTP 500 (expected 200)' });
    b.set(204);
    expect(await prober.probe(target(b, { expectedStatus: 204 }))).toMatchObject({ ok: true });
    expect(b.requests.at(-1)).toMatchObject({ path: '/health', host: `127.0.0.1:${b.port}` });
  });

  it('a redirect is just a status: the target is never fetched (127.0.0.2 recorder, metadata address)', async () => {
    const recorder = await backend('127.0.0.2');
    const b = await backend('127.0.0.1', { kind: 'redirect', location: `http://127.0.0.2:${recorder.port}/latest/meta-data/` });
    expect(await prober.probe(target(b))).toMatchObject({ ok: false, statusCode: 302, error: 'HTTP 302 (expected 200)' });
    b.set({ kind: 'redirect', location: 'http://169.254.169.254/latest/meta-data/iam/security-credentials/', status: 307 });
    expect(await prober.probe(target(b))).toMatchObject({ ok: false, statusCode: 307 });
    // A 3xx that is the expected status is a success, still without following it.
    b.set({ kind: 'redirect', location: `http://127.0.0.2:${recorder.port}/`, status: 301 });
    expect(await prober.probe(target(b, { expectedStatus: 301 }))).toMatchObject({ ok: true });
    await new Promise((r) => setTimeout(r, 100));
    expect(recorder.requests).toHaveLength(0);
    expect(recorder.connections).toBe(0);
    // The recorder does work: probing it directly is seen.
    await prober.probe(target(recorder));
    expect(recorder.requests).toHaveLength(1);
  });

  it('a backend that never answers fails at the per-probe timeout', async () => {
    const b = await backend('127.0.0.1', { kind: 'hang' });
    const r = await prober.probe(target(b, { timeoutMs: 300 }));
    expect(r).toMatchObject({ ok: false, error: 'timed out after 300 ms' });
    expect(r.durationMs).toBeGreaterThanOrEqual(290);
    expect(r.durationMs).toBeLessThan(1500);
  });

  it('reads at most the capped body, then drops the connection (a huge body costs nothing)', async () => {
    const b = await backend('127.0.0.1', { kind: 'body', bytes: 200 * 1024 * 1024 });
    const started = Date.now();
    const r = await prober.probe(target(b, { timeoutMs: 5000 }));
    expect(r).toMatchObject({ ok: true, statusCode: 200 });
    expect(Date.now() - started).toBeLessThan(3000);
    await new Promise((r) => setTimeout(r, 100));
    expect(b.bodyBytesSent).toBeLessThan(32 * 1024 * 1024); // the server stopped long before 200 MB
    // The connection was not kept: the next probe opens a new one.
    b.set(200);
    const before = b.connections;
    await prober.probe(target(b));
    expect(b.connections).toBe(before + 1);
  });

  it('a request Node refuses to build is a failed probe, not an exception', async () => {
    const b = await backend();
    const r = await prober.probe(target(b, { path: '/health check' }));
    expect(r).toMatchObject({ ok: false, error: expect.stringMatching(/ERR_UNESCAPED_CHARACTERS/) });
    expect(b.requests).toHaveLength(0);
  });

  it('connection refused is a failure with a reason', async () => {
    const r = await prober.probe(target({ host: '127.0.0.1', port: await closedPort() }));
    expect(r).toMatchObject({ ok: false, error: 'connection refused' });
  });

  it('keeps connections alive across probes, within a global idle cap', async () => {
    const b = await backend();
    const before = b.connections;
    for (let i = 0; i < 5; i++) expect((await prober.probe(target(b))).ok).toBe(true);
    expect(b.connections - before).toBe(1);

    const small = new Prober({ allowedCidrs: ['127.0.0.0/8'], maxIdleSockets: 2 });
    const many = await Promise.all(Array.from({ length: 6 }, () => backend()));
    await Promise.all(many.map((m) => small.probe(target(m))));
    expect(small.idleSockets).toBe(2);
    await Promise.all(many.map((m) => small.probe(target(m))));
    expect(many.reduce((n, m) => n + m.connections, 0)).toBe(6 + 4); // 2 reused, 4 reopened
    small.close();
  });

  it('retries once, on a new connection, when a kept-alive socket turns out to be dead', async () => {
    // A server that answers the first request of each connection and resets the connection on
    // the second: exactly what a keep-alive timeout racing our reuse looks like.
    let connections = 0;
    const server = net.createServer((sock) => {
      connections++;
      let served = 0;
      sock.on('data', () => {
        if (served++ === 0) sock.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\nok');
        else sock.resetAndDestroy();
      });
      sock.on('error', () => {});
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as net.AddressInfo).port;
    const p = new Prober({ allowedCidrs: ['127.0.0.0/8'] });
    expect(await p.probe(target({ host: '127.0.0.1', port }))).toMatchObject({ ok: true });
    expect(await p.probe(target({ host: '127.0.0.1', port }))).toMatchObject({ ok: true });
    expect(connections).toBe(2);
    p.close();
    await new Promise((r) => server.close(r));
  });
});

describe('address policy', () => {
  it('an address outside ALLOWED_BACKEND_CIDRS is refused without connecting', async () => {
    const b = await backend();
    const strict = new Prober({ allowedCidrs: ['10.0.0.0/8'] });
    const r = await strict.probe(target(b));
    expect(r).toMatchObject({ ok: false, refused: true, address: '127.0.0.1', error: expect.stringMatching(/ALLOWED_BACKEND_CIDRS/) });
    expect(b.connections).toBe(0);
    strict.close();
  });

  it('169.254.0.0/16 is refused even when configured as allowed', async () => {
    const lax = new Prober({ allowedCidrs: ['169.254.0.0/16', '0.0.0.0/0'] });
    const started = Date.now();
    const r = await lax.probe(target({ host: '169.254.169.254', port: 80 }, { timeoutMs: 5000 }));
    expect(r).toMatchObject({ ok: false, refused: true, error: expect.stringMatching(/metadata/) });
    expect(Date.now() - started).toBeLessThan(500); // never tried to connect (the timeout is 5 s)
    const tcp = await lax.probe(target({ host: '169.254.169.254', port: 80 }, { protocol: 'tcp' }));
    expect(tcp).toMatchObject({ ok: false, refused: true });
    lax.close();
  });

  it('a name is resolved once; the checked address is the one connected to, the name goes in Host', async () => {
    const b = await backend();
    const lookups: string[] = [];
    const named = new Prober({
      allowedCidrs: ['127.0.0.0/8'],
      lookup: async (host) => {
        lookups.push(host);
        return host === 'model.internal' ? ['127.0.0.1'] : host === 'mixed.internal' ? ['169.254.169.254', '127.0.0.1'] : ['169.254.169.254'];
      },
    });
    expect(await named.probe(target({ host: 'model.internal', port: b.port }))).toMatchObject({ ok: true, address: '127.0.0.1' });
    expect(lookups).toEqual(['model.internal']);
    expect(b.requests.at(-1)!.host).toBe(`model.internal:${b.port}`);
    // A name that resolves to the metadata address, alone or among allowed ones, is refused.
    expect(await named.probe(target({ host: 'metadata.internal', port: b.port }))).toMatchObject({ ok: false, refused: true, address: '169.254.169.254' });
    expect(await named.probe(target({ host: 'mixed.internal', port: b.port }))).toMatchObject({ ok: false, refused: true, address: '169.254.169.254' });
    named.close();
  });

  it('the system resolver works too (localhost)', async () => {
    const b = await backend();
    const r = await prober.probe(target({ host: 'localhost', port: b.port }));
    // localhost may resolve to ::1 first: that one is refused, 127.0.0.1 is used.
    expect(r).toMatchObject({ ok: true, address: '127.0.0.1' });
  });
});

describe('TCP probe', () => {
  it('succeeds when a connection is accepted within the timeout, fails otherwise', async () => {
    const server = net.createServer((s) => s.end());
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as net.AddressInfo).port;
    expect(await prober.probe(target({ host: '127.0.0.1', port }, { protocol: 'tcp' }))).toMatchObject({ ok: true });
    expect(await prober.probe(target({ host: '127.0.0.1', port: await closedPort() }, { protocol: 'tcp' }))).toMatchObject({
      ok: false,
      error: 'connection refused',
    });
    await new Promise((r) => server.close(r));
  });
});
