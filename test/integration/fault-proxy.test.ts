// The fault proxy (harness/devstack/fault-proxy.ts) over real loopback sockets: what each fault
// does to live and new connections, and that a healed blackhole delivers everything in order.
import net from 'node:net';
import { createHash, randomBytes } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { startFaultProxy, type FaultProxyOptions } from '../../harness/devstack/fault-proxy.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** An echo server that records what it accepted and received. */
async function startTarget(): Promise<{ port: number; accepted: () => number; received: () => Buffer; ended: () => number; close: () => Promise<void> }> {
  let accepted = 0;
  let ended = 0;
  const chunks: Buffer[] = [];
  const socks = new Set<net.Socket>();
  const server = net.createServer({ allowHalfOpen: true }, (s) => {
    accepted++;
    socks.add(s);
    s.on('data', (d: Buffer) => {
      chunks.push(d);
      s.write(d);
    });
    s.on('end', () => {
      ended++;
      s.end();
    });
    s.on('error', () => {});
    s.on('close', () => socks.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as net.AddressInfo).port,
    accepted: () => accepted,
    received: () => Buffer.concat(chunks),
    ended: () => ended,
    close: () =>
      new Promise<void>((r) => {
        for (const s of socks) s.destroy();
        server.close(() => r());
      }),
  };
}

interface Client {
  sock: net.Socket;
  data: () => Buffer;
  ended: () => boolean;
  closedWith: () => string | null;
}

function connect(port: number): Promise<Client> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let ended = false;
    let closedWith: string | null = null;
    const sock = net.connect({ host: '127.0.0.1', port, allowHalfOpen: true });
    sock.on('data', (d: Buffer) => chunks.push(d));
    sock.on('end', () => (ended = true));
    sock.on('error', (err: NodeJS.ErrnoException) => (closedWith = err.code ?? err.message));
    sock.on('close', () => (closedWith ??= 'closed'));
    sock.once('connect', () => resolve({ sock, data: () => Buffer.concat(chunks), ended: () => ended, closedWith: () => closedWith }));
    sock.once('error', reject);
  });
}

