// One health probe of one route. node:http directly (not fetch), so that we decide:
//   - where we connect: names are resolved ONCE, the resolved address is checked against
//     ALLOWED_BACKEND_CIDRS and the always-refused ranges, and that very address is the one we
//     connect to (the name only goes into the Host header);
//   - what we follow: nothing. A 3xx is just a status compared with expectedStatus, so a
//     redirect to 169.254.169.254 is never fetched;
//   - how long: one deadline per probe covers lookup, connect, headers and body;
//   - how much we read: the body is drained up to maxBodyBytes (to let the connection be
//     reused), beyond that the connection is destroyed.
// Connections are kept alive across sweeps through one Agent per prober, with a global cap on
// idle sockets so that thousands of routes do not hold thousands of descriptors (Lambda allows
// 1024); a probe whose connection the pool could not keep asks for `Connection: close` instead.
// TCP circuits are probed by connecting within the deadline.
import http from 'node:http';
import net from 'node:net';
import { lookup as dnsLookup } from 'node:dns/promises';
import type { Duplex } from 'node:stream';
import { checkAddress, parseCidr, type Cidr } from './address.js';

export interface ProbeTarget {
  protocol: 'http' | 'tcp';
  /** The route's host: an IPv4 literal or a DNS name. */
  host: string;
  port: number;
  path: string;
  timeoutMs: number;
  expectedStatus: number;
}

export interface ProbeResult {
  ok: boolean;
  error?: string;
  /** HTTP status received, when any. */
  statusCode?: number;
  /** The address connected to (or refused). */
  address?: string;
  /** Refused by the address policy: nothing was connected to. */
  refused?: boolean;
  durationMs: number;
}

export type Lookup = (host: string) => Promise<string[]>;

export interface ProberOptions {
  /** ALLOWED_BACKEND_CIDRS. */
  allowedCidrs: readonly string[];
  /** Bytes of response body read before the connection is dropped. Default 4096. */
  maxBodyBytes?: number;
  /** Idle keep-alive sockets kept across probes, all backends together. Default 256. */
  maxIdleSockets?: number;
  /** Name resolution (tests). Default: dns.lookup, all addresses, in resolver order. */
  lookup?: Lookup;
  userAgent?: string;
}

const defaultLookup: Lookup = async (host) => (await dnsLookup(host, { all: true, verbatim: true })).map((a) => a.address);

/** An Agent that keeps at most maxIdle idle sockets in total (Node only caps them per host). */
class BoundedAgent extends http.Agent {
  private readonly idle = new Map<Duplex, { key: string; onClose: () => void }>();
  private readonly idleByTarget = new Map<string, number>();

  constructor(
    readonly maxIdle: number,
    options: http.AgentOptions,
  ) {
    super(options);
  }

  get idleSockets(): number {
    return this.idle.size;
  }

  /** Whether a kept-alive socket to this `ip:port` is waiting to be reused. */
  hasIdle(target: string): boolean {
    return (this.idleByTarget.get(target) ?? 0) > 0;
  }

  private forget(socket: Duplex): void {
    const e = this.idle.get(socket);
    if (e === undefined) return;
    this.idle.delete(socket);
    socket.removeListener('close', e.onClose);
    const n = (this.idleByTarget.get(e.key) ?? 1) - 1;
    if (n > 0) this.idleByTarget.set(e.key, n);
    else this.idleByTarget.delete(e.key);
  }

  override keepSocketAlive(socket: Duplex): boolean {
    if (this.idle.size >= this.maxIdle) return false;
    // The base implementation sets TCP keepalive, unrefs the socket and returns true.
    if ((super.keepSocketAlive(socket) as unknown) === false) return false;
    const s = socket as net.Socket;
    const key = `${s.remoteAddress}:${s.remotePort}`;
    const onClose = () => this.forget(socket);
    this.idle.set(socket, { key, onClose });
    this.idleByTarget.set(key, (this.idleByTarget.get(key) ?? 0) + 1);
    socket.once('close', onClose);
    return true;
  }

  override reuseSocket(socket: Duplex, request: http.ClientRequest): void {
    this.forget(socket);
    super.reuseSocket(socket, request);
  }
}

class ProbeTimeout extends Error {
  constructor(ms: number) {
    super(`timed out after ${ms} ms`);
  }
}

