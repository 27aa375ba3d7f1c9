// A loopback WebSocket→TCP proxy speaking Neon's wsproxy convention, so local code reaches
// PostgreSQL through `@neondatabase/serverless` over a WebSocket exactly as in Lambda.
//
// The driver connects to `ws://<wsProxy>?address=<db host>:<db port>`; every binary frame it sends
// is written to a TCP socket opened to that address, and every chunk read from the socket goes
// back as one binary frame. Only loopback targets are allowed (127.0.0.0/8, ::1, localhost):
// anything else is refused with close code 1008 (policy violation).
//
// Besides the WebSocket path, the HTTP server answers `POST /_admin/drop-all` (→ dropAll()) so a
// test worker in another process can simulate dropped DB connections on a shared proxy.
import http from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { WebSocketServer, WebSocket } from 'ws';
import type { RawData } from 'ws';

export interface WsProxyOptions {
  host?: string;
  port?: number;
  /** Path of the WebSocket endpoint; the driver's wsProxy string ends with it. Default '/v2'. */
  path?: string;
  /** Called with one line per notable event (refusals, upstream errors). Default: silent. */
  log?: (line: string) => void;
}

export interface WsProxy {
  port: number;
  /** host:port/path, without protocol, as the Neon driver's `wsProxy` expects ("127.0.0.1:<port>/v2"). */
  url: string;
  /** Number of live proxied connections. */
  connections(): number;
  /** Destroys every live connection (both the WebSocket and its TCP socket); keeps listening. */
  dropAll(): void;
  /** Stops listening and ends everything; idempotent. */
  close(): Promise<void>;
}

/** Policy close code (RFC 6455 §7.4.1). */
export const CLOSE_POLICY_VIOLATION = 1008;
const CLOSE_UPSTREAM_GONE = 1011;
/** Pause the TCP side while this many bytes wait in the WebSocket's send buffer. */
const HIGH_WATER_MARK = 1 << 20;

interface Target {
  host: string;
  port: number;
}

/** Parses "host:port" / "[v6]:port"; null when malformed. */
export function parseAddress(address: string): Target | null {
  const m = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(address.trim());
  if (!m) return null;
  const host = (m[1] ?? m[2] ?? '').toLowerCase();
  const port = Number(m[3]);
  if (host.length === 0 || !Number.isInteger(port) || port < 1 || port > 65535) return null;
  return { host, port };
}

/** True for 127.0.0.0/8, ::1 (and ::ffff:127.x.y.z) and "localhost". */
export function isLoopbackHost(host: string): boolean {
  const h = host.toLowerCase();
  if (h === 'localhost') return true;
  if (net.isIPv4(h)) return h.split('.')[0] === '127';
  if (net.isIPv6(h)) {
    if (h === '::1' || h === '0:0:0:0:0:0:0:1') return true;
    const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(h);
    return mapped !== null && net.isIPv4(mapped[1] ?? '') && (mapped[1] ?? '').startsWith('127.');
  }
  return false;
}