async function until(what: string, fn: () => boolean, timeoutMs = 2000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!fn()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

describe('fault proxy', () => {
  const cleanups: (() => Promise<void> | void)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });
  const setup = async (extra: Partial<FaultProxyOptions> = {}) => {
    const target = await startTarget();
    const proxy = await startFaultProxy({ target: { host: '127.0.0.1', port: target.port }, ...extra });
    cleanups.push(() => target.close(), () => proxy.close());
    const client = async (): Promise<Client> => {
      const c = await connect(proxy.port);
      cleanups.push(() => void c.sock.destroy());
      return c;
    };
    return { target, proxy, client };
  };

  it('forwards both ways, half-closes in order, and listens on loopback only', async () => {
    const { target, proxy, client } = await setup();
    expect(proxy.url).toBe(`127.0.0.1:${proxy.port}`);
    const c = await client();
    c.sock.write('hello');
    await until('echo', () => c.data().toString() === 'hello');
    c.sock.end('!');
    await until('target saw the end after the data', () => target.ended() === 1);
    expect(target.received().toString()).toBe('hello!');
    await until('client sees the echo and the end', () => c.ended());
    expect(c.data().toString()).toBe('hello!');
    await expect(startFaultProxy({ host: '0.0.0.0', target: { host: '127.0.0.1', port: target.port } })).rejects.toThrow(/non-loopback/);
  });

  it('blackhole(): live connections hang, new ones are held without reaching the target; pass() delivers everything in order', async () => {
    const { target, proxy, client } = await setup();
    const live = await client();
    live.sock.write('a');
    await until('first echo', () => live.data().toString() === 'a');
    proxy.blackhole();
    expect(proxy.faulty).toBe(true);
    live.sock.write('b');
    live.sock.write('c');
    const fresh = await client(); // the TCP handshake completes: the proxy accepted it
    fresh.sock.write('x');
    await sleep(200);
    expect(target.received().toString()).toBe('a');
    expect(target.accepted()).toBe(1);
    expect(live.data().toString()).toBe('a');
    expect(live.closedWith()).toBeNull();
    expect(proxy.connections().filter((c) => c.held)).toHaveLength(1);

    proxy.pass();
    expect(proxy.faulty).toBe(false);
    await until('held bytes delivered', () => live.data().toString() === 'abc' && fresh.data().toString() === 'x');
    expect(target.accepted()).toBe(2);
  });

  it("blackhole({ direction: 'down' }): requests reach the target, responses do not come back until pass()", async () => {
    const { target, proxy, client } = await setup();
    const c = await client();
    proxy.blackhole({ direction: 'down' });
    c.sock.write('req');
    await until('target got the request', () => target.received().toString() === 'req');
    await sleep(150);
    expect(c.data().length).toBe(0);
    proxy.pass();
    await until('response delivered', () => c.data().toString() === 'req');
  });

  it("blackhole({ direction: 'up' }): nothing reaches the target; its own writes still arrive", async () => {
    const { target, proxy, client } = await setup();
    const c = await client();
    c.sock.write('1');
    await until('echo', () => c.data().toString() === '1');
    proxy.blackhole({ direction: 'up' });
    c.sock.write('2');
    await sleep(150);
    expect(target.received().toString()).toBe('1');
    proxy.pass();
    await until('delivered', () => c.data().toString() === '12');
  });

  it('refuse(): new connections are reset, live ones keep working; drop(): live ones are reset', async () => {
    const { target, proxy, client } = await setup();
    const live = await client();
    proxy.refuse();
    // Reset right after the handshake: depending on timing, before or after 'connect' fires.
    const refused = await new Promise<string>((resolve) => {
      const s = net.connect({ host: '127.0.0.1', port: proxy.port });
      s.on('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
      s.on('close', () => resolve('closed'));
    });
    expect(refused).toMatch(/ECONNRESET|closed/);
    expect(target.accepted()).toBe(1);
    live.sock.write('still');
    await until('live echo', () => live.data().toString() === 'still');
    expect(proxy.stats().refused).toBe(1);

    expect(proxy.drop()).toBe(1);
    await until('live connection reset', () => live.closedWith() !== null);
    expect(live.closedWith()).toMatch(/ECONNRESET|closed/);
    proxy.pass();
    const again = await client();
    again.sock.write('ok');
    await until('works after pass()', () => again.data().toString() === 'ok');
  });

  it('rules per identified source: blackhole({ from }) stalls only that source', async () => {
    const tags = new Map<number, string>();
    const { proxy, client } = await setup({
      identify: async (sock) => {
        for (let i = 0; i < 100 && !tags.has(sock.remotePort!); i++) await sleep(2);
        return tags.get(sock.remotePort!);
      },
    });
    const a = await client();
    tags.set(a.sock.localPort!, 'a');
    const b = await client();
    tags.set(b.sock.localPort!, 'b');
    await until('both identified', () => proxy.connections().filter((c) => c.source !== undefined).length === 2);
    proxy.blackhole({ from: 'a' });
    a.sock.write('A');
    b.sock.write('B');
    await until('b answered', () => b.data().toString() === 'B');
    await sleep(100);
    expect(a.data().length).toBe(0);
    expect(proxy.connections().find((c) => c.source === 'a')?.blockedUp).toBe(true);
    proxy.pass({ from: 'a' });
    await until('a answered', () => a.data().toString() === 'A');
  });

  it('a dead target looks like a dead host: the client is reset; setTarget() re-points new connections', async () => {
    const { target, proxy, client } = await setup();
    const c = await client();
    await target.close();
    await until('client reset after the target died', () => c.closedWith() !== null || c.ended());
    const fresh = await client();
    await until('new connection reset', () => fresh.closedWith() !== null || fresh.ended());

    const second = await startTarget();
    cleanups.push(() => second.close());
    proxy.setTarget(second.port);
    const d = await client();
    d.sock.write('moved');
    await until('echo from the new target', () => d.data().toString() === 'moved');
  });

  it('carries 8 MiB both ways under backpressure, across a blackhole, byte-exact', async () => {
    const { proxy, client } = await setup();
    const c = await client();
    const payload = randomBytes(8 << 20);
    const digest = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
    let sent = 0;
    const pump = async (): Promise<void> => {
      while (sent < payload.length) {
        const chunk = payload.subarray(sent, sent + (256 << 10));
        sent += chunk.length;
        if (!c.sock.write(chunk)) await new Promise((r) => c.sock.once('drain', r));
        if (sent === 4 << 20) {
          proxy.blackhole();
          setTimeout(() => proxy.pass(), 100);
        }
      }
    };
    await pump();
    await until('all echoed', () => c.data().length === payload.length, 20_000);
    expect(digest(c.data())).toBe(digest(payload));
    expect(proxy.stats().bytesUp).toBe(payload.length);
    expect(proxy.stats().bytesDown).toBe(payload.length);
  });

  it('close() resets live connections, stops listening, and is idempotent', async () => {
    const { proxy, client } = await setup();
    const c = await client();
    await proxy.close();
    await proxy.close();
    await until('client reset', () => c.closedWith() !== null);
    await expect(connect(proxy.port)).rejects.toThrow(/ECONNREFUSED/);
  });
});
