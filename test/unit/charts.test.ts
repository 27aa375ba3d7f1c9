// npm run charts (harness/charts): each chart renders from a small fixture with its series and
// labels, rendering is byte-identical twice over, the importers condense bench and chaos output,
// and malformed input fails with the file and the field named.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { importBench, quantilesOf } from '../../harness/charts/import-bench.js';
import { importChaos, outcomeOf } from '../../harness/charts/import-chaos.js';
import { renderChart, renderSvg, textWidth } from '../../harness/charts/render.js';
import { main } from '../../harness/charts/run.js';
import { InputError, OUTCOMES, writeSnapshot, type ChaosData, type ContentionData, type PropagateData, type SweepData } from '../../harness/charts/schema.js';
import { propagateSpec } from '../../harness/charts/specs.js';

const src = { file: 'fixture' };

const propagate: PropagateData = {
  kind: 'propagate',
  source: src,
  routes: 10,
  floorMs: 1.62,
  variants: [
    { name: 'circuitry full', n: 200, min: 2.4, p50: 5.5, p90: 8, p99: 13, max: 17, mean: 6 },
    { name: 'circuitry no-op', n: 200, min: 2.3, p50: 3.8, p90: 6.5, p99: 14, max: 17, mean: 4.5 },
    { name: 'baseline full', n: 200, min: 15, p50: 22, p90: 32, p99: 43, max: 52, mean: 24 },
    { name: 'floor: SELECT 1', n: 200, min: 0.5, p50: 0.74, p90: 1, p99: 4, max: 5, mean: 0.9 },
  ],
};

const sweep: SweepData = {
  kind: 'sweep',
  source: src,
  probeTimeoutMs: 1000,
  rows: [
    { series: 'health', routes: 10_000, circuits: 2000, concurrency: 1, wallMs: 3950, behaviours: { healthy: 9400, flapping: 500, hanging: 100 } },
    { series: 'health', routes: 20_000, circuits: 4000, concurrency: 1, wallMs: 7290 },
    { series: 'health', routes: 10_000, circuits: 2000, concurrency: 2, wallMs: 2500 },
    { series: 'health', routes: 20_000, circuits: 4000, concurrency: 4, wallMs: 2900 },
  ],
};

const row = (variant: string, writers: number, updatesPerS: number, wait: number) => ({
  variant,
  writers,
  processes: 4,
  circuits: variant === 'one circuit per writer' ? writers : 1,
  updatesPerWriter: 20,
  committed: writers * 20,
  attempted: writers * 20,
  updatesPerS,
  lockWaitP50Ms: wait,
  lockWaitP99Ms: wait * 1.3,
  lostUpdateCheckOk: true,
});
const contention: ContentionData = {
  kind: 'contention',
  source: src,
  rows: [row('one circuit', 64, 116, 534), row('one circuit per writer', 64, 374, 0), row('one circuit, combining', 64, 301, 12)],
};

const chaos: ChaosData = {
  kind: 'chaos',
  source: src,
  run: { seed: 'fixture1', strategy: 'circuitry', ops: 40, procs: 2, verdict: 'clean: no violation', violations: 0 },
  binS: 1,
  workloadEndS: 6.5,
  outcomes: [...OUTCOMES],
  ops: [
    { t: 0, counts: [7, 0, 0, 0, 0] },
    { t: 1, counts: [9, 0, 3, 0, 0] },
    { t: 2, counts: [0, 0, 0, 4, 0] },
    { t: 3, counts: [0, 0, 0, 0, 1] },
    { t: 4, counts: [0, 2, 0, 0, 0] },
    { t: 5, counts: [14, 0, 0, 0, 0] },
  ],
  faults: [
    { kind: 'pause', how: 'armed', startS: 0.5, endS: 3.1, target: 1 },
    { kind: 'kill', how: 'external', startS: 3.2, endS: 3.2, target: 0 },
    { kind: 'etcd-restart', how: 'service', startS: 2, endS: 2.7 },
    { kind: 'brownout', how: 'service', startS: 4, endS: 4.6 },
  ],
  refusals: [
    { t: 3.3, kind: 'etcd Txn compare failed' },
    { t: 3.4, kind: 'database fence' },
  ],
  convergence: { converged: true, lastFaultEndS: 4.6, atS: 7.5, afterLastFaultMs: 2900, sweepMs: 109 },
};

let dir: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'circuitry-charts-'));
});
afterEach(() => {
  fs.rmSync(dir, { recursive: true, force: true });
  vi.restoreAllMocks();
});

