// A controllable TCP proxy on 127.0.0.1 that injects network faults in user space (no iptables,
// no tc): put one in front of a server port, hand the proxy's address to whoever should suffer
// the faults, and switch its behaviour at run time.
//
//   const p = await startFaultProxy({ target: { host: '127.0.0.1', port: 2379 } });
//   p.url                       // "127.0.0.1:<port>": connect here instead of the target
//   p.blackhole()               // every connection (live and new) hangs: nothing is forwarded
//   p.blackhole({ direction: 'down' })   // requests reach the target, responses never come back
//   p.blackhole({ from: 'm1' }) // only connections whose source was identified as 'm1'
//   p.pass() / p.pass({ from: 'm1' })    // forward again (held bytes are delivered, in order)
//   p.refuse()                  // new connections are reset right after accept (port "closed")
//   p.drop()                    // reset every live connection now (both sides see ECONNRESET)
//   p.setTarget(port)           // re-point future connections (the server moved ports)
//   p.connections(), p.stats(), await p.close()
//
// Semantics, chosen to behave like a real partition rather than like a lossy pipe:
// - "blackhole" stops *reading* the blocked direction (the socket is paused), so no byte is lost
//   or reordered: the kernel buffers fill, the sender's writes eventually block, and nobody gets
//   an error until their own timeouts fire. A new connection accepted while blocked is held
//   without connecting upstream at all (the SYN "never arrived"). pass() resumes everything,
//   like a healed network delivering its retransmissions; half-closes (FIN) and resets travel
//   in order with the data, so a peer that gave up during the partition is seen as gone only
//   after the heal.
// - Directions: 'up' is client→target (requests), 'down' is target→client (responses);
//   'both' (default) is both.
// - Sources: with `identify`, each accepted connection is given a source tag before anything is
//   forwarded (etcd-cluster.ts maps the connecting socket to the etcd member process that owns
//   it), and rules with `from` apply to that source only. Unidentified connections follow only
//   the proxy-wide rules.
// - An upstream that refuses or resets the connection makes the proxy reset the client side,
//   so a dead target looks like a dead host with a closed port.
import net from 'node:net';
import type { AddressInfo } from 'node:net';

export type Direction = 'both' | 'up' | 'down';

export interface FaultProxyOptions {
  /** Where connections are forwarded. */
  target: { host: string; port: number };
  /** Listen address; only loopback is allowed. Default 127.0.0.1, port 0 (any free port). */
  host?: string;
  port?: number;
  /** A label for log lines. */
  name?: string;
  /** Tags a new connection with its source (e.g. an etcd member name); undefined = unknown. */
  identify?: (socket: net.Socket) => Promise<string | undefined> | string | undefined;
  log?: (line: string) => void;
}

export interface ConnectionInfo {
  source: string | undefined;
  /** Bytes forwarded client→target and target→client. */
  bytesUp: number;
  bytesDown: number;
  /** Date.now() of the last byte forwarded in either direction. */
  lastActivity: number;
  /** Whether each direction is currently blocked for this connection. */
  blockedUp: boolean;
  blockedDown: boolean;
  /** True while the connection is held without an upstream connection. */
  held: boolean;
}

export interface FaultProxyStats {
  accepted: number;
  refused: number;
  dropped: number;
  upstreamErrors: number;
  bytesUp: number;
  bytesDown: number;
}

export interface FaultProxy {
  readonly name: string;
  readonly host: string;
  readonly port: number;
  /** host:port of the proxy. */
  readonly url: string;
  readonly target: { host: string; port: number };
  /** Future connections go to this port (live ones stay where they are). */
  setTarget(port: number, host?: string): void;
  /** Forwards again. Without `from`: clears every rule (proxy-wide and per source) and refusal. */
  pass(opts?: { from?: string }): void;
  /** Stops forwarding in the given direction(s), for everyone or for one source. Cumulative. */
  blackhole(opts?: { direction?: Direction; from?: string }): void;
  /** Resets new connections right after accept. Live connections are untouched (see drop()). */
  refuse(): void;
  /** Resets every live connection (client and upstream side); returns how many. */
  drop(): number;
  /** True when anything is blocked or refused. */
  readonly faulty: boolean;
  connections(): ConnectionInfo[];
  stats(): FaultProxyStats;
  /** Stops listening and resets every connection; idempotent. */
  close(): Promise<void>;
}

interface Blocks {
  up: boolean;
  down: boolean;
}

const isLoopback = (h: string): boolean => h === 'localhost' || h === '::1' || (net.isIPv4(h) && h.startsWith('127.'));

