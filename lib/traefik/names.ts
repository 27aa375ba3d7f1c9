// Traefik object names and etcd key prefixes of a circuit. The names follow the reference
// system (bai_router_<cid>, ...) so an existing fleet can switch over without renaming.
//
// Circuit ids are UUIDs (model.ts lowercases them). Parsing keys back relies on that fixed
// shape: it is what makes `bai_service_<cid>_staging` unambiguous, and it means a key with a
// malformed id was not written by us and is left alone by orphan cleanup.

import type { PlanNames } from './plan.js';

export const CIRCUIT_ID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export function isCircuitId(s: string): boolean {
  return CIRCUIT_ID_RE.test(s);
}

/** The root one worker's Traefik reads: `<traefikRoot>/worker_<authority>`. */
export function workerRoot(traefikRoot: string, authority: string): string {
  return `${traefikRoot}/worker_${authority}`;
}

export interface CircuitNames {
  router: string;
  service: string;
  allowList: string;
}

export function circuitNames(circuitId: string): CircuitNames {
  return {
    router: `bai_router_${circuitId}`,
    service: `bai_service_${circuitId}`,
    allowList: `bai_ipallowlist_${circuitId}`,
  };
}

/** Temporary service used for make-before-break when a change exceeds one etcd transaction. */
export function stagingServiceName(circuitId: string): string {
  return `bai_service_${circuitId}_staging`;
}

const PROTOCOLS = ['http', 'tcp'] as const;
type Protocol = (typeof PROTOCOLS)[number];

// The object paths below a worker root (Traefik's dynamic configuration tree). Every key of a
// circuit lives under one of them.
export const routerPath = (protocol: Protocol, circuitId: string): string => `${protocol}/routers/${circuitNames(circuitId).router}`;
export const servicePath = (protocol: Protocol, serviceName: string): string => `${protocol}/services/${serviceName}`;
export const allowListPath = (protocol: Protocol, circuitId: string): string => `${protocol}/middlewares/${circuitNames(circuitId).allowList}`;

/**
 * Every key prefix under which a key of this circuit can live. Each ends with '/', so a
 * prefix never matches another name that merely starts with this one (e.g. the staging
 * service is listed separately rather than matched by `bai_service_<cid>`).
 */
export function circuitKeyPrefixes(workerRootPath: string, circuitId: string): string[] {
  const n = circuitNames(circuitId);
  return PROTOCOLS.flatMap((p) => [
    `${workerRootPath}/${routerPath(p, circuitId)}/`,
    `${workerRootPath}/${servicePath(p, n.service)}/`,
    `${workerRootPath}/${allowListPath(p, circuitId)}/`,
    `${workerRootPath}/${servicePath(p, stagingServiceName(circuitId))}/`,
  ]);
}

/** The names the make-before-break planner (plan.ts) needs for one circuit. */
export function planNames(traefikRoot: string, worker: string, circuitId: string, protocol: Protocol): PlanNames {
  const root = workerRoot(traefikRoot, worker);
  const service = circuitNames(circuitId).service;
  const staging = stagingServiceName(circuitId);
  return {
    circuitPrefixes: circuitKeyPrefixes(root, circuitId),
    routerPrefix: `${root}/${routerPath(protocol, circuitId)}/`,
    canonicalService: { prefix: `${root}/${servicePath(protocol, service)}/`, name: service },
    stagingService: { prefix: `${root}/${servicePath(protocol, staging)}/`, name: staging },
  };
}

const UUID = '([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})';
const NAME_BY_KIND = new Map<string, RegExp>([
  ['routers', new RegExp(`^bai_router_${UUID}$`)],
  ['services', new RegExp(`^bai_service_${UUID}(?:_staging)?$`)],
  ['middlewares', new RegExp(`^bai_ipallowlist_${UUID}$`)],
]);

/**
 * The circuit a key under `workerRootPath` belongs to, or null when it is not under one of the
 * names we write. Agrees exactly with circuitKeyPrefixes: circuitIdOfKey(root, k) === cid iff
 * k starts with one of circuitKeyPrefixes(root, cid).
 */
export function circuitIdOfKey(workerRootPath: string, key: string): string | null {
  const prefix = `${workerRootPath}/`;
  if (!key.startsWith(prefix)) return null;
  const [protocol, kind, name, ...rest] = key.slice(prefix.length).split('/');
  // A key must be *under* the name (at least "<name>/"), as the prefixes require.
  if (rest.length === 0 || protocol === undefined || kind === undefined || name === undefined) return null;
  if (protocol !== 'http' && protocol !== 'tcp') return null;
  return NAME_BY_KIND.get(kind)?.exec(name)?.[1] ?? null;
}
