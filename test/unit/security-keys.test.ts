// Key-injection proof: whatever the API's schemas ACCEPT renders only keys under
// this circuit's own names inside this worker's own root. Inputs are adversarial: '/', '..', NUL,
// uppercase, unicode look-alikes, backticks, spaces, commas, parentheses, very long strings,
// mixed into otherwise valid values, for every field that reaches a key or a value: the circuit
// id, the worker authority, hostname and wildcard domain, the subdomain, route hosts, ports,
// ratios, allowed client IPs and the health path. Rejected inputs are fine (the API answers 400);
// accepted ones must render safely.
import { randomUUID } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  authoritySchema,
  createCircuitSchema,
  newRouteHealth,
  routesSchema,
  workerInputSchema,
  type Circuit,
  type HealthStatus,
  type Worker,
} from '../../lib/model.js';
import { circuitIdOfKey, circuitKeyPrefixes, circuitNames, workerRoot } from '../../lib/traefik/names.js';
import { render, RenderError } from '../../lib/traefik/render.js';
import { storedCircuit } from '../support/circuits.js';
import { z } from 'zod';

const NASTY = [
  '/', '..', '../', '/..', '.', '\0', '`', ' ', ',', '(', ')', '\\', '%2f', '%2e%2e', 'A', 'Z', 'É', '\u212A' /* Kelvin K */,
  '\u0130' /* İ */, 'ß', '\uFF0F' /* fullwidth / */, '\u2215' /* division slash */, '\u200B', '\u202E', '\uFEFF', '\n', '\r', '\t',
  '*', '#', '?', '&', '"', "'", '{', '}', '$', '|', ';', '=', '@', ':', '[', ']', '<', '>', '😀', 'а' /* Cyrillic a */, '１', '\x7f',
  '||', 'Host(`evil`)', '`) || Host(`x', 'worker_', 'bai_router_', '/http/routers/', '\ud800',
];
const SAFE = ['a', 'b', 'z', '0', '1', '9', '-', '.', 'x', 'w'];

/**
 * Input builders, given how often a field keeps its valid value (per case, so that some cases
 * are almost all valid, reaching the renderer, and others are almost all noise).
 */
function inputs(validWeight: number) {
  const adversarial = (valid: fc.Arbitrary<string>): fc.Arbitrary<string> =>
    fc.oneof(
      { weight: validWeight, arbitrary: valid },
      {
        weight: 2,
        arbitrary: fc
          .tuple(valid, fc.array(fc.tuple(fc.nat(), fc.constantFrom(...NASTY)), { minLength: 1, maxLength: 3 }))
          .map(([v, ins]) => ins.reduce((s, [at, piece]) => s.slice(0, at % (s.length + 1)) + piece + s.slice(at % (s.length + 1)), v)),
      },
      { weight: 1, arbitrary: fc.array(fc.constantFrom(...NASTY, ...SAFE), { minLength: 1, maxLength: 12 }).map((a) => a.join('')) },
      { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 20 }) },
      { weight: 1, arbitrary: fc.tuple(fc.constantFrom('a', '-', '0', 'a.', 'é', '/'), fc.integer({ min: 60, max: 600 })).map(([c, n]) => c.repeat(n)) },
    );
  const number = (valid: fc.Arbitrary<number>) => fc.oneof({ weight: validWeight, arbitrary: valid }, { weight: 3, arbitrary: anyNumber });

  const label = fc.stringMatching(/^[a-z0-9]([a-z0-9-]{0,8}[a-z0-9])?$/);
  const hostname = fc.array(label, { minLength: 1, maxLength: 4 }).map((l) => l.join('.'));
  const authority = fc.stringMatching(/^[a-z0-9-]{1,12}$/);
  const ipv4 = fc.tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255)).map((p) => p.join('.'));
  const cidr = fc.tuple(ipv4, fc.nat(32)).map(([ip, bits]) => `${ip}/${bits}`);
  const uuid = fc.oneof(fc.uuid(), fc.uuid().map((u) => u.toUpperCase()));

  const routeInput = fc.record({
    routeId: adversarial(uuid),
    sessionId: adversarial(uuid),
    host: adversarial(fc.oneof(ipv4, hostname)),
    port: number(fc.integer({ min: 1, max: 65535 })),
    trafficRatio: number(fc.constantFrom(1, 0.5, 0.25, 0.001, 0.0004, 5e-324)),
  });

  return fc.record({
    authority: adversarial(authority),
    otherAuthority: authority,
    worker: fc.record({ hostname: adversarial(hostname), wildcardDomain: fc.option(adversarial(hostname), { nil: null }), tls: fc.boolean() }),
    circuit: fc.record({
      id: adversarial(uuid),
      protocol: fc.constantFrom('http', 'tcp'),
      appMode: fc.constantFrom('inference', 'interactive'),
      frontend: fc.oneof(
        number(fc.integer({ min: 1, max: 65535 })).map((port) => ({ mode: 'port', port })),
        adversarial(label).map((subdomain) => ({ mode: 'wildcard', subdomain })),
      ),
      allowedClientIps: fc.array(adversarial(cidr), { maxLength: 3 }),
      healthCheck: fc.option(fc.record({ path: adversarial(fc.stringMatching(/^\/[a-z0-9/._-]{0,20}$/)) }), { nil: null }),
      routes: fc.array(routeInput, { minLength: 1, maxLength: 4 }),
    }),
    statuses: fc.array(fc.constantFrom<HealthStatus>('unknown', 'healthy', 'unhealthy'), { minLength: 4, maxLength: 4 }),
    traefikRoot: fc.constantFrom('traefik', 'traefik-x', 'kv/traefik.prod'),
    extraMiddlewares: fc.constantFrom([], ['ratelimit@file'], ['a@file', 'b']),
  });
}

