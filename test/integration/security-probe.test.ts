// Probe SSRF defences, the cases test/integration/health-probe.test.ts does not
// already cover: route hosts in numeric notations that the system resolver turns into addresses
// (the metadata address as a decimal or hex "name"), request paths that look like authorities,
// hostile response headers, and a resolver that hangs. The prober must check the address it
// actually connects to, never connect anywhere else, and stay within its deadline.
import http from 'node:http';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Prober, type ProbeTarget } from '../../lib/health/probe.js';

interface Server {
  port: number;
  requests: Array<{ path: string; host: string | undefined }>;
  connections: number;
  close(): Promise<void>;
}

async function server(host: string, handler: (req: http.IncomingMessage, res: http.ServerResponse) => void): Promise<Server> {
  const requests: Server['requests'] = [];
  const s = http.createServer((req, res) => {
    requests.push({ path: req.url ?? '', host: req.headers.host });
    handler(req, res);
  });
  const out = { port: 0, requests, connections: 0, close: () => new Promise<void>((r) => (s.closeAllConnections(), s.close(() => r()))) };
  s.on('connection', () => out.connections++);
  await new Promise<void>((r) => s.listen(0, host, r));
  out.port = (s.address() as net.AddressInfo).port;
  return out;
}

/** A raw TCP server that answers every connection with `response` (for malformed HTTP). */
async function rawServer(host: string, response: string | Buffer): Promise<Server> {
  const out: Server = { port: 0, requests: [], connections: 0, close: async () => {} };
  const s = net.createServer((sock) => {
    out.connections++;
    sock.once('data', () => sock.end(response));
    sock.on('error', () => {});
  });
  out.close = () => new Promise<void>((r) => s.close(() => r()));
  await new Promise<void>((r) => s.listen(0, host, r));
  out.port = (s.address() as net.AddressInfo).port;
  return out;
}

const servers: Server[] = [];
let ok: Server;
let watcher: Server; // stands in for an internal service on another loopback address
beforeAll(async () => {
  ok = await server('127.0.0.1', (_req, res) => res.writeHead(200).end('ok'));
  watcher = await server('127.0.0.3', (_req, res) => res.writeHead(200).end('secret'));
  servers.push(ok, watcher);
});
afterAll(async () => {
  await Promise.all(servers.map((s) => s.close()));
});

const target = (host: string, port: number, over: Partial<ProbeTarget> = {}): ProbeTarget => ({
  protocol: 'http',
  host,
  port,
  path: '/health',
  timeoutMs: 1000,
  expectedStatus: 200,
  ...over,
});

describe('numeric notations resolved by the system resolver', () => {
  // getaddrinfo (inet_aton) reads these as IPv4 addresses; the API refuses them as route hosts
  // (lib/model.ts routeHostSchema) but the prober must be safe on its own too.
  it.each([
    ['2852039166', '169.254.169.254'],
    ['0xa9fea9fe', '169.254.169.254'],
    ['0251.0376.0251.0376', '169.254.169.254'],
    ['169.254.43518', '169.254.169.254'],
  ])('%s (= %s) is refused as the metadata address, without connecting', async (host, address) => {
    const p = new Prober({ allowedCidrs: ['0.0.0.0/0'] });
    const started = Date.now();
    const r = await p.probe(target(host, 80, { timeoutMs: 3000 }));
    p.close();
    expect(r).toMatchObject({ ok: false, refused: true, address });
    expect(Date.now() - started).toBeLessThan(500);
  });

  it.each(['2130706433', '0x7f000001', '0177.0.0.1', '127.1'])('%s (= 127.0.0.1) is probed at the resolved address only when it is allowed', async (host) => {
    const allowed = new Prober({ allowedCidrs: ['127.0.0.0/8'] });
    const strict = new Prober({ allowedCidrs: ['10.0.0.0/8'] });
    const before = ok.connections;
    expect(await strict.probe(target(host, ok.port))).toMatchObject({ ok: false, refused: true, address: '127.0.0.1' });
    expect(ok.connections).toBe(before);
    expect(await allowed.probe(target(host, ok.port))).toMatchObject({ ok: true, address: '127.0.0.1' });
    allowed.close();
    strict.close();
  });
});

