// The pure step of a sweep: a claimed circuit's probe results -> the writes to make. Routes whose
// effective status changed go through the circuit's lock (they change what Traefik sees); the
// others only update their counters, unlocked.
import type { ClaimedCircuit, CounterWrite, RouteHealthWrite } from '../model.js';
import { inInitialDelay, nextHealth, type ProbeOutcome } from './state.js';

export interface Decision {
  /** Status changes: written under the lock, then propagated. */
  changed: RouteHealthWrite[];
  /** Everything else: counters, last check, last error. */
  counters: CounterWrite[];
  probes: number;
  failures: number;
  refused: number;
}

export function decide(c: ClaimedCircuit, results: ReadonlyArray<ProbeOutcome & { refused?: boolean }>, at: Date): Decision {
  if (results.length !== c.routes.length) throw new RangeError(`${results.length} results for ${c.routes.length} routes`);
  const atIso = at.toISOString();
  const d: Decision = { changed: [], counters: [], probes: 0, failures: 0, refused: 0 };
  c.routes.forEach((r, j) => {
    const p = results[j]!;
    d.probes++;
    if (!p.ok) d.failures++;
    if (p.refused === true) d.refused++;
    const t = nextHealth(r, p, c.healthCheck, inInitialDelay(r.createdAt, c.healthCheck.initialDelaySeconds, at));
    const w: RouteHealthWrite = {
      routeId: r.routeId,
      host: r.host,
      port: r.port,
      expected: { status: r.status, consecutiveSuccesses: r.consecutiveSuccesses, consecutiveFailures: r.consecutiveFailures, lastCheckedAt: r.lastCheckedAt },
      next: t.health,
      lastError: t.lastError,
      checkedAt: atIso,
    };
    if (t.changed) d.changed.push(w);
    else d.counters.push({ ...w, circuitId: c.id });
  });
  return d;
}