const STALE_SOCKET_CODES = new Set(['ECONNRESET', 'EPIPE', 'ECONNABORTED']);

function describe(err: unknown): string {
  if (err instanceof ProbeTimeout) return err.message;
  const e = err as NodeJS.ErrnoException;
  switch (e.code) {
    case 'ECONNREFUSED':
      return 'connection refused';
    case 'ECONNRESET':
      return 'connection reset';
    case 'EHOSTUNREACH':
      return 'host unreachable';
    case 'ENETUNREACH':
      return 'network unreachable';
    case 'ENOTFOUND':
      return 'name not found';
    default:
      return (e.code ? `${e.code}: ` : '') + (e.message || 'probe failed');
  }
}

const clip = (s: string): string => (s.length > 240 ? `${s.slice(0, 237)}...` : s);

interface HttpAttempt {
  statusCode?: number;
  error?: unknown;
  reusedSocket: boolean;
}

export class Prober {
  private readonly allowed: Cidr[];
  private readonly agent: BoundedAgent;
  /** For connections the idle pool has no room for: `Connection: close`, no keep-alive bookkeeping. */
  private readonly closeAgent = new http.Agent({ keepAlive: false });
  /** Keep-alive requests in flight: they will want a place in the idle pool. */
  private keepAliveInFlight = 0;
  private readonly maxBodyBytes: number;
  private readonly lookup: Lookup;
  private readonly userAgent: string;

  constructor(opts: ProberOptions) {
    this.allowed = opts.allowedCidrs.map(parseCidr);
    this.maxBodyBytes = opts.maxBodyBytes ?? 4096;
    this.lookup = opts.lookup ?? defaultLookup;
    this.userAgent = opts.userAgent ?? 'circuitry-health/1';
    this.agent = new BoundedAgent(opts.maxIdleSockets ?? 256, {
      keepAlive: true,
      keepAliveMsecs: 1000,
      maxFreeSockets: 2,
      scheduling: 'lifo',
      // Idle sockets are dropped after this long (Node also honours a server's Keep-Alive hint).
      timeout: 30_000,
    });
  }

  /** Idle keep-alive sockets held right now. */
  get idleSockets(): number {
    return this.agent.idleSockets;
  }

  /** Never throws: every failure is a failed probe with a reason. */
  async probe(t: ProbeTarget): Promise<ProbeResult> {
    const started = performance.now();
    const deadline = started + t.timeoutMs;
    const elapsed = () => Math.round(performance.now() - started);
    const fail = (error: string, extra: Partial<ProbeResult> = {}): ProbeResult => ({
      ok: false,
      error: clip(error),
      durationMs: elapsed(),
      ...extra,
    });

    // 1. The one address we will connect to.
    let candidates: string[];
    if (net.isIP(t.host) !== 0) candidates = [t.host];
    else {
      try {
        candidates = await withDeadline(this.lookup(t.host), deadline, t.timeoutMs);
      } catch (err) {
        return fail(err instanceof ProbeTimeout ? `DNS lookup of ${t.host} ${err.message}` : `DNS lookup of ${t.host} failed: ${describe(err)}`);
      }
      if (candidates.length === 0) return fail(`DNS lookup of ${t.host} returned no address`);
    }
    // Every address the name resolves to must be allowed: Traefik may dial any of them, so a
    // name mixing an allowed address with, say, the metadata address is refused as a whole.
    const verdicts = candidates.map((c) => checkAddress(c, this.allowed));
    const refusedOne = verdicts.find((v) => !v.allowed);
    if (refusedOne !== undefined && !refusedOne.allowed) return fail(`refused: ${refusedOne.reason}`, { refused: true, address: refusedOne.address });
    const verdict = verdicts[0]!;
    if (!verdict.allowed) return fail(`refused: ${verdict.reason}`, { refused: true, address: verdict.address });
    const ip = verdict.address;

    // 2. The probe itself, to that address only.
    if (t.protocol === 'tcp') {
      const err = await tcpConnect(ip, t.port, deadline - performance.now(), t.timeoutMs);
      return err === undefined ? { ok: true, address: ip, durationMs: elapsed() } : fail(describe(err), { address: ip });
    }
    const hostHeader = t.port === 80 ? t.host : `${t.host}:${t.port}`;
    // Keep the connection only if it can be reused: an idle one to this target exists, or the
    // idle pool has room. Otherwise ask for `Connection: close` (cheaper than keeping, then dropping).
    const keep = this.agent.hasIdle(`${ip}:${t.port}`) || this.agent.idleSockets + this.keepAliveInFlight < this.agent.maxIdle;
    let attempt: HttpAttempt;
    if (keep) {
      this.keepAliveInFlight++;
      try {
        attempt = await this.httpOnce(ip, t, hostHeader, deadline, this.agent);
      } finally {
        this.keepAliveInFlight--;
      }
    } else attempt = await this.httpOnce(ip, t, hostHeader, deadline, this.closeAgent);
    // A kept-alive socket the server closed just as we reused it: retry once on a new connection.
    if (
      attempt.statusCode === undefined &&
      attempt.reusedSocket &&
      STALE_SOCKET_CODES.has((attempt.error as NodeJS.ErrnoException)?.code ?? '') &&
      deadline - performance.now() > 0
    ) {
      attempt = await this.httpOnce(ip, t, hostHeader, deadline, this.closeAgent);
    }
    if (attempt.statusCode === undefined) return fail(describe(attempt.error), { address: ip });
    if (attempt.statusCode !== t.expectedStatus) {
      return fail(`HTTP ${attempt.statusCode} (expected ${t.expectedStatus})`, { address: ip, statusCode: attempt.statusCode });
    }
    return { ok: true, address: ip, statusCode: attempt.statusCode, durationMs: elapsed() };
  }

