// The inverse of render(): a circuit's Traefik tree, as another system (Backend.AI's app proxy,
// whose layout render() follows) or an earlier circuitry wrote it, read back into the create
// request that renders exactly those keys. Pure. `circuitry import` uses it; a tree that does not
// map back byte for byte is refused with the reason.
import { createHash } from 'node:crypto';
import type { CreateCircuitInput, HealthCheckSettings, Protocol, Worker } from '../model.js';
import { healthCheckDefaults, newCircuit } from '../model.js';
import { circuitNames, stagingServiceName } from './names.js';
import { render } from './render.js';
import { weightsFor } from './weights.js';

export type ParsedTree = { input: CreateCircuitInput } | { reason: string };

export interface ParseOptions {
  traefikRoot: string;
  extraMiddlewares: readonly string[];
  appMode?: 'inference' | 'interactive';
}

/** A stable UUID (version 5 layout) for a route of an imported circuit, which carries none. */
export function importedUuid(circuitId: string, kind: 'route' | 'session', index: number): string {
  const h = createHash('sha1').update(`circuitry-import:${circuitId}:${kind}:${index}`).digest('hex');
  const variant = ((parseInt(h[16]!, 16) & 0x3) | 0x8).toString(16);
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-5${h.slice(13, 16)}-${variant}${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

/** Ratios in (0, 1] whose rendering gives exactly these weights, or null when none does. */
export function ratiosFor(weights: readonly number[]): number[] | null {
  if (weights.length === 0 || !weights.every((w) => Number.isInteger(w) && w >= 1)) return null;
  const max = Math.max(...weights);
  const same = (rs: number[]) => {
    try {
      const w = weightsFor(rs);
      return w.every((x, i) => x === weights[i]);
    } catch {
      return false;
    }
  };
  const byMax = weights.map((w) => w / max);
  if (same(byMax)) return byMax;
  const byThousand = weights.map((w) => w / 1000);
  return max <= 1000 && same(byThousand) ? byThousand : null;
}

const list = (keys: ReadonlyMap<string, string>, prefix: string): string[] | null => {
  const out: Array<[number, string]> = [];
  for (const [k, v] of keys) {
    if (!k.startsWith(prefix)) continue;
    const rest = k.slice(prefix.length);
    if (!/^\d+$/.test(rest)) return null;
    out.push([Number(rest), v]);
  }
  out.sort((a, b) => a[0] - b[0]);
  return out.every(([i], n) => i === n) ? out.map(([, v]) => v) : null;
};

/**
 * @param keys every key of this circuit under the worker root (the circuit's prefixes only).
 */
export function parseCircuitTree(root: string, circuitId: string, keys: ReadonlyMap<string, string>, worker: Worker, o: ParseOptions): ParsedTree {
  const fail = (reason: string): ParsedTree => ({ reason });
  const n = circuitNames(circuitId);
  if ([...keys.keys()].some((k) => k.includes(`/${stagingServiceName(circuitId)}/`))) {
    return fail('a change is half staged (its staging service exists): retry once the writer has finished');
  }
  const protocols = new Set([...keys.keys()].map((k) => k.slice(root.length + 1).split('/')[0]));
  if (protocols.size !== 1) return fail(`keys under ${[...protocols].join(' and ')}: a circuit has one protocol`);
  const protocol = [...protocols][0] as Protocol;
  const router = `${root}/${protocol}/routers/${n.router}/`;
  const lb = `${root}/${protocol}/services/${n.service}/loadBalancer/`;
  const rule = keys.get(`${router}rule`);
  if (rule === undefined) return fail('no router rule');
  if (keys.get(`${router}service`) !== n.service) return fail(`the router does not point at ${n.service}`);
  const entryPoint = keys.get(`${router}entryPoints/0`);
  const tls = keys.has(`${router}tls`);
  if (tls !== worker.tls) return fail(`the router ${tls ? 'has' : 'has no'} TLS but worker ${worker.authority} is registered ${worker.tls ? 'with' : 'without'} it`);

  let frontend: CreateCircuitInput['frontend'];
  const port = /^portproxy_(\d{1,5})$/.exec(entryPoint ?? '');
  if (port !== null) {
    frontend = { mode: 'port', port: Number(port[1]) };
  } else if (entryPoint === 'domainproxy') {
    const m = protocol === 'http' ? /^Host\(`([a-z0-9-]+)\.(.+)`\)$/.exec(rule) : /^HostSNI\(`([a-z0-9-]+)\.(.+)`\)$/.exec(rule);
    if (m === null) return fail(`a wildcard router rule ${JSON.stringify(rule)} is not <subdomain>.<domain>`);
    if (m[2] !== worker.wildcardDomain) return fail(`the rule's domain ${m[2]} is not worker ${worker.authority}'s wildcard domain ${worker.wildcardDomain ?? '(none)'}`);
    frontend = { mode: 'wildcard', subdomain: m[1]! };
  } else {
    return fail(`entry point ${JSON.stringify(entryPoint)} is neither portproxy_<port> nor domainproxy`);
  }

  const allowedClientIps = list(keys, `${root}/${protocol}/middlewares/${n.allowList}/ipAllowList/sourceRange/`);
  if (allowedClientIps === null) return fail('the allow-list has gaps in its indices');

  const hosts: Array<{ host: string; port: number }> = [];
  const weights: number[] = [];
  for (let i = 0; ; i++) {
    const v = keys.get(`${lb}servers/${i}/${protocol === 'http' ? 'url' : 'address'}`);
    if (v === undefined) break;
    const m = protocol === 'http' ? /^http:\/\/([^/:]+):(\d{1,5})\/$/.exec(v) : /^([^/:]+):(\d{1,5})$/.exec(v);
    if (m === null) return fail(`server ${i} ${JSON.stringify(v)} is not ${protocol === 'http' ? 'http://<host>:<port>/' : '<host>:<port>'}`);
    hosts.push({ host: m[1]!, port: Number(m[2]) });
    if (protocol === 'http') {
      const w = keys.get(`${lb}servers/${i}/weight`);
      if (w === undefined || !/^\d+$/.test(w)) return fail(`server ${i} has no integer weight`);
      weights.push(Number(w));
    }
  }
  if (hosts.length === 0) return fail('no servers');
  let ratios: number[] = hosts.map(() => 1);
  if (protocol === 'http') {
    const r = ratiosFor(weights);
    if (r === null) return fail(`weights [${weights.join(', ')}] cannot be expressed by traffic ratios (circuitry writes them in lowest terms, never 0)`);
    ratios = r;
  }

  let healthCheck: HealthCheckSettings | null = null;
  if ([...keys.keys()].some((k) => k.startsWith(`${lb}healthCheck/`))) {
    // Panic mode: no healthy route, all listed, Traefik checks them. Imported health-checked,
    // with its routes unknown, it renders the same panic block until probing decides.
    const interval = /^(\d+)s$/.exec(keys.get(`${lb}healthCheck/interval`) ?? '');
    const timeout = /^(\d+)ms$/.exec(keys.get(`${lb}healthCheck/timeout`) ?? '');
    const status = keys.get(`${lb}healthCheck/status`);
    const path = keys.get(`${lb}healthCheck/path`);
    if (interval === null || timeout === null || path === undefined || status === undefined || !/^\d{3}$/.test(status)) {
      return fail('its Traefik healthCheck block is not one circuitry writes (path, interval Ns, timeout Nms, status, followRedirects)');
    }
    healthCheck = { ...healthCheckDefaults, path, intervalSeconds: Number(interval[1]), timeoutMs: Number(timeout[1]), expectedStatus: Number(status) };
  }

  const input: CreateCircuitInput = {
    id: circuitId,
    worker: worker.authority,
    protocol,
    appMode: healthCheck !== null ? 'inference' : (o.appMode ?? 'interactive'),
    frontend,
    allowedClientIps,
    healthCheck,
    routes: hosts.map((h, i) => ({
      routeId: importedUuid(circuitId, 'route', i),
      sessionId: importedUuid(circuitId, 'session', i),
      host: h.host,
      port: h.port,
      trafficRatio: ratios[i]!,
    })),
  };
  // The test that matters: what circuitry would write is exactly what is there.
  let rendered: Map<string, string>;
  try {
    rendered = render(newCircuit({ ...input, id: circuitId }), worker, { traefikRoot: o.traefikRoot, extraMiddlewares: o.extraMiddlewares });
  } catch (err) {
    return fail(`it cannot be rendered: ${(err as Error).message}`);
  }
  for (const [k, v] of keys) {
    if (rendered.get(k) !== v) return fail(rendered.has(k) ? `circuitry would write ${k} as ${JSON.stringify(rendered.get(k))}, not ${JSON.stringify(v)}` : `circuitry would not write ${k}`);
  }
  for (const k of rendered.keys()) if (!keys.has(k)) return fail(`circuitry would also write ${k}`);
  return { input };
}
