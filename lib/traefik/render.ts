// Circuit -> the exact etcd keys Traefik should see for it (DESIGN.md §4). Pure: the same
// circuit always renders the same map, and the apply code diffs it against etcd.
import {
  authoritySchema,
  backendHostSchema,
  hostnameSchema,
  isCidr,
  portSchema,
  subdomainSchema,
  trafficRatioSchema,
  type Circuit,
  type Route,
  type Worker,
} from '../model.js';
import { allowListPath, circuitNames, isCircuitId, routerPath, servicePath, stagingServiceName, workerRoot } from './names.js';
import { weightsFor } from './weights.js';
import { entryPointOf } from './static-config.js';
import { RenderError } from '../errors.js';

export { RenderError };

export interface RenderOptions {
  traefikRoot: string;
  /** Middlewares appended after the allow-list on HTTP routers (e.g. "compress@file"). */
  extraMiddlewares?: readonly string[];
  /** Service the router points at; the apply code passes the staging name for make-before-break. */
  serviceName?: string;
}

/**
 * The routes Traefik should balance over. Without health checking: all of them. Otherwise the
 * healthy ones; when none is healthy, all of them in "panic mode" (as Envoy does) rather than
 * none, so a flapping checker cannot black-hole a circuit. Always a subsequence of
 * circuit.routes, in order: a route that is not in the circuit is never listed.
 */
export function listedRoutes(circuit: Circuit): { routes: Route[]; panic: boolean } {
  if (circuit.healthCheck === null) return { routes: [...circuit.routes], panic: false };
  const healthy = circuit.routes.filter((r) => r.health.status === 'healthy');
  if (healthy.length === 0 && circuit.routes.length > 0) return { routes: [...circuit.routes], panic: true };
  return { routes: healthy, panic: false };
}

export function render(circuit: Circuit, worker: Worker, opts: RenderOptions): Map<string, string> {
  if (circuit.worker !== worker.authority) {
    throw new RenderError(`circuit ${circuit.id} belongs to worker ${circuit.worker}, not ${worker.authority}`);
  }
  // Checked before any validation so that a deleted circuit can always be unloaded.
  if (circuit.deletedAt !== null) return new Map();
  const service = checkRenderable(circuit, worker, opts);
  // A router whose service has no servers is invalid for Traefik: publish nothing instead.
  if (circuit.routes.length === 0) return new Map();

  const out = new Map<string, string>();
  const root = workerRoot(opts.traefikRoot, worker.authority);
  const set = (path: string, value: string): void => void out.set(`${root}/${path}`, value);
  const names = circuitNames(circuit.id);
  const p = circuit.protocol;
  const { routes, panic } = listedRoutes(circuit);
  const hasAllowList = circuit.allowedClientIps.length > 0;

  const router = routerPath(p, circuit.id);
  set(`${router}/rule`, ruleFor(circuit, worker));
  set(`${router}/service`, service);
  set(`${router}/entryPoints/0`, entryPointOf(circuit.frontend));
  // An empty value or "true" on the object-typed `tls` enables it with defaults.
  if (worker.tls) set(`${router}/tls`, 'true');
  // TCP routers only accept TCP middlewares; configured extras are HTTP middlewares.
  const middlewares = [...(hasAllowList ? [names.allowList] : []), ...(p === 'http' ? (opts.extraMiddlewares ?? []) : [])];
  middlewares.forEach((m, i) => set(`${router}/middlewares/${i}`, m));
  circuit.allowedClientIps.forEach((cidr, i) =>
    set(`${allowListPath(p, circuit.id)}/ipAllowList/sourceRange/${i}`, cidr),
  );

  const lb = `${servicePath(p, service)}/loadBalancer`;
  if (p === 'http') {
    const weights = weightsFor(routes.map((r) => r.trafficRatio));
    routes.forEach((r, i) => {
      set(`${lb}/servers/${i}/url`, `http://${r.host}:${r.port}/`);
      set(`${lb}/servers/${i}/weight`, String(weights[i]!));
    });
    // In panic mode we list routes we believe are down; Traefik's own check then takes the
    // dead ones out and answers 503 when all are down instead of proxying into the void.
    if (panic && circuit.healthCheck !== null) {
      set(`${lb}/healthCheck/path`, circuit.healthCheck.path);
      set(`${lb}/healthCheck/interval`, `${circuit.healthCheck.intervalSeconds}s`);
      set(`${lb}/healthCheck/timeout`, `${circuit.healthCheck.timeoutMs}ms`);
      // As the prober judges: the circuit's expected status, and a redirect is not followed.
      set(`${lb}/healthCheck/status`, String(circuit.healthCheck.expectedStatus));
      set(`${lb}/healthCheck/followRedirects`, 'false');
    }
  } else {
    // Traefik v3 TCP load balancers have no per-server weight (the schema rejects one), so a
    // TCP circuit round-robins over its listed routes and trafficRatio is not expressed. Nor
    // do TCP services have an active healthCheck, so TCP panic mode lists all routes as is.
    routes.forEach((r, i) => set(`${lb}/servers/${i}/address`, `${r.host}:${r.port}`));
  }
  return out;
}