const anyNumber = fc.oneof(fc.integer({ min: -2, max: 70000 }), fc.double(), fc.constantFrom(0, -0, 1, 65535, 65536, 5e-324, 1.0000001, 0.0004));
const WEIGHTS = [0, 20, 100, 400] as const;
const built = new Map(WEIGHTS.map((w) => [w, inputs(w)]));
const input = fc.constantFrom(...WEIGHTS).chain((w) => built.get(w)!);

/** Segments that may follow a circuit's name in a key (Traefik's schema, our layout). */
const VOCABULARY = new Set(['rule', 'service', 'entryPoints', 'middlewares', 'tls', 'ipAllowList', 'sourceRange', 'loadBalancer', 'servers', 'url', 'weight', 'address', 'healthCheck', 'path', 'interval', 'timeout', 'status', 'followRedirects']);

const CREATE = createCircuitSchema();
const UPDATE = z.strictObject({ routes: routesSchema() });

interface Outcome {
  accepted: boolean;
  rendered: number;
}

function runOne(v: typeof input extends fc.Arbitrary<infer T> ? T : never): Outcome {
  // The three things the API parses before a circuit can exist: the worker's path authority,
  // the worker body, the circuit body (and, for later updates, a routes body).
  const a = authoritySchema.safeParse(v.authority);
  const w = workerInputSchema.safeParse(v.worker);
  const c = CREATE.safeParse({ ...v.circuit, worker: v.authority });
  const r = UPDATE.safeParse({ routes: v.circuit.routes });
  if (!a.success || !w.success || !c.success) return { accepted: false, rendered: 0 };
  if (!r.success) throw new Error('routes accepted at create but not in an update');

  const worker: Worker = { authority: a.data, hostname: w.data.hostname, wildcardDomain: w.data.wildcardDomain ?? null, tls: w.data.tls };
  const id = c.data.id ?? randomUUID();
  const circuit: Circuit = storedCircuit({
    id,
    worker: c.data.worker,
    protocol: c.data.protocol,
    appMode: c.data.appMode,
    frontend: c.data.frontend,
    allowedClientIps: c.data.allowedClientIps,
    healthCheck: c.data.healthCheck,
    routes: c.data.routes.map((rt, i) => ({ ...rt, health: { ...newRouteHealth(), status: v.statuses[i % v.statuses.length]! }, createdAt: '2026-01-01T00:00:00.000Z' })),
  });

  let keys: Map<string, string>;
  try {
    keys = render(circuit, worker, { traefikRoot: v.traefikRoot, extraMiddlewares: v.extraMiddlewares });
  } catch (err) {
    // The only accepted inputs render refuses are the ones the API refuses against the worker
    // (lib/circuits/create.ts: no wildcard domain, tcp wildcard without TLS).
    expect(err).toBeInstanceOf(RenderError);
    const f = circuit.frontend;
    expect(f.mode === 'wildcard' && (worker.wildcardDomain === null || (circuit.protocol === 'tcp' && !worker.tls))).toBe(true);
    return { accepted: true, rendered: 0 };
  }

  const root = workerRoot(v.traefikRoot, worker.authority);
  const prefixes = circuitKeyPrefixes(root, id);
  const names = circuitNames(id);
  const otherRoot = workerRoot(v.traefikRoot, v.otherAuthority);
  // Plain checks in the loop (expect() per key is too slow for thousands of runs).
  const ensure = (ok: boolean, why: string, key: string, value: string): void => {
    if (!ok) throw new Error(`${why}: ${JSON.stringify(key)} = ${JSON.stringify(value)}`);
  };
  for (const [key, value] of keys) {
    // Inside this worker's root, under this circuit's names, and mapping back to this circuit.
    ensure(key.startsWith(`${root}/`), 'outside the worker root', key, value);
    ensure(prefixes.some((p) => key.startsWith(p)), "outside the circuit's prefixes", key, value);
    ensure(circuitIdOfKey(root, key) === id, 'maps to another circuit', key, value);
    ensure(v.otherAuthority === worker.authority || !key.startsWith(`${otherRoot}/`), "inside another worker's root", key, value);
    // Plain ASCII path segments: no empty, '.' or '..' segment, nothing but [A-Za-z0-9_.-].
    ensure(key.split('/').every((seg) => /^[A-Za-z0-9_.-]+$/.test(seg) && seg !== '.' && seg !== '..'), 'bad segment', key, value);
    const tail = key.slice(root.length + 1).split('/').slice(3);
    ensure(tail.every((seg) => VOCABULARY.has(seg) || /^(0|[1-9]\d*)$/.test(seg)), 'unexpected field', key, value);
    // Values cannot break out of their field.
    ensure(!/[\0\r\n]/.test(value), 'control character in value', key, value);
    if (key.endsWith('/rule')) {
      ensure(/^(Host|HostSNI)\(`[a-z0-9.*-]+`\)$/.test(value), 'rule injection', key, value);
    } else if (key.endsWith('/service')) {
      ensure([names.service, `${names.service}_staging`].includes(value), 'foreign service', key, value);
    } else if (key.endsWith('/url')) {
      const u = new URL(value);
      ensure(u.pathname === '/' && u.search === '' && u.username === '' && circuit.routes.some((rt) => u.hostname === rt.host && (u.port || '80') === String(rt.port)), 'url is not a route', key, value);
    } else if (key.endsWith('/address')) {
      ensure(circuit.routes.some((rt) => `${rt.host}:${rt.port}` === value), 'address is not a route', key, value);
    } else if (/\/middlewares\/\d+$/.test(key)) {
      ensure([names.allowList, ...v.extraMiddlewares].includes(value), 'foreign middleware', key, value);
    } else if (/\/sourceRange\/\d+$/.test(key)) {
      ensure(circuit.allowedClientIps.includes(value), 'foreign source range', key, value);
    } else if (/\/entryPoints\/0$/.test(key)) {
      ensure(/^(portproxy_\d{1,5}|domainproxy)$/.test(value), 'bad entry point', key, value);
    } else if (key.endsWith('/weight')) {
      ensure(/^[1-9]\d*$/.test(value), 'bad weight', key, value);
    } else if (key.endsWith('/healthCheck/path')) {
      ensure(/^\/[\x21-\x7e]*$/.test(value), 'bad health path', key, value);
    }
  }
  return { accepted: true, rendered: keys.size };
}

