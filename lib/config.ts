// Typed configuration, read from the environment once per cold start. Every problem names the
// variable, so a misconfigured deployment fails at its first invocation with a readable message
// instead of misrouting traffic later.
import { accessSync, constants } from 'node:fs';
import { z } from 'zod';
import { isCidr, MAX_ROUTES_PER_CIRCUIT_DEFAULT } from './model.js';
import { ConfigError } from './errors.js';

export { ConfigError };

const csv = (s: string): string[] =>
  s
    .split(',')
    .map((x) => x.trim())
    .filter((x) => x.length > 0);

const keySegment = z
  .string()
  .regex(/^[A-Za-z0-9_.-]+(\/[A-Za-z0-9_.-]+)*$/, 'must be a key path like "traefik" (letters, digits, _ . - and inner /)')
  .refine((s) => s.split('/').every((seg) => seg !== '.' && seg !== '..'), 'must not contain "." or ".." segments');

const readableFile = z.string().min(1).refine((f) => {
  try {
    accessSync(f, constants.R_OK);
    return true;
  } catch {
    return false;
  }
}, 'must name a readable file');

const SSL_MODES = ['disable', 'allow', 'prefer', 'require', 'verify-ca', 'verify-full'];

const intIn = (min: number, max: number) =>
  z
    .string()
    .regex(/^\d+$/, 'must be a whole number')
    .transform(Number)
    .pipe(z.number().int().min(min).max(max));

const envSchema = z.object({
  ETCD_ENDPOINTS: z
    .string()
    .transform(csv)
    .pipe(z.array(z.url({ protocol: /^https?$/, message: 'each endpoint must be an http(s) URL' })).min(1, 'needs at least one endpoint')),
  ETCD_USERNAME: z.string().min(1).optional(),
  ETCD_PASSWORD: z.string().min(1).optional(),
  ETCD_CA_FILE: readableFile.optional(),
  ETCD_CERT_FILE: readableFile.optional(),
  ETCD_KEY_FILE: readableFile.optional(),
  ETCD_TIMEOUT_MS: intIn(100, 60000).default(3000),
  DATABASE_URL: z
    .string()
    .refine((s) => /^postgres(ql)?:\/\/[^/]+\/[^/?]+/.test(s), 'must be a postgres:// URL with a database name')
    // Only the parameter's value is named in the message, never the URL (it holds the password).
    .refine((s) => {
      const m = /[?&]sslmode=([^&]*)/.exec(s);
      return m === null || SSL_MODES.includes(m[1]!);
    }, `sslmode must be one of ${SSL_MODES.join(', ')}`),
  DATABASE_TIMEOUT_MS: intIn(100, 60000).default(5000),
  NEON_WS_PROXY: z
    .string()
    .regex(/^[A-Za-z0-9.-]+:\d+(\/\S*)?$/, 'must be host:port/path of a WebSocket-to-Postgres proxy')
    // The proxy is spoken to over plain ws:// without TLS: never leave the host with it.
    .refine((s) => /^(127\.\d{1,3}\.\d{1,3}\.\d{1,3}|localhost):/.test(s), 'must be a loopback address (the local proxy runs without TLS)')
    .optional(),
  TRAEFIK_ROOT: keySegment.default('traefik'),
  TRAEFIK_EXTRA_MIDDLEWARES: z
    .string()
    .transform(csv)
    .pipe(z.array(z.string().regex(/^[A-Za-z0-9_.-]+(@[a-z0-9]+)?$/, 'each must be a middleware name like ratelimit@file')))
    .default([]),
  META_PREFIX: keySegment.default('circuitry'),
  API_TOKENS: z
    .string()
    .transform(csv)
    .pipe(z.array(z.string().min(16, 'each token must be at least 16 characters')).min(1, 'needs at least one token'))
    .optional(),
  EVENT_BUS_NAME: z.string().min(1).default('default'),
  EVENT_SOURCE: z.string().regex(/^[A-Za-z0-9._-]{1,256}$/, 'must be an EventBridge source such as "circuitry"').default('circuitry'),
  EVENTBRIDGE_ENDPOINT: z.url().optional(),
  LOCK_TTL_SECONDS: intIn(2, 300).default(10),
  LOCK_WAIT_MS: intIn(0, 900000).default(5000),
  ALLOWED_BACKEND_CIDRS: z
    .string()
    .transform(csv)
    .pipe(z.array(z.string().refine(isCidr, 'each must be an IPv4 CIDR')).min(1))
    .default(['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16']),
  MAX_ROUTES_PER_CIRCUIT: intIn(1, 10000).default(MAX_ROUTES_PER_CIRCUIT_DEFAULT),
  HEALTH_PROBE_CONCURRENCY: intIn(1, 10000).default(256),
  UNLOAD_GRACE_SECONDS: intIn(0, 86400).default(60),
  ORPHAN_POLICY: z.enum(['report', 'delete'], { message: 'must be "report" or "delete"' }).default('report'),
  FUNCTION_TIMEOUT_SECONDS: intIn(1, 900).default(900),
  TOMBSTONE_RETENTION_SECONDS: intIn(1, 365 * 86400).default(3600),
  DELETED_RETENTION_DAYS: intIn(1, 3650).default(30),
  HEALTH_TRANSITION_RETENTION_DAYS: intIn(1, 3650).default(7),
  UNLOAD_DLQ_URL: z.url({ message: 'must be the URL of the unload dead-letter queue (SQS)' }).optional(),
  HEALTH_SWEEPER_ROUTES_PER_SECOND: intIn(1, 1_000_000).default(2000),
  HEALTH_MAX_SWEEPERS: intIn(1, 1000).default(16),
});

