// The staged planner against a simulated etcd: every intermediate state Traefik could read must
// show the circuit either exactly as before or exactly as after (I4), every step must fit one
// transaction, and the end state must be exactly the rendering.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { planSteps, stepOps, type Step } from '../../lib/traefik/plan.js';
import { planNames } from '../../lib/traefik/names.js';
import { render } from '../../lib/traefik/render.js';
import type { Circuit, Protocol, Route, Worker } from '../../lib/model.js';
import { storedCircuit } from '../support/circuits.js';

const CID = '0b7c1a52-4e39-4d2a-9a0f-1e2d3c4b5a69';
const worker: Worker = { authority: 'w1', hostname: 'proxy.example.com', wildcardDomain: 'apps.example.com', tls: false };
const ROOT = 'traefik';
const OPS = 126;

function route(i: number, hostSeed = 0): Route {
  return {
    routeId: `00000000-0000-4000-8000-${i.toString(16).padStart(12, '0')}`,
    sessionId: '11111111-1111-4111-8111-111111111111',
    host: `10.${hostSeed % 250}.${Math.floor(i / 250)}.${(i % 250) + 1}`,
    port: 30000 + (i % 1000),
    trafficRatio: 1,
    health: { status: 'healthy', consecutiveSuccesses: 2, consecutiveFailures: 0, lastCheckedAt: null, lastError: null },
    createdAt: '2026-01-01T00:00:00.000Z',
  };
}

function circuit(protocol: Protocol, routes: Route[], allowed: string[] = []): Circuit {
  return storedCircuit({
    id: CID,
    worker: 'w1',
    protocol,
    appMode: 'inference',
    frontend: { mode: 'port', port: 10205 },
    allowedClientIps: allowed,
    healthCheck: null,
    routes,
  });
}

const keysOf = (c: Circuit | null) => (c === null ? new Map<string, string>() : render(c, worker, { traefikRoot: ROOT }));

function applyStep(state: Map<string, string>, s: Step): Map<string, string> {
  const next = new Map(state);
  for (const p of s.deletePrefixes) for (const k of [...next.keys()]) if (k.startsWith(p)) next.delete(k);
  for (const k of s.deletes) next.delete(k);
  for (const [k, v] of s.puts) next.set(k, v);
  return next;
}

/** What Traefik serves for the circuit: router, the service it references (under the canonical name), middlewares. */
function visible(state: Map<string, string>, protocol: Protocol): Map<string, string> {
  const names = planNames(ROOT, 'w1', CID, protocol);
  const svcName = state.get(`${names.routerPrefix}service`);
  if (svcName === undefined) return new Map();
  const svcPrefix = `${ROOT}/worker_w1/${protocol}/services/${svcName}/`;
  const out = new Map<string, string>();
  for (const [k, v] of state) {
    if (k.startsWith(names.routerPrefix)) out.set(k, k.endsWith('/service') ? names.canonicalService.name : v);
    else if (k.startsWith(svcPrefix)) out.set(names.canonicalService.prefix + k.slice(svcPrefix.length), v);
    else if (k.includes('/middlewares/')) out.set(k, v);
  }
  return out;
}

const same = (a: Map<string, string>, b: Map<string, string>) =>
  a.size === b.size && [...a].every(([k, v]) => b.get(k) === v);

function check(before: Circuit | null, after: Circuit | null, protocol: Protocol) {
  const current = keysOf(before);
  const desired = keysOf(after);
  const steps = planSteps(current, desired, planNames(ROOT, 'w1', CID, protocol), OPS);
  let state = new Map(current);
  const seenBefore = visible(current, protocol);
  const seenAfter = visible(desired, protocol);
  for (const s of steps) {
    expect(stepOps(s)).toBeLessThanOrEqual(OPS);
    state = applyStep(state, s);
    const v = visible(state, protocol);
    expect(same(v, seenBefore) || same(v, seenAfter), 'an intermediate state shows half a change').toBe(true);
  }
  expect([...state].sort()).toEqual([...desired].sort());
  return steps;
}

const many = (n: number, seed = 0) => Array.from({ length: n }, (_, i) => route(i, seed));

describe('planSteps', () => {
  it('uses one step when the change fits one transaction', () => {
    expect(check(circuit('http', many(10)), circuit('http', many(11)), 'http')).toHaveLength(1);
  });

  it('creates a 200-route circuit with the router last', () => {
    const steps = check(null, circuit('http', many(200)), 'http');
    expect(steps.length).toBeGreaterThan(1);
    const last = steps[steps.length - 1]!;
    expect(last.puts.some(([k]) => k.endsWith('/service'))).toBe(true);
    for (const s of steps.slice(0, -1)) expect(s.puts.some(([k]) => k.includes('/routers/'))).toBe(false);
  });

  it('replaces every address of a 200-route circuit make-before-break and ends on canonical names', () => {
    const steps = check(circuit('http', many(200)), circuit('http', many(200, 7)), 'http');
    expect(steps.some((s) => s.puts.some(([k]) => k.includes('_staging/')))).toBe(true);
  });

  it('shrinks 200 routes to 1 and grows back, for tcp too', () => {
    check(circuit('http', many(200)), circuit('http', many(1)), 'http');
    check(circuit('tcp', many(1)), circuit('tcp', many(200, 3)), 'tcp');
  });

  it('removes a circuit with one delete per subtree', () => {
    const steps = check(circuit('http', many(200), ['10.0.0.0/8']), null, 'http');
    expect(steps).toHaveLength(1);
    expect(steps[0]!.deletePrefixes.length).toBeGreaterThan(0);
  });

  it('recovers from an interrupted staging (router left on the staging service)', () => {
    const names = planNames(ROOT, 'w1', CID, 'http');
    const interrupted = new Map(
      [...keysOf(circuit('http', many(150)))].map(([k, v]): [string, string] =>
        k.startsWith(names.canonicalService.prefix)
          ? [names.stagingService.prefix + k.slice(names.canonicalService.prefix.length), v]
          : [k, k.endsWith('/service') && k.startsWith(names.routerPrefix) ? names.stagingService.name : v],
      ),
    );
    const desired = keysOf(circuit('http', many(180, 9)));
    let state = new Map(interrupted);
    for (const s of planSteps(interrupted, desired, names, OPS)) state = applyStep(state, s);
    expect([...state].sort()).toEqual([...desired].sort());
  });

  it('holds I4 for arbitrary route-set changes (property)', () => {
    fc.assert(
      fc.property(
        fc.constantFrom<Protocol>('http', 'tcp'),
        fc.option(fc.integer({ min: 1, max: 260 }), { nil: null }),
        fc.option(fc.integer({ min: 1, max: 260 }), { nil: null }),
        fc.nat(200),
        fc.nat(200),
        (protocol, a, b, seedA, seedB) => {
          check(a === null ? null : circuit(protocol, many(a, seedA)), b === null ? null : circuit(protocol, many(b, seedB)), protocol);
        },
      ),
      { numRuns: 150 },
    );
  });
});