  private httpOnce(ip: string, t: ProbeTarget, hostHeader: string, deadline: number, agent: http.Agent): Promise<HttpAttempt> {
    return new Promise<HttpAttempt>((resolve) => {
      let statusCode: number | undefined;
      let settled = false;
      const finish = (error?: unknown) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        resolve({ statusCode, error, reusedSocket: req.reusedSocket });
      };
      let req: http.ClientRequest;
      try {
        req = http.request({
          host: ip,
          family: 4,
          port: t.port,
          path: t.path,
          method: 'GET',
          agent,
          headers: { Host: hostHeader, 'User-Agent': this.userAgent, Accept: '*/*' },
          // Never consult a resolver here: ip is a literal, and it is the checked address.
          lookup: () => {
            throw new Error('unexpected name resolution');
          },
        });
      } catch (err) {
        // e.g. a path Node refuses to send: a failed probe, not an exception.
        settled = true;
        resolve({ error: err, reusedSocket: false });
        return;
      }
      const timer = setTimeout(() => {
        const err = new ProbeTimeout(t.timeoutMs);
        req.destroy(err);
        finish(err);
      }, Math.max(0, deadline - performance.now()));
      req.on('response', (res) => {
        statusCode = res.statusCode;
        let bytes = 0;
        res.on('data', (chunk: Buffer) => {
          bytes += chunk.length;
          if (bytes > this.maxBodyBytes) {
            // Enough: the status decided the outcome; do not read (or keep) the rest.
            req.destroy();
            finish();
          }
        });
        res.on('end', () => finish());
        res.on('error', () => finish());
        res.on('aborted', () => finish());
      });
      req.on('error', (err) => finish(err));
      req.on('close', () => finish(new Error('connection closed')));
      req.end();
    });
  }

  /** Closes every kept-alive connection. */
  close(): void {
    this.agent.destroy();
    this.closeAgent.destroy();
  }
}

function withDeadline<T>(p: Promise<T>, deadline: number, timeoutMs: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new ProbeTimeout(timeoutMs)), Math.max(0, deadline - performance.now()));
    p.then(
      (v) => {
        clearTimeout(timer);
        resolve(v);
      },
      (e: unknown) => {
        clearTimeout(timer);
        reject(e);
      },
    );
  });
}

function tcpConnect(ip: string, port: number, remainingMs: number, timeoutMs: number): Promise<unknown> {
  return new Promise((resolve) => {
    let settled = false;
    const sock = net.connect({ host: ip, port, family: 4 });
    const finish = (err?: unknown) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      sock.destroy();
      resolve(err);
    };
    const timer = setTimeout(() => finish(new ProbeTimeout(timeoutMs)), Math.max(0, remainingMs));
    sock.once('connect', () => finish());
    sock.once('error', (err) => finish(err));
    sock.once('close', () => finish(new Error('connection closed')));
  });
}