export async function startWsProxy(opts: WsProxyOptions = {}): Promise<WsProxy> {
  const host = opts.host ?? '127.0.0.1';
  const port = opts.port ?? 0;
  const path = opts.path ?? '/v2';
  const log = opts.log ?? (() => {});

  const live = new Map<WebSocket, net.Socket | null>();
  let closed = false;

  const dropOne = (ws: WebSocket): void => {
    const sock = live.get(ws);
    live.delete(ws);
    sock?.destroy();
    ws.terminate();
  };
  const dropAll = (): void => {
    for (const ws of [...live.keys()]) dropOne(ws);
  };

  const server = http.createServer((req, res) => {
    if (req.method === 'POST' && req.url === '/_admin/drop-all') {
      const n = live.size;
      dropAll();
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ dropped: n }));
      return;
    }
    res.writeHead(426, { 'content-type': 'text/plain' }).end(`WebSocket endpoint is ${path}\n`);
  });
  const wss = new WebSocketServer({ server, path, perMessageDeflate: false });

  wss.on('connection', (ws, req) => {
    if (closed) {
      ws.terminate();
      return;
    }
    const query = new URL(req.url ?? '/', 'http://proxy.invalid').searchParams;
    const address = query.get('address') ?? '';
    const target = parseAddress(address);
    if (!target || !isLoopbackHost(target.host)) {
      log(`wsproxy: refused address ${JSON.stringify(address)} (only loopback targets are allowed)`);
      ws.close(CLOSE_POLICY_VIOLATION, target ? 'address not allowed: loopback only' : 'missing or malformed address');
      return;
    }

    const sock = net.connect({ host: target.host, port: target.port });
    sock.setNoDelay(true);
    live.set(ws, sock);

    // WebSocket → TCP. Writes before 'connect' are buffered by the socket.
    ws.on('message', (data: RawData) => {
      const chunks = Array.isArray(data) ? data : [data instanceof ArrayBuffer ? Buffer.from(data) : data];
      let ok = true;
      for (const chunk of chunks) ok = sock.write(chunk) && ok;
      if (!ok) {
        ws.pause();
        sock.once('drain', () => ws.resume());
      }
    });
    // TCP → WebSocket, one binary frame per chunk, pausing the socket under backpressure.
    sock.on('data', (chunk: Buffer) => {
      if (ws.readyState !== WebSocket.OPEN) return;
      ws.send(chunk, { binary: true }, () => {
        if (sock.isPaused() && ws.bufferedAmount < HIGH_WATER_MARK) sock.resume();
      });
      if (ws.bufferedAmount >= HIGH_WATER_MARK) sock.pause();
    });

    // Each side closes the other.
    const fromSocket = (why: string) => () => {
      if (!live.has(ws)) return;
      live.delete(ws);
      if (ws.readyState === WebSocket.OPEN || ws.readyState === WebSocket.CONNECTING) {
        ws.close(why === 'end' ? 1000 : CLOSE_UPSTREAM_GONE, why === 'end' ? 'upstream closed' : 'upstream error');
        // Do not wait forever for the peer's close frame.
        setTimeout(() => ws.terminate(), 1000).unref();
      }
    };
    sock.on('error', (err) => {
      log(`wsproxy: upstream ${address}: ${err.message}`);
      fromSocket('error')();
      sock.destroy();
    });
    sock.on('close', fromSocket('end'));
    ws.on('close', () => {
      live.delete(ws);
      sock.end();
      // Give the half-close a moment, then make sure the socket is gone.
      setTimeout(() => sock.destroy(), 1000).unref();
    });
    ws.on('error', (err) => {
      log(`wsproxy: websocket error: ${err.message}`);
      live.delete(ws);
      sock.destroy();
      ws.terminate();
    });
  });
  // Refused/errored upgrades must not crash the process.
  wss.on('error', (err) => log(`wsproxy: server error: ${err.message}`));

  await new Promise<void>((resolve, reject) => {
    const onError = (err: Error): void => reject(err);
    server.once('error', onError);
    server.listen(port, host, () => {
      server.off('error', onError);
      resolve();
    });
  });
  server.on('error', (err) => log(`wsproxy: http server error: ${err.message}`));
  const boundPort = (server.address() as AddressInfo).port;
  const urlHost = net.isIPv6(host) ? `[${host}]` : host;

  let closing: Promise<void> | null = null;
  const close = (): Promise<void> => {
    if (closing) return closing;
    closed = true;
    dropAll();
    for (const client of wss.clients) client.terminate();
    closing = new Promise<void>((resolve) => {
      wss.close(() => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    });
    return closing;
  };

  return {
    port: boundPort,
    url: `${urlHost}:${boundPort}${path}`,
    connections: () => live.size,
    dropAll,
    close,
  };
}
