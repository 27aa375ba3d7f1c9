// Fake backends for the health sweeps: HTTP servers on 127.0.0.1 whose /health flips between
// 200 and 503 on a seeded schedule (each with its own period and latency). Backend 0 is always
// healthy and the last one always failing, so every health state (all up, some up, panic) occurs.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { rngFor } from './rng.js';

export interface FlippingBackend {
  index: number;
  port: number;
  periodMs: number;
  latencyMs: number;
  healthy(at: number): boolean;
}

export interface Backends {
  list: FlippingBackend[];
  ports: number[];
  /** Requests answered so far. */
  requests(): number;
  /** Stop flipping: every backend keeps the state it has now (for the final sweep). */
  freeze(): void;
  close(): Promise<void>;
}

export async function startBackends(seed: string, count: number): Promise<Backends> {
  const t0 = Date.now();
  let frozenAt: number | null = null;
  let requests = 0;
  const servers: http.Server[] = [];
  const list: FlippingBackend[] = [];
  for (let b = 0; b < count; b++) {
    const r = rngFor(seed, 'backend', b);
    const periodMs = r.int(400, 2500);
    const offset = r.int(0, periodMs * 2);
    const latencyMs = r.int(2, 30);
    const always = b === 0 ? true : b === count - 1 && count > 2 ? false : null;
    const healthy = (at: number): boolean => always ?? Math.floor((Math.min(at, frozenAt ?? at) - t0 + offset) / periodMs) % 2 === 0;
    const server = http.createServer((req, res) => {
      requests++;
      const ok = req.url?.startsWith('/health') ? healthy(Date.now()) : true;
      const t = setTimeout(() => res.writeHead(ok ? 200 : 503, { 'content-type': 'text/plain' }).end(ok ? 'ok' : 'down'), latencyMs);
      res.on('close', () => clearTimeout(t));
    });
    server.keepAliveTimeout = 5000;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve());
    });
    servers.push(server);
    list.push({ index: b, port: (server.address() as AddressInfo).port, periodMs, latencyMs, healthy });
  }
  return {
    list,
    ports: list.map((b) => b.port),
    requests: () => requests,
    freeze: () => {
      frozenAt ??= Date.now();
    },
    close: async () => {
      await Promise.all(
        servers.map(
          (s) =>
            new Promise<void>((resolve) => {
              s.close(() => resolve());
              s.closeAllConnections();
            }),
        ),
      );
    },
  };
}
