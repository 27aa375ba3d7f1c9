// Where circuitry keeps its own keys (never under Traefik's root: Traefik would rebuild on
// every lock write) and the Traefik names of a circuit, gathered for the planner.
import { circuitKeyPrefixes, circuitNames, stagingServiceName, workerRoot } from '../traefik/names.js';
import type { PlanNames } from '../traefik/plan.js';
import type { Protocol } from '../model.js';

export const metaKey = (metaPrefix: string, circuitId: string): string => `${metaPrefix}/circuits/${circuitId}`;
export const metaCircuitsPrefix = (metaPrefix: string): string => `${metaPrefix}/circuits/`;
export const lockPrefix = (metaPrefix: string, circuitId: string): string => `${metaPrefix}/locks/${circuitId}/`;

export function planNames(traefikRoot: string, worker: string, circuitId: string, protocol: Protocol): PlanNames {
  const root = workerRoot(traefikRoot, worker);
  const n = circuitNames(circuitId);
  const staging = stagingServiceName(circuitId);
  return {
    circuitPrefixes: circuitKeyPrefixes(root, circuitId),
    routerPrefix: `${root}/${protocol}/routers/${n.router}/`,
    canonicalService: { prefix: `${root}/${protocol}/services/${n.service}/`, name: n.service },
    stagingService: { prefix: `${root}/${protocol}/services/${staging}/`, name: staging },
  };
}