export type Config = Readonly<{
  etcd: {
    endpoints: string[];
    username?: string;
    password?: string;
    caFile?: string;
    certFile?: string;
    keyFile?: string;
    timeoutMs: number;
  };
  databaseUrl: string;
  databaseTimeoutMs: number;
  neonWsProxy?: string;
  traefikRoot: string;
  traefikExtraMiddlewares: string[];
  metaPrefix: string;
  apiTokens: string[];
  eventBusName: string;
  eventSource: string;
  eventBridgeEndpoint?: string;
  lockTtlSeconds: number;
  lockWaitMs: number;
  allowedBackendCidrs: string[];
  maxRoutesPerCircuit: number;
  healthProbeConcurrency: number;
  /** Unloads still pending this long after their DELETE are completed by the sweep. */
  unloadGraceSeconds: number;
  /** What the sweep does with keys named after circuits the database does not know. */
  orphanPolicy: 'report' | 'delete';
  /** The longest any function invocation can run (a stale writer lives at most this plus the lock TTL). */
  functionTimeoutSeconds: number;
  tombstoneRetentionSeconds: number;
  deletedRetentionDays: number;
  /** Recent route status changes are kept this long (GET /v2/transitions). */
  healthTransitionRetentionDays: number;
  /** The unload dead-letter queue, for `circuitry redrive` (the functions do not read it). */
  unloadDlqUrl?: string;
  /** Routes per second one sweeper invocation probes (measured by npm run bench:health). */
  healthSweeperRoutesPerSecond: number;
  /** Sweeper invocations at most, scheduled-health included; 1: no fan-out. */
  healthMaxSweepers: number;
}>;

const HOST_PORT = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):\d{1,5}$/;

/** etcdctl accepts bare host:port endpoints; so do we, with the scheme etcdctl would use
 * (https when a CA is configured). Anything else is left for the URL check to name. */
function withSchemes(endpoints: string, tls: boolean): string {
  return csv(endpoints)
    .map((x) => (HOST_PORT.test(x) ? `${tls ? 'https' : 'http'}://${x}` : x))
    .join(',');
}

