// The static configuration one worker's Traefik needs to serve what circuitry publishes: the etcd
// provider reading the worker's root, an entry point per frontend port and one for wildcard
// subdomains, and a ping endpoint for the load balancer in front of it. Pure: the CLI writes it.
import { workerRoot } from './names.js';

/** The entry point a frontend's router is bound to; render.ts and the static configuration agree. */
export function entryPointOf(frontend: { mode: 'port'; port: number } | { mode: 'wildcard' }): string {
  return frontend.mode === 'port' ? `portproxy_${frontend.port}` : DOMAIN_ENTRY_POINT;
}
export const DOMAIN_ENTRY_POINT = 'domainproxy';
const PING_ENTRY_POINT = 'traefik';
/** Traefik starts one listener per entry point: a range beyond this is almost surely a typo. */
export const MAX_PORT_ENTRY_POINTS = 4096;

export interface TraefikStaticOptions {
  traefikRoot: string;
  authority: string;
  /** circuitry's ETCD_ENDPOINTS: `http(s)://host:port`. */
  etcdEndpoints: string[];
  /** Frontend ports circuits on this worker may use, inclusive. */
  ports: { from: number; to: number };
  /** Where wildcard-subdomain circuits are served; omitted: no wildcard entry point. */
  domainPort?: number;
  pingPort: number;
  etcdUsername?: string;
  etcdTls?: { ca: string; cert?: string; key?: string };
}

export class StaticConfigError extends Error {
  override name = 'StaticConfigError';
}

function hostPort(endpoint: string): { hostPort: string; tls: boolean } {
  let u: URL;
  try {
    u = new URL(endpoint);
  } catch {
    throw new StaticConfigError(`etcd endpoint ${JSON.stringify(endpoint)} is not a URL (http(s)://host:port)`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new StaticConfigError(`etcd endpoint ${endpoint} must be http:// or https://`);
  return { hostPort: `${u.hostname}:${u.port || '2379'}`, tls: u.protocol === 'https:' };
}

const isPort = (n: number): boolean => Number.isInteger(n) && n >= 1 && n <= 65535;

export function traefikStaticConfig(o: TraefikStaticOptions): Record<string, unknown> {
  const { from, to } = o.ports;
  if (!isPort(from) || !isPort(to) || from > to) throw new StaticConfigError(`ports ${from}-${to} is not a range of ports (1-65535, low to high)`);
  if (to - from + 1 > MAX_PORT_ENTRY_POINTS) throw new StaticConfigError(`ports ${from}-${to} would open ${to - from + 1} listeners; at most ${MAX_PORT_ENTRY_POINTS}`);
  const others = [o.pingPort, ...(o.domainPort === undefined ? [] : [o.domainPort])];
  for (const p of others) {
    if (!isPort(p)) throw new StaticConfigError(`port ${p} is not a port (1-65535)`);
    if (p >= from && p <= to) throw new StaticConfigError(`port ${p} is inside the frontend range ${from}-${to}`);
  }
  if (o.domainPort !== undefined && o.domainPort === o.pingPort) throw new StaticConfigError(`the wildcard and ping entry points cannot share port ${o.pingPort}`);
  if (o.etcdEndpoints.length === 0) throw new StaticConfigError('no etcd endpoint');
  const endpoints = o.etcdEndpoints.map(hostPort);
  const tls = endpoints.some((e) => e.tls);
  if (tls && endpoints.some((e) => !e.tls)) throw new StaticConfigError('etcd endpoints mix http:// and https://');
  if (!tls && o.etcdTls !== undefined) throw new StaticConfigError('etcd TLS files given for http:// endpoints');
  if (o.etcdTls !== undefined && (o.etcdTls.cert === undefined) !== (o.etcdTls.key === undefined)) throw new StaticConfigError('an etcd client certificate needs its key, and a key its certificate');

  const entryPoints: Record<string, { address: string }> = {};
  for (let p = from; p <= to; p++) entryPoints[entryPointOf({ mode: 'port', port: p })] = { address: `:${p}` };
  if (o.domainPort !== undefined) entryPoints[DOMAIN_ENTRY_POINT] = { address: `:${o.domainPort}` };
  entryPoints[PING_ENTRY_POINT] = { address: `:${o.pingPort}` };

  const etcd: Record<string, unknown> = {
    endpoints: endpoints.map((e) => e.hostPort),
    rootKey: workerRoot(o.traefikRoot, o.authority),
  };
  if (o.etcdUsername !== undefined) etcd.username = o.etcdUsername;
  // Traefik enables TLS to etcd when the tls section is present; an empty one uses the system CAs.
  if (tls) etcd.tls = { ...(o.etcdTls ?? {}) };

  return {
    entryPoints,
    providers: { providersThrottleDuration: '2s', etcd },
    ping: { entryPoint: PING_ENTRY_POINT },
    log: { level: 'INFO' },
  };
}