function writeAll(d = dir): void {
  writeSnapshot(path.join(d, 'propagate.json'), propagate);
  writeSnapshot(path.join(d, 'sweep.json'), sweep);
  writeSnapshot(path.join(d, 'contention.json'), contention);
  writeSnapshot(path.join(d, 'chaos.json'), chaos);
}

/** The text of every <text> element and of every line (<tspan>) of a multi-line one, unescaped. */
const texts = (svg: string): string[] =>
  [...svg.matchAll(/<(?:text|tspan)[^>]*>([^<]*)<\/(?:text|tspan)>/g)].map((m) =>
    m[1]!.replace(/&#x27;|&#39;|&apos;/g, "'").replace(/&amp;/g, '&').replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&quot;/g, '"'),
  );

describe('charts render from their snapshots', () => {
  it('propagate latency: circuitry and reference series, percentile axis, floor, no floor variants', async () => {
    writeAll();
    const a = await renderChart('propagate', dir);
    const b = await renderChart('propagate', dir);
    expect(a.svg).toBe(b.svg);
    expect(a.warnings).toEqual([]);
    expect(a.out).toBe('propagate-latency.svg');
    const t = texts(a.svg);
    expect(t).toContain('Propagate latency: circuitry vs the reference write path (10-route circuit)');
    expect(t).toEqual(expect.arrayContaining(['circuitry: a change', 'circuitry: nothing to change', 'reference write path: a change', 'p50', 'p90', 'p99', 'min']));
    expect(t).toContain('propagate latency (ms, log scale)');
    expect(t).toContain('floor: 2 etcd + 1 database round trips (p50 each), 1.62 ms');
    expect(t.join('\n')).not.toContain('SELECT 1');
    expect(a.svg.startsWith('<svg')).toBe(true);
    expect(a.svg).toContain('fill="#ffffff"');
  });

  it('propagate latency: raw-sample quantiles draw a curve out to the max', async () => {
    const samples = Array.from({ length: 1000 }, (_, i) => 2 + (i % 100) / 10 + (i === 999 ? 40 : 0));
    const q = quantilesOf(samples);
    expect(q[0]).toEqual([0, 2]);
    expect(q[q.length - 1]).toEqual([0.999, 51.9]);
    expect(q.every(([x], i) => i === 0 || x > q[i - 1]![0])).toBe(true);
    const spec = propagateSpec({ ...propagate, variants: [{ ...propagate.variants[0]!, n: 1000, quantiles: q }] });
    const { svg, warnings } = await renderSvg(spec);
    expect(warnings).toEqual([]);
    expect(texts(svg)).toContain('p99.9');
  });

  it('sweep time: one series per concurrency, seconds, the health mix', async () => {
    writeAll();
    const a = await renderChart('sweep', dir);
    expect((await renderChart('sweep', dir)).svg).toBe(a.svg);
    expect(a.warnings).toEqual([]);
    const t = texts(a.svg);
    expect(t).toEqual(expect.arrayContaining(['bench:health: 1 sweeper', 'bench:health: 2 concurrent sweepers', 'bench:health: 4 concurrent sweepers']));
    expect(t).toEqual(expect.arrayContaining(['sweep wall time (s)', 'routes swept', '3.95 s', '7.29 s', '2.9 s']));
    expect(t.some((x) => x.includes('94 % healthy, 5 % flapping, 1 % hanging past the 1 s probe timeout'))).toBe(true);
  });

  it('hot-circuit throughput: every variant gets a bar, its rate and its lock wait', async () => {
    writeAll();
    const a = await renderChart('contention', dir);
    expect((await renderChart('contention', dir)).svg).toBe(a.svg);
    expect(a.warnings).toEqual([]);
    const t = texts(a.svg);
    expect(t).toEqual(expect.arrayContaining(['all writers on one circuit', 'each writer on its own circuit', 'one circuit, combining']));
    expect(t).toEqual(expect.arrayContaining(['116/s', '374/s', '301/s', 'lock wait p50 534 ms', 'no lock wait', '64 writers (4 processes)', 'committed updates per second']));
  });

  it('chaos timeline: outcomes, fault lanes (unknown kinds too), refusal lanes, convergence', async () => {
    writeAll();
    const a = await renderChart('chaos', dir);
    expect((await renderChart('chaos', dir)).svg).toBe(a.svg);
    expect(a.warnings).toEqual([]);
    const t = texts(a.svg);
    expect(t).toEqual(expect.arrayContaining(['succeeded', 'conflict / not found', 'unavailable', 'error / killed', 'not applied / partial']));
    expect(t).toEqual(expect.arrayContaining(['pause', 'kill', 'etcd-restart', 'brownout']));
    expect(t).toEqual(expect.arrayContaining(['etcd Txn compare failed', 'etcd: write refused', "writer's session clock", 'database fence']));
    expect(t).toContain('converged 2.9 s after the last fault');
    expect(t).toContain('seconds since the first operation started');
    expect(t.some((x) => x.startsWith('Refused writes: 2'))).toBe(true);
  });

  it('output has no timestamps or per-process ids: a render in a fresh data dir is byte-identical', async () => {
    writeAll();
    const first = await renderChart('chaos', dir);
    const other = fs.mkdtempSync(path.join(os.tmpdir(), 'circuitry-charts-'));
    try {
      writeAll(other);
      await renderChart('propagate', other); // advances vega's global clip-id counter
      expect((await renderChart('chaos', other)).svg).toBe(first.svg);
    } finally {
      fs.rmSync(other, { recursive: true, force: true });
    }
    expect(first.svg).not.toMatch(/20\d\d-\d\d-\d\dT/);
  });

  it('text widths are a fixed table, bold wider', () => {
    expect(textWidth('mmm', 10)).toBeGreaterThan(textWidth('iii', 10));
    expect(textWidth('abc', 12, true)).toBeGreaterThan(textWidth('abc', 12));
  });
});

describe('bad input names the file and the field', () => {
  it('a wrong type', async () => {
    writeAll();
    const bad = JSON.parse(fs.readFileSync(path.join(dir, 'propagate.json'), 'utf8'));
    bad.variants[1].p50 = 'fast';
    fs.writeFileSync(path.join(dir, 'propagate.json'), JSON.stringify(bad));
    const err = await renderChart('propagate', dir).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InputError);
    expect((err as Error).message).toMatch(/propagate\.json: variants\[1\]\.p50: .*number/);
  });

  it('a missing field, a short row, not JSON, a missing file', async () => {
    writeAll();
    const sw = JSON.parse(fs.readFileSync(path.join(dir, 'sweep.json'), 'utf8'));
    delete sw.rows[0].wallMs;
    fs.writeFileSync(path.join(dir, 'sweep.json'), JSON.stringify(sw));
    await expect(renderChart('sweep', dir)).rejects.toThrow(/sweep\.json: rows\[0\]\.wallMs/);
    const ch = JSON.parse(fs.readFileSync(path.join(dir, 'chaos.json'), 'utf8'));
    ch.ops[2].counts = [1, 2];
    fs.writeFileSync(path.join(dir, 'chaos.json'), JSON.stringify(ch));
    await expect(renderChart('chaos', dir)).rejects.toThrow(/chaos\.json: ops\[2\]\.counts: /);
    fs.writeFileSync(path.join(dir, 'contention.json'), '{"kind": "contention",');
    await expect(renderChart('contention', dir)).rejects.toThrow(/contention\.json: not JSON/);
    fs.rmSync(path.join(dir, 'contention.json'));
    await expect(renderChart('contention', dir)).rejects.toThrow(/contention\.json: cannot read: ENOENT/);
  });

  it('the CLI: exit 2 with the message on stderr, --help exits 0 without writing anything', async () => {
    const err = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
    const out = vi.spyOn(process.stdout, 'write').mockImplementation(() => true);
    writeAll();
    fs.writeFileSync(path.join(dir, 'sweep.json'), '{"kind":"sweep","source":{"file":"x"},"rows":[]}');
    const charts = path.join(dir, 'charts');
    expect(await main(['--data', dir, '--out', charts, '--only', 'sweep'])).toBe(2);
    expect(err.mock.calls.map((c) => String(c[0])).join('')).toMatch(/sweep\.json: rows: /);
    expect(fs.existsSync(path.join(charts, 'sweep-time.svg'))).toBe(false);
    expect(await main(['--only', 'pie'])).toBe(2);
    expect(await main(['--bogus'])).toBe(2);
    expect(await main(['--check', '--import-chaos', dir])).toBe(2);
    expect(await main(['--help', '--data', path.join(dir, 'nowhere')])).toBe(0);
    expect(out.mock.calls.map((c) => String(c[0])).join('')).toContain('Usage: npm run charts');
    expect(fs.existsSync(path.join(dir, 'nowhere'))).toBe(false);
  });

  it('the CLI renders, and --check compares with what is on disk', async () => {
    vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
    writeAll();
    const charts = path.join(dir, 'charts');
    expect(await main(['--data', dir, '--out', charts])).toBe(0);
    expect(fs.readdirSync(charts).sort()).toEqual(['chaos-timeline.svg', 'contention-throughput.svg', 'propagate-latency.svg', 'sweep-time.svg']);
    expect(await main(['--data', dir, '--out', charts, '--check'])).toBe(0);
    fs.appendFileSync(path.join(charts, 'sweep-time.svg'), ' ');
    expect(await main(['--data', dir, '--out', charts, '--check'])).toBe(1);
  });
});