describe('the probe stays on the route', () => {
  it.each(['//127.0.0.3/latest/meta-data/', '/@127.0.0.3/', '/..%2f..%2f', 'http://127.0.0.3/'])('path %s is sent to the route itself, never elsewhere', async (path) => {
    const p = new Prober({ allowedCidrs: ['127.0.0.0/8'] });
    const before = watcher.connections;
    const r = await p.probe(target('127.0.0.1', ok.port, { path: path.startsWith('/') ? path : `/${path}` }));
    p.close();
    expect(r.address).toBe('127.0.0.1');
    expect(watcher.connections).toBe(before);
    expect(ok.requests.at(-1)!.host).toBe(`127.0.0.1:${ok.port}`);
  });

  it('a resolver that answers with a different address on every call is asked once per probe', async () => {
    let calls = 0;
    const answers = ['127.0.0.1', '169.254.169.254'];
    const p = new Prober({ allowedCidrs: ['127.0.0.0/8'], lookup: async () => [answers[calls++ % 2]!] });
    const first = await p.probe(target('rebind.example', ok.port));
    const second = await p.probe(target('rebind.example', ok.port));
    p.close();
    expect(calls).toBe(2);
    expect(first).toMatchObject({ ok: true, address: '127.0.0.1' });
    // The second answer is the metadata address: refused, whatever the first one was.
    expect(second).toMatchObject({ ok: false, refused: true, address: '169.254.169.254' });
  });

  it('a name resolving to an allowed address and a refused one is refused as a whole', async () => {
    for (const answer of [['127.0.0.1', '169.254.169.254'], ['169.254.169.254', '127.0.0.1']]) {
      const p = new Prober({ allowedCidrs: ['127.0.0.0/8'], lookup: async () => answer });
      const r = await p.probe(target('mixed.example', ok.port));
      p.close();
      expect(r).toMatchObject({ ok: false, refused: true, address: '169.254.169.254' });
    }
  });

  it('a resolver that never answers costs at most the probe timeout', async () => {
    const p = new Prober({ allowedCidrs: ['127.0.0.0/8'], lookup: () => new Promise(() => {}) });
    const started = Date.now();
    const r = await p.probe(target('slow-dns.example', ok.port, { timeoutMs: 300 }));
    p.close();
    expect(r).toMatchObject({ ok: false, error: expect.stringMatching(/timed out/) });
    expect(Date.now() - started).toBeLessThan(1000);
  });

  it('a resolver that returns garbage or IPv6 only is refused', async () => {
    for (const answer of [['not-an-ip'], ['::1'], ['fd00:ec2::254'], ['fe80::1'], []]) {
      const p = new Prober({ allowedCidrs: ['0.0.0.0/0'], lookup: async () => answer });
      const r = await p.probe(target('x.example', ok.port));
      p.close();
      expect(r.ok, JSON.stringify(answer)).toBe(false);
    }
  });
});

describe('hostile responses', () => {
  it.each<[string, string | Buffer]>([
    ['an oversized header block', `HTTP/1.1 200 OK\r\nX-Big: ${'a'.repeat(100_000)}\r\n\r\n`],
    ['a header flood', `HTTP/1.1 200 OK\r\n${'X-A: b\r\n'.repeat(5000)}\r\n`],
    ['malformed HTTP', 'HTTP/1.1 2OO OK\r\n\r\n'],
    ['binary noise', Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 37) % 256))],
    ['a response splitting attempt', 'HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\nHTTP/1.1 302 Found\r\nLocation: http://169.254.169.254/\r\n\r\n'],
  ])('%s fails (or succeeds) without crashing, within the deadline, and follows nothing', async (_, response) => {
    const raw = await rawServer('127.0.0.1', response);
    servers.push(raw);
    const p = new Prober({ allowedCidrs: ['127.0.0.0/8'] });
    const started = Date.now();
    const r = await p.probe(target('127.0.0.1', raw.port, { timeoutMs: 1000 }));
    p.close();
    expect(Date.now() - started).toBeLessThan(1500);
    expect(r.address).toBe('127.0.0.1');
    expect(typeof r.ok).toBe('boolean');
    if (!r.ok) expect(r.error).toBeTruthy();
  });
});
