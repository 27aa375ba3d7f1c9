// The Neon serverless driver's Pool, configured the same way in Lambda and in the local stack:
// Postgres over a WebSocket. In Lambda the WebSocket goes to Neon's own proxy (wss://<host>/v2);
// locally it goes through a loopback WebSocket→TCP proxy (scripts/lib/wsproxy.ts), handed to the
// driver as `neonWsProxy` ("127.0.0.1:<port>/v2"), to which the driver appends
// `?address=<db host>:<db port>`.
//
// The proxy settings are applied per client (through a Client subclass installed as the pool's
// Client) rather than on the global `neonConfig`, so pools with and without a proxy can coexist
// in one process (tests, tools) without one silently reconfiguring the other. The only global
// setting is the WebSocket constructor: Node 20 has no global WebSocket.
import ws from 'ws';
import { Client, Pool, neonConfig } from '@neondatabase/serverless';
import type { ClientConfig } from '@neondatabase/serverless';

export interface CreatePoolOptions {
  databaseUrl: string;
  /** host:port/path of a WebSocket-to-Postgres proxy (local stack only), e.g. "127.0.0.1:40123/v2". */
  neonWsProxy?: string | undefined;
  /** Pool size. Default 10. */
  max?: number;
  /** How long pool.connect()/query() waits for a connection. Default 10 000 ms. */
  connectionTimeoutMillis?: number;
  /** How long an idle client stays open. Default 10 000 ms (pg default). */
  idleTimeoutMillis?: number;
  /**
   * Called for connection errors that happen outside a query: an idle pooled client whose
   * WebSocket died (typically after a Lambda freeze) or a checked-out client dropped between
   * queries. The broken client is discarded and the next query opens a new one. Default: a
   * one-line console.warn.
   */
  onError?: (err: Error) => void;
}

const defaultOnError = (err: Error): void => {
  console.warn(`database connection error (discarded, will reconnect): ${err.message}`);
};

// Node 20 has no global WebSocket; ws is API-compatible for the driver's needs.
if (neonConfig.webSocketConstructor === undefined) {
  neonConfig.webSocketConstructor = ws as unknown as NonNullable<typeof neonConfig.webSocketConstructor>;
}

/** A driver Client bound to the given proxy (when any) and protected against 'error' crashes. */
function clientClass(neonWsProxy: string | undefined, onError: (err: Error) => void): typeof Client {
  return class CircuitryClient extends Client {
    constructor(config?: string | ClientConfig) {
      super(config);
      // `neonConfig` is the per-connection socket; its settings override the global defaults.
      const c = this.neonConfig;
      c.webSocketConstructor ??= ws as unknown as NonNullable<typeof c.webSocketConstructor>;
      if (neonWsProxy !== undefined && neonWsProxy !== '') {
        c.wsProxy = neonWsProxy; // the driver appends ?address=host:port (Neon's wsproxy convention)
        c.useSecureWebSocket = false; // plain ws:// to a loopback proxy
        c.pipelineConnect = false; // plain request/response startup (DESIGN §6); works with any auth method
        c.pipelineTLS = false;
        c.forceDisablePgSSL = true; // no TLS inside the tunnel either
      }
      // The driver coalesces writes with setTimeout(0), which Node rounds up to 1 ms: every query
      // then waits 1 ms before it is sent (measured: SELECT 1 1.67 ms -> 0.55 ms without it).
      // Sending each message at once costs more WebSocket frames but no extra round trip.
      c.coalesceWrites = false;
      // Without a listener, a connection that dies while the client is checked out (between
      // queries) would throw an unhandled 'error' and crash the process. The client is then
      // unusable; its next query fails and pg-pool discards it on release.
      this.on('error', onError);
    }
  };
}

/** Creates the driver Pool for the given database (one per cold start; reuse it). */
export function createPool(opts: CreatePoolOptions): Pool {
  const onError = opts.onError ?? defaultOnError;
  const pool = new Pool({
    connectionString: opts.databaseUrl,
    max: opts.max ?? 10,
    connectionTimeoutMillis: opts.connectionTimeoutMillis ?? 10_000,
    idleTimeoutMillis: opts.idleTimeoutMillis ?? 10_000,
  });
  // pg-pool instantiates `this.Client` for each new connection; the Neon Pool sets that field
  // itself after construction (so the `Client` pool option is ignored), hence the assignment.
  pool.Client = clientClass(opts.neonWsProxy, onError);
  // Idle client errors (e.g. the WebSocket died during a freeze) are emitted on the pool; without
  // a listener they would crash the process. pg-pool has already removed the client, and the
  // client's own listener (above) has reported the error, so there is nothing left to do.
  pool.on('error', () => {});
  return pool;
}

/** A single driver Client with the same configuration (caller connects and ends it). */
export function createClient(opts: Pick<CreatePoolOptions, 'databaseUrl' | 'neonWsProxy' | 'onError'>): Client {
  const Cls = clientClass(opts.neonWsProxy, opts.onError ?? defaultOnError);
  return new Cls({ connectionString: opts.databaseUrl });
}
