// Traefik's side, pure: a circuit rendered as the keys Traefik reads, the names and paths of its
// objects, the diff and the make-before-break plan.
export { render, listedRoutes, RenderError, type RenderOptions } from './render.js';
export {
  workerRoot,
  circuitNames,
  circuitKeyPrefixes,
  circuitIdOfKey,
  isCircuitId,
  planNames,
  routerPath,
  servicePath,
  allowListPath,
  stagingServiceName,
  CIRCUIT_ID_RE,
} from './names.js';
export { diffKeys, type KeyDiff } from './diff.js';
export { planSteps, stepOps, type Step, type PlanNames } from './plan.js';
export { keysToTree } from './tree.js';
export { weightsFor } from './weights.js';
export { parseCircuitTree, ratiosFor, importedUuid, type ParsedTree } from './parse.js';
export { traefikStaticConfig, entryPointOf, StaticConfigError, DOMAIN_ENTRY_POINT, MAX_PORT_ENTRY_POINTS, type TraefikStaticOptions } from './static-config.js';