/** One proxied connection: client socket `c`, upstream socket `u` (null until connected). */
class Link {
  u: net.Socket | null = null;
  source: string | undefined;
  readonly upQ: Buffer[] = [];
  readonly downQ: Buffer[] = [];
  blockedUp = false;
  blockedDown = false;
  /** The client sent FIN / reset (to be forwarded in order with the data). */
  cEnded = false;
  cReset = false;
  uEnded = false;
  uReset = false;
  upEndSent = false;
  downEndSent = false;
  bytesUp = 0;
  bytesDown = 0;
  lastActivity = Date.now();
  done = false;
  /** A 'drain' listener is registered on u (up) / c (down): at most one each. */
  drainUp = false;
  drainDown = false;

  constructor(readonly c: net.Socket) {}
}

export async function startFaultProxy(opts: FaultProxyOptions): Promise<FaultProxy> {
  const host = opts.host ?? '127.0.0.1';
  if (!isLoopback(host)) throw new Error(`fault proxy: refusing to listen on non-loopback address ${host}`);
  const name = opts.name ?? 'proxy';
  const log = opts.log ?? (() => {});
  let target = { ...opts.target };
  let refusing = false;
  let closed = false;
  const global: Blocks = { up: false, down: false };
  const bySource = new Map<string, Blocks>();
  const links = new Set<Link>();
  const st: FaultProxyStats = { accepted: 0, refused: 0, dropped: 0, upstreamErrors: 0, bytesUp: 0, bytesDown: 0 };

  const blocksFor = (l: Link): Blocks => {
    const s = l.source !== undefined ? bySource.get(l.source) : undefined;
    return { up: global.up || (s?.up ?? false), down: global.down || (s?.down ?? false) };
  };

  /** Forgets a connection; with `destroy`, also tears down whatever is left of its sockets. */
  const finish = (l: Link, destroy: boolean): void => {
    if (l.done) return;
    l.done = true;
    links.delete(l);
    if (!destroy) return; // both sides ended gracefully: the sockets close themselves once flushed
    if (!l.c.destroyed) l.c.destroy();
    if (l.u && !l.u.destroyed) l.u.destroy();
  };

  const reset = (s: net.Socket | null): void => {
    if (!s || s.destroyed) return;
    try {
      s.resetAndDestroy();
    } catch {
      s.destroy();
    }
  };

  const connectUpstream = (l: Link): void => {
    const u = net.connect({ host: target.host, port: target.port, allowHalfOpen: true });
    u.setNoDelay(true);
    l.u = u;
    u.on('data', (chunk: Buffer) => {
      if (l.c.destroyed && !l.blockedDown) return; // the client is gone; refresh() resets u
      if (l.blockedDown || l.downQ.length > 0) {
        l.downQ.push(chunk);
        u.pause();
        return;
      }
      forwardDown(l, chunk);
    });
    u.on('end', () => {
      l.uEnded = true;
      refresh(l);
    });
    u.on('error', (err: NodeJS.ErrnoException) => {
      st.upstreamErrors++;
      if (err.code !== 'ECONNRESET' && err.code !== 'ECONNREFUSED' && err.code !== 'EPIPE') log(`${name}: upstream ${target.port}: ${err.message}`);
      l.uReset = true;
      refresh(l);
    });
    u.on('close', () => {
      if (!l.uEnded) l.uReset = true;
      refresh(l);
    });
  };

  const forwardUp = (l: Link, chunk: Buffer): void => {
    l.bytesUp += chunk.length;
    st.bytesUp += chunk.length;
    l.lastActivity = Date.now();
    const u = l.u!;
    if (!u.write(chunk)) {
      l.c.pause();
      if (!l.drainUp) {
        l.drainUp = true;
        u.once('drain', () => {
          l.drainUp = false;
          refresh(l);
        });
      }
    }
  };

  const forwardDown = (l: Link, chunk: Buffer): void => {
    l.bytesDown += chunk.length;
    st.bytesDown += chunk.length;
    l.lastActivity = Date.now();
    if (!l.c.write(chunk)) {
      l.u?.pause();
      if (!l.drainDown) {
        l.drainDown = true;
        l.c.once('drain', () => {
          l.drainDown = false;
          refresh(l);
        });
      }
    }
  };

  /** Re-evaluates a connection after a rule change or an event: flush, pause/resume, close. */
  const refresh = (l: Link): void => {
    if (l.done) return;
    const b = blocksFor(l);
    l.blockedUp = b.up;
    l.blockedDown = b.down;

    // client → target
    if (!l.blockedUp) {
      if (l.u === null) {
        // The client gave up while held: there is nothing to deliver to the target.
        if (l.cReset || (l.cEnded && l.upQ.length === 0)) {
          finish(l, true);
          return;
        }
        connectUpstream(l);
      }
      const u = l.u!;
      if (!u.destroyed) {
        while (l.upQ.length > 0 && !u.writableNeedDrain) forwardUp(l, l.upQ.shift()!);
        if (l.upQ.length === 0 && !l.upEndSent && (l.cEnded || l.cReset)) {
          l.upEndSent = true;
          if (l.cReset) reset(u);
          else u.end();
        }
      }
      if (!l.upEndSent && !u.writableNeedDrain) l.c.resume();
    } else {
      l.c.pause();
    }

    // target → client
    if (!l.blockedDown && l.u !== null) {
      while (l.downQ.length > 0 && !l.c.writableNeedDrain && !l.c.destroyed) forwardDown(l, l.downQ.shift()!);
      if (l.downQ.length === 0 && !l.downEndSent && (l.uEnded || l.uReset)) {
        l.downEndSent = true;
        if (l.uReset) reset(l.c);
        else l.c.end();
      }
      if (!l.downEndSent && !l.c.writableNeedDrain && l.downQ.length === 0) l.u.resume();
    } else {
      l.u?.pause();
    }

    if (l.c.destroyed && (l.u === null || l.u.destroyed)) finish(l, true);
    else if (l.upEndSent && l.downEndSent) finish(l, false);
  };

  const server = net.createServer({ allowHalfOpen: true, pauseOnConnect: true }, (c) => {
    if (closed || refusing) {
      st.refused++;
      reset(c);
      return;
    }
    st.accepted++;
    c.setNoDelay(true);
    const l = new Link(c);
    c.on('error', () => {
      l.cReset = true;
      refresh(l);
    });
    c.on('end', () => {
      l.cEnded = true;
      refresh(l);
    });
    c.on('close', () => {
      if (!l.cEnded) l.cReset = true;
      refresh(l);
    });
    c.on('data', (chunk: Buffer) => {
      if (l.u?.destroyed === true && !l.blockedUp) return; // the target is gone; refresh() resets us
      if (l.blockedUp || l.u === null || l.upQ.length > 0) {
        l.upQ.push(chunk);
        c.pause();
        return;
      }
      forwardUp(l, chunk);
    });
    const admit = (source: string | undefined): void => {
      l.source = source;
      if (closed || c.destroyed) {
        reset(c);
        return;
      }
      links.add(l);
      refresh(l);
    };
    if (!opts.identify) {
      admit(undefined);
      return;
    }
    Promise.resolve()
      .then(() => opts.identify!(c))
      .then(admit, (err: Error) => {
        log(`${name}: could not identify a connection: ${err.message}`);
        admit(undefined);
      });
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  server.on('error', (err) => log(`${name}: server error: ${err.message}`));
  const port = (server.address() as AddressInfo).port;

  const refreshAll = (): void => {
    for (const l of [...links]) refresh(l);
  };

  const drop = (): number => {
    const n = links.size;
    for (const l of [...links]) {
      l.done = true;
      links.delete(l);
      reset(l.c);
      reset(l.u);
    }
    st.dropped += n;
    return n;
  };

  let closing: Promise<void> | null = null;

  return {
    name,
    host,
    port,
    url: `${host}:${port}`,
    get target() {
      return { ...target };
    },
    setTarget(p: number, h?: string) {
      target = { host: h ?? target.host, port: p };
    },
    pass(o = {}) {
      if (o.from === undefined) {
        global.up = false;
        global.down = false;
        bySource.clear();
        refusing = false;
      } else {
        bySource.delete(o.from);
      }
      refreshAll();
    },
    blackhole(o = {}) {
      const d = o.direction ?? 'both';
      const b: Blocks = o.from === undefined ? global : (bySource.get(o.from) ?? { up: false, down: false });
      if (d === 'both' || d === 'up') b.up = true;
      if (d === 'both' || d === 'down') b.down = true;
      if (o.from !== undefined) bySource.set(o.from, b);
      refreshAll();
    },
    refuse() {
      refusing = true;
    },
    drop,
    get faulty() {
      return refusing || global.up || global.down || [...bySource.values()].some((b) => b.up || b.down);
    },
    connections() {
      return [...links].map((l) => ({
        source: l.source,
        bytesUp: l.bytesUp,
        bytesDown: l.bytesDown,
        lastActivity: l.lastActivity,
        blockedUp: l.blockedUp,
        blockedDown: l.blockedDown,
        held: l.u === null,
      }));
    },
    stats: () => ({ ...st }),
    close() {
      closing ??= new Promise<void>((resolve) => {
        closed = true;
        drop();
        server.close(() => resolve());
      });
      return closing;
    },
  };
}
