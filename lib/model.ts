// The domain model: what a circuit, a route and a worker are, and the schemas that accept them
// from the outside world. Everything that reaches etcd is derived from values these schemas
// accepted, so they are strict: unknown fields are rejected, names are RFC 1123 labels (no
// backticks, spaces, parentheses or commas that could inject into a Traefik rule), and sizes
// are bounded.
import { z } from 'zod';

export const MAX_ROUTES_PER_CIRCUIT_DEFAULT = 256;
export const MAX_ALLOWED_CLIENT_IPS = 64;

const label = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
const hostnameRe = /^(?=.{1,253}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/;
const ipv4Re = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

export const uuidSchema = z.uuid({ message: 'must be a UUID' }).transform((s) => s.toLowerCase());

export const authoritySchema = z
  .string()
  .regex(/^[a-z0-9-]{1,63}$/, 'must match [a-z0-9-]{1,63}');

/**
 * Whether a URL parser reads `host` back as exactly itself. Route hosts end up in server URLs:
 * this rejects what the RFC 1123 pattern lets through but URL parsers refuse or rewrite, such as
 * invalid punycode labels ("xn--a").
 */
export function hostRoundTrips(host: string): boolean {
  try {
    return new URL(`http://${host}/`).hostname === host;
  } catch {
    return false;
  }
}

export const hostnameSchema = z
  .string()
  .max(253)
  .regex(hostnameRe, 'must be a lowercase RFC 1123 hostname');

export const subdomainSchema = z.string().regex(label, 'must be a lowercase RFC 1123 label');

export const portSchema = z.number().int('must be an integer').min(1).max(65535);

/**
 * Names that resolvers or URL parsers read as an IPv4 address: the last label is a number
 * ("2130706433", "0x7f.1", "0177.0.0.1", "010.0.0.1", "a.0"). inet_aton (so getaddrinfo, which
 * the prober uses) reads the all-numeric ones in octal/hex, and the WHATWG URL parser rejects
 * any name that "ends in a number". They are not hostnames (RFC 1123 §2.1: a top-level label is
 * never numeric) and different parsers disagree on them, so the address a check sees and the one
 * Traefik dials could differ: refused.
 */
export function endsInNumber(s: string): boolean {
  const labels = s.split('.');
  return /^(0x[0-9a-f]*|[0-9]+)$/.test(labels[labels.length - 1]!);
}

/** A backend host: an IPv4 address or an RFC 1123 hostname (resolved once when probed). */
export const backendHostSchema = z
  .string()
  .max(253)
  .refine((s) => ipv4Re.test(s) || hostnameRe.test(s), 'must be an IPv4 address or RFC 1123 hostname');

/** What the API accepts as a route host: additionally no IPv4 address in another notation. */
export const routeHostSchema = backendHostSchema
  .refine((s) => ipv4Re.test(s) || !endsInNumber(s), 'must be a dotted-decimal IPv4 address or a hostname (not an address in numeric notation)')
  .refine((s) => ipv4Re.test(s) || hostRoundTrips(s), 'must be a hostname URL parsers read as itself (no invalid punycode)');

export const cidrSchema = z.string().refine(isCidr, 'must be an IPv4 CIDR such as 10.0.0.0/8');

export function isCidr(s: string): boolean {
  const m = /^([0-9.]+)\/(\d{1,2})$/.exec(s);
  return m !== null && ipv4Re.test(m[1]!) && Number(m[2]) <= 32;
}

export const trafficRatioSchema = z
  .number()
  .gt(0, 'must be greater than 0')
  .lte(1, 'must be at most 1');

export const routeInputSchema = z.strictObject({
  routeId: uuidSchema,
  sessionId: uuidSchema,
  host: routeHostSchema,
  port: portSchema,
  trafficRatio: trafficRatioSchema.default(1),
});
export type RouteInput = z.output<typeof routeInputSchema>;

export const healthCheckDefaults = {
  path: '/health',
  intervalSeconds: 10,
  timeoutMs: 5000,
  expectedStatus: 200,
  unhealthyThreshold: 3,
  healthyThreshold: 2,
  initialDelaySeconds: 60,
} as const;

export const healthCheckSchema = z.strictObject({
  path: z
    .string()
    .max(512)
    .regex(/^\/[\x21-\x7e]*$/, 'must start with / and contain only printable ASCII without spaces')
    .default(healthCheckDefaults.path),
  intervalSeconds: z.number().int().min(1).max(3600).default(healthCheckDefaults.intervalSeconds),
  timeoutMs: z.number().int().min(10).max(60000).default(healthCheckDefaults.timeoutMs),
  expectedStatus: z.number().int().min(100).max(599).default(healthCheckDefaults.expectedStatus),
  unhealthyThreshold: z.number().int().min(1).max(100).default(healthCheckDefaults.unhealthyThreshold),
  healthyThreshold: z.number().int().min(1).max(100).default(healthCheckDefaults.healthyThreshold),
  initialDelaySeconds: z.number().int().min(0).max(86400).default(healthCheckDefaults.initialDelaySeconds),
});
export type HealthCheckSettings = z.output<typeof healthCheckSchema>;

export const frontendSchema = z.discriminatedUnion('mode', [
  z.strictObject({ mode: z.literal('port'), port: portSchema }),
  z.strictObject({ mode: z.literal('wildcard'), subdomain: subdomainSchema }),
]);
export type Frontend = z.output<typeof frontendSchema>;

export type Protocol = 'http' | 'tcp';
export type AppMode = 'inference' | 'interactive';

function uniqueRouteIds(routes: readonly { routeId: string }[], ctx: z.RefinementCtx): void {
  const seen = new Set<string>();
  routes.forEach((r, i) => {
    if (seen.has(r.routeId)) {
      ctx.addIssue({ code: 'custom', message: 'duplicate routeId', path: [i, 'routeId'] });
    }
    seen.add(r.routeId);
  });
}

export function routesSchema(maxRoutes: number = MAX_ROUTES_PER_CIRCUIT_DEFAULT) {
  return z
    .array(routeInputSchema)
    .max(maxRoutes, `at most ${maxRoutes} routes per circuit`)
    .superRefine(uniqueRouteIds);
}

export function createCircuitSchema(maxRoutes: number = MAX_ROUTES_PER_CIRCUIT_DEFAULT) {
  return z
    .strictObject({
      id: uuidSchema.optional(),
      worker: authoritySchema,
      protocol: z.enum(['http', 'tcp']),
      appMode: z.enum(['inference', 'interactive']),
      frontend: frontendSchema,
      allowedClientIps: z.array(cidrSchema).max(MAX_ALLOWED_CLIENT_IPS).default([]),
      healthCheck: healthCheckSchema.nullable().optional(),
      routes: routesSchema(maxRoutes).default([]),
    })
    .transform((c) => ({
      ...c,
      // Interactive apps are not probed unless asked to; inference endpoints are.
      healthCheck:
        c.healthCheck === undefined
          ? c.appMode === 'interactive'
            ? null
            : healthCheckSchema.parse({})
          : c.healthCheck,
    }));
}
export type CreateCircuitInput = z.output<ReturnType<typeof createCircuitSchema>>;

export const workerInputSchema = z.strictObject({
  hostname: hostnameSchema,
  wildcardDomain: hostnameSchema.nullable().optional(),
  tls: z.boolean().default(false),
});

export interface Worker {
  authority: string;
  hostname: string;
  wildcardDomain: string | null;
  tls: boolean;
}

export type HealthStatus = 'unknown' | 'healthy' | 'unhealthy';

export interface RouteHealth {
  status: HealthStatus;
  consecutiveSuccesses: number;
  consecutiveFailures: number;
  lastCheckedAt: string | null;
  lastError: string | null;
}

export interface Route extends RouteInput {
  health: RouteHealth;
  createdAt: string;
}

export interface Circuit {
  id: string;
  worker: string;
  protocol: Protocol;
  appMode: AppMode;
  frontend: Frontend;
  allowedClientIps: string[];
  healthCheck: HealthCheckSettings | null;
  routes: Route[];
  generation: number;
  deletedAt: string | null;
  createdAt: string;
  /** A DELETE was accepted (durable before the 202); the unload completes it. */
  unloadRequestedAt: string | null;
  /** When etcd was confirmed to hold none of the deleted circuit's keys: its frontend is free again. */
  keysRemovedAt: string | null;
  /** Digest of the request that created it (an idempotent retry matches it); null for old circuits. */
  createDigest: string | null;
}

/** A circuit as read from the database, with its worker (rendering needs both). */
export interface CircuitView {
  circuit: Circuit;
  worker: Worker;
}

export function newRouteHealth(): RouteHealth {
  return { status: 'unknown', consecutiveSuccesses: 0, consecutiveFailures: 0, lastCheckedAt: null, lastError: null };
}

/** A circuit as a create request describes it, before the database stamps it (routes unknown). */
export function newCircuit(input: CreateCircuitInput & { id: string }): Circuit {
  return {
    ...input,
    routes: input.routes.map((r) => ({ ...r, health: newRouteHealth(), createdAt: '' })),
    generation: 1,
    deletedAt: null,
    createdAt: '',
    unloadRequestedAt: null,
    keysRemovedAt: null,
    createDigest: null,
  };
}

// ---- health checking ------------------------------------------------------------------------

/** A circuit claimed by a sweep for probing, with the health state of each route as stored. */
export interface ClaimedRoute {
  routeId: string;
  host: string;
  port: number;
  status: HealthStatus;
  consecutiveSuccesses: number;
  consecutiveFailures: number;
  /** last_checked_at exactly as stored (the optimistic version of the route's health). */
  lastCheckedAt: string | null;
  createdAt: string;
}

export interface ClaimedCircuit {
  id: string;
  worker: string;
  protocol: Protocol;
  generation: number;
  healthCheck: HealthCheckSettings;
  routes: ClaimedRoute[];
}

/** One probe result for one route, ready to be written. */
export interface RouteHealthWrite {
  routeId: string;
  host: string;
  port: number;
  /** The state the result was computed from; the write applies only if the row still holds it. */
  expected: {
    status: HealthStatus;
    consecutiveSuccesses: number;
    consecutiveFailures: number;
    lastCheckedAt: string | null;
  };
  next: { status: HealthStatus; consecutiveSuccesses: number; consecutiveFailures: number };
  lastError: string | null;
  /** ISO time of the probe. */
  checkedAt: string;
}

export interface CounterWrite extends RouteHealthWrite {
  circuitId: string;
}