function ruleFor(circuit: Circuit, worker: Worker): string {
  const f = circuit.frontend;
  if (circuit.protocol === 'http') {
    return f.mode === 'port' ? `Host(\`${worker.hostname}\`)` : `Host(\`${f.subdomain}.${worker.wildcardDomain}\`)`;
  }
  // Without TLS there is no SNI to match on, so a plain TCP router must use HostSNI(`*`).
  return f.mode === 'port' ? 'HostSNI(`*`)' : `HostSNI(\`${f.subdomain}.${worker.wildcardDomain}\`)`;
}

const TRAEFIK_ROOT_RE = /^[A-Za-z0-9_.-]+(\/[A-Za-z0-9_.-]+)*$/;

/**
 * Re-checks what the model's schemas accepted (rows come back from the database) plus what
 * the worker must support, and returns the service name to use. Anything interpolated into
 * a key must not contain '/', and anything interpolated into a rule must not contain
 * backticks, or the output could escape this circuit's names or rule.
 */
function checkRenderable(circuit: Circuit, worker: Worker, opts: RenderOptions): string {
  const fail = (why: string): never => {
    throw new RenderError(`cannot render circuit ${circuit.id}: ${why}`);
  };
  const ok = (schema: { safeParse(v: unknown): { success: boolean } }, v: unknown): boolean => schema.safeParse(v).success;

  if (!isCircuitId(circuit.id)) fail('id is not a lowercase UUID');
  if (!TRAEFIK_ROOT_RE.test(opts.traefikRoot)) fail(`invalid traefikRoot "${opts.traefikRoot}"`);
  if (!ok(authoritySchema, worker.authority)) fail('invalid worker authority');
  if (!ok(hostnameSchema, worker.hostname)) fail('invalid worker hostname');

  const f = circuit.frontend;
  if (f.mode === 'port' && !ok(portSchema, f.port)) fail('invalid frontend port');
  if (f.mode === 'wildcard') {
    if (!ok(subdomainSchema, f.subdomain)) fail('invalid frontend subdomain');
    if (worker.wildcardDomain === null) fail(`worker ${worker.authority} has no wildcardDomain`);
    if (!ok(hostnameSchema, worker.wildcardDomain)) fail('invalid worker wildcardDomain');
    // SNI only exists inside TLS: a TCP router can tell wildcard hosts apart only with TLS.
    if (circuit.protocol === 'tcp' && !worker.tls) fail(`tcp wildcard frontend needs TLS on worker ${worker.authority}`);
  }
  for (const r of circuit.routes) {
    if (!ok(backendHostSchema, r.host) || !ok(portSchema, r.port) || !ok(trafficRatioSchema, r.trafficRatio)) {
      fail(`invalid route ${r.routeId}`);
    }
  }
  if (!circuit.allowedClientIps.every(isCidr)) fail('invalid allowedClientIps entry');
  if ((opts.extraMiddlewares ?? []).some((m) => !/^\S+$/.test(m))) fail('empty or blank extra middleware name');

  const names = circuitNames(circuit.id);
  const service = opts.serviceName ?? names.service;
  // Only this circuit's own service names: a key under any other name would never be found
  // (or deleted) through circuitKeyPrefixes.
  if (service !== names.service && service !== stagingServiceName(circuit.id)) fail(`foreign serviceName "${service}"`);
  return service;
}