/** Parses an environment; throws a ConfigError that names every offending variable. */
export function parseConfig(env: NodeJS.ProcessEnv): Config {
  // Empty strings count as unset: SSM and shell templates often produce them.
  const present = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== ''));
  if (present.ETCD_ENDPOINTS !== undefined) present.ETCD_ENDPOINTS = withSchemes(present.ETCD_ENDPOINTS, present.ETCD_CA_FILE !== undefined);
  const r = envSchema.safeParse(present);
  if (!r.success) {
    const problems = r.error.issues.map((i) => {
      const name = String(i.path[0] ?? '?');
      const message = i.code === 'invalid_type' && present[name] === undefined ? 'is required' : i.message;
      return `${name} ${message}`;
    });
    throw new ConfigError(`invalid configuration: ${[...new Set(problems)].join('; ')}`);
  }
  const e = r.data;
  if ((e.ETCD_USERNAME === undefined) !== (e.ETCD_PASSWORD === undefined)) {
    throw new ConfigError('invalid configuration: ETCD_USERNAME and ETCD_PASSWORD must be set together');
  }
  if ((e.ETCD_CERT_FILE === undefined) !== (e.ETCD_KEY_FILE === undefined)) {
    throw new ConfigError('invalid configuration: ETCD_CERT_FILE and ETCD_KEY_FILE must be set together');
  }
  const tlsFiles = [e.ETCD_CA_FILE, e.ETCD_CERT_FILE].some((f) => f !== undefined);
  if (e.ETCD_CERT_FILE !== undefined && e.ETCD_CA_FILE === undefined) {
    throw new ConfigError('invalid configuration: ETCD_CERT_FILE and ETCD_KEY_FILE need ETCD_CA_FILE (the CA that signed the etcd server certificate)');
  }
  if (tlsFiles && !e.ETCD_ENDPOINTS.every((u) => u.startsWith('https://'))) {
    throw new ConfigError('invalid configuration: ETCD_ENDPOINTS must all be https:// when ETCD_CA_FILE is set');
  }
  const segs = (p: string) => p.split('/');
  const under = (a: string, b: string) => segs(b).every((seg, i) => segs(a)[i] === seg);
  if (under(e.TRAEFIK_ROOT, e.META_PREFIX) || under(e.META_PREFIX, e.TRAEFIK_ROOT)) {
    throw new ConfigError('invalid configuration: META_PREFIX and TRAEFIK_ROOT must not contain one another (locks would land in Traefik\'s tree)');
  }
  // A tombstone refuses late writers (DESIGN I1, I8): it must outlive any writer that could still
  // hold a snapshot from before the deletion — an invocation runs at most FUNCTION_TIMEOUT_SECONDS
  // and its lock keys outlive it by at most LOCK_TTL_SECONDS.
  if (e.TOMBSTONE_RETENTION_SECONDS <= e.FUNCTION_TIMEOUT_SECONDS + e.LOCK_TTL_SECONDS) {
    throw new ConfigError(
      `invalid configuration: TOMBSTONE_RETENTION_SECONDS must exceed FUNCTION_TIMEOUT_SECONDS + LOCK_TTL_SECONDS (${e.FUNCTION_TIMEOUT_SECONDS + e.LOCK_TTL_SECONDS} s), the longest life of a stale writer`,
    );
  }
  if (e.DELETED_RETENTION_DAYS * 86400 <= e.TOMBSTONE_RETENTION_SECONDS) {
    throw new ConfigError('invalid configuration: DELETED_RETENTION_DAYS must be longer than TOMBSTONE_RETENTION_SECONDS (a deleted row outlives its tombstone)');
  }
  return Object.freeze({
    etcd: {
      endpoints: e.ETCD_ENDPOINTS,
      username: e.ETCD_USERNAME,
      password: e.ETCD_PASSWORD,
      caFile: e.ETCD_CA_FILE,
      certFile: e.ETCD_CERT_FILE,
      keyFile: e.ETCD_KEY_FILE,
      timeoutMs: e.ETCD_TIMEOUT_MS,
    },
    databaseUrl: e.DATABASE_URL,
    databaseTimeoutMs: e.DATABASE_TIMEOUT_MS,
    neonWsProxy: e.NEON_WS_PROXY,
    traefikRoot: e.TRAEFIK_ROOT,
    traefikExtraMiddlewares: e.TRAEFIK_EXTRA_MIDDLEWARES,
    metaPrefix: e.META_PREFIX,
    apiTokens: e.API_TOKENS ?? [],
    eventBusName: e.EVENT_BUS_NAME,
    eventSource: e.EVENT_SOURCE,
    eventBridgeEndpoint: e.EVENTBRIDGE_ENDPOINT,
    lockTtlSeconds: e.LOCK_TTL_SECONDS,
    lockWaitMs: e.LOCK_WAIT_MS,
    allowedBackendCidrs: e.ALLOWED_BACKEND_CIDRS,
    maxRoutesPerCircuit: e.MAX_ROUTES_PER_CIRCUIT,
    healthProbeConcurrency: e.HEALTH_PROBE_CONCURRENCY,
    unloadGraceSeconds: e.UNLOAD_GRACE_SECONDS,
    orphanPolicy: e.ORPHAN_POLICY,
    functionTimeoutSeconds: e.FUNCTION_TIMEOUT_SECONDS,
    tombstoneRetentionSeconds: e.TOMBSTONE_RETENTION_SECONDS,
    deletedRetentionDays: e.DELETED_RETENTION_DAYS,
    healthTransitionRetentionDays: e.HEALTH_TRANSITION_RETENTION_DAYS,
    unloadDlqUrl: e.UNLOAD_DLQ_URL,
    healthSweeperRoutesPerSecond: e.HEALTH_SWEEPER_ROUTES_PER_SECOND,
    healthMaxSweepers: e.HEALTH_MAX_SWEEPERS,
  });
}

let cached: Config | undefined;

/** The configuration of this cold start (read once, then reused). */
export function getConfig(): Config {
  cached ??= parseConfig(process.env);
  return cached;
}

/** For tests and tools that change the environment between runs in one process. */
export function resetConfigCache(): void {
  cached = undefined;
}