describe('key injection', () => {
  it('any input the API schemas accept renders only its own keys in its own root', { timeout: 60_000 }, () => {
    let accepted = 0;
    let rendered = 0;
    let total = 0;
    fc.assert(
      fc.property(input, (v) => {
        total++;
        const o = runOne(v);
        if (o.accepted) accepted++;
        if (o.rendered > 0) rendered++;
      }),
      { numRuns: 10_000 },
    );
    // The generator must reach the renderer often enough for the property to mean something.
    console.log(`key injection: ${total} inputs, ${accepted} accepted by the schemas, ${rendered} rendered`);
    expect(accepted / total).toBeGreaterThan(0.05);
    expect(rendered).toBeGreaterThan(150);
  });

  it.each([
    ['a slash in the authority', { authority: 'w/../x' }],
    ['dots in the authority', { authority: '..' }],
    ['an uppercase authority', { authority: 'Worker' }],
    ['a NUL in the authority', { authority: 'w\0' }],
    ['a backtick rule injection in the hostname', { hostname: 'a.com`) || Host(`b.com' }],
    ['a comma in the hostname', { hostname: 'a.com,b.com' }],
    ['a space in the subdomain', { subdomain: 'my app' }],
    ['a Kelvin sign in the subdomain', { subdomain: '\u212Aelvin' }],
    ['a slash in the circuit id', { id: '6f1c0e2a-0000-4000-8000-00000000000/' }],
    ['a path in a route host', { host: '10.0.0.1/../../x' }],
    ['an URL in a route host', { host: 'http://10.0.0.1' }],
  ])('rejects %s at the schema', (_, over) => {
    const o = over as { authority?: string; hostname?: string; subdomain?: string; id?: string; host?: string };
    const ok =
      authoritySchema.safeParse(o.authority ?? 'w').success &&
      workerInputSchema.safeParse({ hostname: o.hostname ?? 'a.com' }).success &&
      createCircuitSchema().safeParse({
        ...(o.id ? { id: o.id } : {}),
        worker: 'w',
        protocol: 'http',
        appMode: 'inference',
        frontend: o.subdomain ? { mode: 'wildcard', subdomain: o.subdomain } : { mode: 'port', port: 1 },
        routes: [{ routeId: randomUUID(), sessionId: randomUUID(), host: o.host ?? '10.0.0.1', port: 1 }],
      }).success;
    expect(ok).toBe(false);
  });

  it('an uppercase circuit id is accepted lowercased, so its keys are found by the lowercase prefixes', () => {
    const id = randomUUID().toUpperCase();
    const c = createCircuitSchema().parse({ id, worker: 'w', protocol: 'http', appMode: 'inference', frontend: { mode: 'port', port: 1 } });
    expect(c.id).toBe(id.toLowerCase());
  });
});