describe('importers', () => {
  const summary = (o: Record<string, unknown> = {}) => ({ n: 200, p50: 5, p90: 8, p99: 12, mean: 6, min: 2, max: 20, ...o });

  it('bench: propagate, contention (merged over files) and sweep with concurrency rows', () => {
    const bench = path.join(dir, 'bench');
    fs.mkdirSync(bench);
    const results = {
      date: '2026-11-27T10:00:00.000Z',
      machine: { cpu: 'AMD EPYC', cpus: 2 },
      node: 'v20.20.2',
      parts: {
        propagate: {
          measuredAt: '2026-11-27T10:00:00.000Z',
          code: { commit: 'abc' },
          routes: 10,
          derived: { floor2Etcd1DbMs: 1.6 },
          variants: [
            { name: 'circuitry full', latencyMs: summary(), samplesMs: [3, 1, 2, 4] },
            { name: 'baseline full', latencyMs: summary({ p50: 17 }) },
          ],
        },
        contention: {
          measuredAt: '2026-11-27T10:05:00.000Z',
          scenarios: ['one circuit', 'one circuit per writer'].map((scenario, i) => ({
            scenario,
            processes: 4,
            writersPerProcess: 16,
            updatesPerWriter: 20,
            circuits: i === 0 ? 1 : 64,
            attempted: 1280,
            committed: 1280,
            throughputPerS: i === 0 ? 116 : 374,
            lockWaitMs: summary({ p50: i === 0 ? 534 : 0 }),
            lostUpdateCheck: { ok: true },
          })),
        },
      },
    };
    fs.writeFileSync(path.join(bench, 'results.json'), JSON.stringify(results));
    const small = structuredClone(results) as typeof results & { parts: Record<string, unknown> };
    delete (small.parts as Record<string, unknown>).propagate;
    small.parts.contention.scenarios = small.parts.contention.scenarios.map((s) => ({ ...s, writersPerProcess: 2 }));
    fs.writeFileSync(path.join(bench, 'contention-8.json'), JSON.stringify(small));
    fs.writeFileSync(
      path.join(bench, 'health.json'),
      JSON.stringify({
        date: '2026-11-27T11:00:00.000Z',
        settings: { timeoutMs: 1000 },
        runs: [
          { routes: 10_000, circuits: 2000, sweepers: 1, wallMs: 3950, probeMs: 3600, driftMs: 300, behaviours: { healthy: 9400, flapping: 500, hanging: 100 } },
          { routes: 10_000, circuits: 2000, concurrency: 4, wallMs: 1900 },
        ],
      }),
    );
    const r = importBench(bench);
    const q = r.propagate!.variants[0]!.quantiles!;
    expect(q[0]).toEqual([0, 1]);
    expect(q).toContainEqual([0.5, 2]);
    expect(q[q.length - 1]).toEqual([0.75, 4]);
    expect(r.propagate!.variants[1]!.quantiles).toBeUndefined();
    expect(r.propagate!.floorMs).toBe(1.6);
    expect(r.propagate!.source.commit).toBe('abc');
    expect(r.contention!.rows.map((x) => `${x.variant}@${x.writers}`)).toEqual(['one circuit@8', 'one circuit per writer@8', 'one circuit@64', 'one circuit per writer@64']);
    expect(r.sweep!.rows.map((x) => [x.concurrency, x.wallMs])).toEqual([
      [1, 3950],
      [4, 1900],
    ]);
    expect(r.sweep!.probeTimeoutMs).toBe(1000);
  });

  it('bench: a malformed field is named with its file and path', () => {
    const f = path.join(dir, 'results.json');
    fs.writeFileSync(f, JSON.stringify({ parts: { propagate: { routes: 10, variants: [{ name: 'x', latencyMs: summary({ p50: null }) }] } } }));
    expect(() => importBench(f, () => 'bench/results.json')).toThrow('bench/results.json: parts.propagate: variants[0].latencyMs.p50');
    fs.writeFileSync(f, JSON.stringify({ hello: 1 }));
    expect(() => importBench(f, () => 'bench/results.json')).toThrow(/bench\/results\.json: neither a bench result/);
  });

  it('chaos: bins by outcome, faults, refusals as summary.json fencing counts them, convergence', () => {
    const out = path.join(dir, 'chaos');
    fs.mkdirSync(out);
    const t0 = 1_796_000_000_000;
    fs.writeFileSync(
      path.join(out, 'summary.json'),
      JSON.stringify({
        verdict: 'clean: no violation',
        seed: 'x1',
        strategy: 'circuitry',
        startedAt: '2026-12-01T00:00:00.000Z',
        settings: { ops: 5, procs: 2 },
        violations: { total: 0 },
        convergence: { converged: true, lastFaultEndAt: new Date(t0 + 2500).toISOString(), afterLastFaultMs: 3000, afterWorkloadMs: 2000, sweepMs: 100 },
        fencing: { refusedByEtcd: 1, refusedTxns: 1, refusedLocally: 1, refusedByDatabase: 0 },
      }),
    );
    fs.writeFileSync(
      path.join(out, 'faults.jsonl'),
      [{ n: 0, kind: 'pause', how: 'armed', target: 1, start: t0 + 200, end: t0 + 2500 }, { n: 1, kind: 'kill', how: 'external', start: t0 + 1000, end: t0 + 1000 }].map((x) => JSON.stringify(x)).join('\n') + '\n',
    );
    const op = (o: Record<string, unknown>) => JSON.stringify({ w: 0, inc: 0, pid: 1, i: 0, slot: 0, leases: [], txns: [], ...o });
    fs.writeFileSync(
      path.join(out, 'ops-0.jsonl'),
      [
        op({ kind: 'create', status: 'ok', start: t0, end: t0 + 300 }),
        op({ kind: 'update-routes', status: 'conflict', start: t0 + 100, end: t0 + 900 }),
        op({ kind: 'update-routes', status: 'ok-not-applied', start: t0 + 1200, end: t0 + 2600, detail: 'etcd session lost: paused', txns: [{ rev: 9, ok: false, sent: t0 + 2550, at: t0 + 2560 }] }),
      ].join('\n') + '\n{"w":0,"kind":"swe',
    );
    fs.writeFileSync(path.join(out, 'ops-1.jsonl'), op({ kind: 'sweep', status: 'partial', start: t0 + 1500, end: t0 + 1700, extra: { why: 'write refused: this writer no longer owns the circuit lock' } }) + '\n');
    fs.writeFileSync(path.join(out, 'killed-ops.jsonl'), JSON.stringify({ w: 1, i: 3, kind: 'sweep', start: t0 + 800, killedAt: t0 + 1000 }) + '\n');
    const { data, notes } = importChaos(out);
    expect(data.outcomes).toEqual(['succeeded', 'not applied / partial', 'conflict / not found', 'unavailable', 'error / killed']);
    expect(data.ops).toEqual([
      { t: 0, counts: [1, 0, 1, 0, 0] },
      { t: 1, counts: [0, 1, 0, 0, 1] },
      { t: 2, counts: [0, 1, 0, 0, 0] },
    ]);
    expect(data.faults).toEqual([
      { kind: 'pause', how: 'armed', startS: 0.2, endS: 2.5, target: 1 },
      { kind: 'kill', how: 'external', startS: 1, endS: 1 },
    ]);
    expect(data.refusals).toEqual([
      { t: 1.7, kind: 'etcd: write refused' },
      { t: 2.56, kind: 'etcd Txn compare failed' },
      { t: 2.6, kind: "writer's session clock" },
    ]);
    expect(data.convergence).toEqual({ converged: true, lastFaultEndS: 2.5, atS: 5.5, afterLastFaultMs: 3000, sweepMs: 100 });
    expect(data.workloadEndS).toBe(2.6);
    expect(notes.join('\n')).toContain('1 operation line(s) cut by a kill');
    expect(notes.join('\n')).not.toContain('fencing says');
    expect(outcomeOf('http-418')).toBe('error / killed');
  });

  it('chaos: a bad line or a missing file is named', () => {
    const out = path.join(dir, 'chaos');
    fs.mkdirSync(out);
    expect(() => importChaos(out)).toThrow(/summary\.json: cannot read/);
    fs.writeFileSync(
      path.join(out, 'summary.json'),
      JSON.stringify({ verdict: 'v', seed: 1, strategy: 's', settings: { ops: 1, procs: 1 }, violations: { total: 0 }, convergence: { converged: false, lastFaultEndAt: null, afterLastFaultMs: null, afterWorkloadMs: null, sweepMs: 1 } }),
    );
    fs.writeFileSync(path.join(out, 'faults.jsonl'), '');
    expect(() => importChaos(out)).toThrow(/no ops-<w>\.jsonl file/);
    fs.writeFileSync(path.join(out, 'ops-0.jsonl'), '{"kind":"create","status":"ok","start":1,"end":"later"}\n');
    expect(() => importChaos(out)).toThrow(/ops-0\.jsonl: line 1: end: /);
  });
});
