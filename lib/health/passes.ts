// Several sweeps in one invocation (DESIGN §5): a pass, then sleep until the next circuit is due,
// and again, as long as another pass fits before the safety margin. When the remaining time at
// the start is below one interval (the smallest health-check interval), exactly one pass runs, so
// tools can drive single passes. A pass only claims circuits whose probe fits before the margin,
// and the loop waits only for circuits a pass could still claim; after a pass whose claim
// statement failed it waits claimRetryMs (within the time left) instead of retrying at once.
import { nextDue } from '../db/index.js';
import type { Invocation } from '../runtime.js';
import { SWEEP_DEFAULTS } from './defaults.js';
import { addStats, emptyStats, type SweepStats } from './stats.js';
import { longestProbeMs, runSweep, type SweepOptions } from './sweep.js';

export interface RunSweepsOptions extends SweepOptions {
  /** Time left in this invocation (Lambda: context.getRemainingTimeInMillis). */
  remainingMs(): number;
  /** How to wait between passes (tests). */
  sleep?: (ms: number) => Promise<void>;
}

export interface SweepsResult {
  passes: SweepStats[];
  total: SweepStats;
}

export async function runSweeps(inv: Invocation, opts: RunSweepsOptions): Promise<SweepsResult> {
  const sleep = opts.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  const now = opts.now ?? (() => new Date());
  const margin = opts.safetyMarginMs ?? SWEEP_DEFAULTS.safetyMarginMs;
  const driftEveryMs = opts.driftEveryMs ?? SWEEP_DEFAULTS.driftEveryMs;
  const reserveMs = opts.probeReserveMs ?? SWEEP_DEFAULTS.probeReserveMs;
  const claimRetryMs = opts.claimRetryMs ?? SWEEP_DEFAULTS.claimRetryMs;
  const clampMs = longestProbeMs(inv.rt.config.functionTimeoutSeconds, { safetyMarginMs: margin, probeReserveMs: reserveMs });
  const passes: SweepStats[] = [];
  const total = emptyStats();

  const first = await nextDue(inv.rt.db);
  total.dbRoundTrips++;
  const oneIntervalMs = (first.minIntervalSeconds ?? Infinity) * 1000;
  const single = opts.remainingMs() < oneIntervalMs + margin;
  let lastDriftAt = -Infinity;

  for (;;) {
    const budget = opts.remainingMs() - margin;
    const drift = opts.drift !== false && Date.now() - lastDriftAt >= driftEveryMs;
    const s = await runSweep(inv, {
      ...opts,
      drift,
      // The first pass always runs; with time left, its probes end before the margin.
      ...(budget > 0 ? { deadline: Date.now() + budget } : {}),
    });
    if (drift) lastDriftAt = Date.now();
    passes.push(s);
    addStats(total, s);
    if (single) break;

    // Circuits whose probe no longer fits are left to a later invocation: not waited for.
    const maxTimeoutMs = Math.floor(opts.remainingMs() - margin - reserveMs);
    if (maxTimeoutMs < 1) break;
    const next = await nextDue(inv.rt.db, { maxTimeoutMs, clampMs }, now());
    total.dbRoundTrips++;
    if (next.at === null) break;
    // A little slack: timers may fire a millisecond early, and waking before the due time would
    // only make an empty pass. A failed claim is not retried at once (it would fail the same way).
    const waitMs = Math.max(0, next.at.getTime() - now().getTime() + 10, s.claimFailures > 0 ? claimRetryMs : 0);
    // Another pass must fit: the wait, a pass as long as the last one, and the margin.
    if (opts.remainingMs() - waitMs - s.durationMs - margin <= 0) break;
    if (waitMs > 0) await sleep(waitMs);
  }
  return { passes, total };
}
