// The Vega-Lite specifications of the four charts, built from the validated snapshots
// (schema.ts). Pure: the same snapshot gives the same spec. Labels carry units; series that a
// later benchmark may add (more variants, sweep concurrency, contention variants, fault kinds) get
// a colour and a legend entry without a change here.
import type { TopLevelSpec } from 'vega-lite';
import { OUTCOMES, REFUSALS, type ChaosData, type ContentionData, type PropagateData, type SweepData } from './schema.js';

const WIDTH = 720;
const FONT = 'Helvetica, Arial, sans-serif';

/** Light theme shared by every chart. */
const CONFIG = {
  background: '#ffffff',
  font: FONT,
  padding: 12,
  // No ARIA description per bar and tick: it would multiply the size of the SVG.
  aria: false,
  view: { stroke: '#dddddd' },
  title: { fontSize: 16, fontWeight: 'bold' as const, subtitleFontSize: 12, subtitleColor: '#555555', anchor: 'start' as const, offset: 12 },
  axis: { labelFontSize: 11, titleFontSize: 12, titleFontWeight: 'normal' as const, gridColor: '#eeeeee', domainColor: '#888888', tickColor: '#888888' },
  legend: { labelFontSize: 11, titleFontSize: 12, titleFontWeight: 'normal' as const, labelLimit: 360 },
};

/** Tableau-10-like colours: blues and greens for circuitry, reds and oranges for the reference. */
const CIRCUITRY_COLOURS = ['#1f77b4', '#2ca02c', '#17becf', '#9467bd', '#0b4f8a', '#7fbf3f', '#5a9bd4', '#3f7f5f'];
const REFERENCE_COLOURS = ['#d62728', '#ff7f0e', '#8c564b', '#e377c2', '#bcbd22'];
const GENERIC_COLOURS = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f', '#bcbd22', '#17becf'];
const pick = (palette: readonly string[], i: number): string => palette[i % palette.length]!;

const fmt = (x: number, digits = 3): string => String(Number(x.toPrecision(digits)));
const plural = (n: number, one: string, many = `${one}s`): string => `${n} ${n === 1 ? one : many}`;

// ---- 1. propagate latency distribution -------------------------------------------------------------

const VARIANT_LABELS: Record<string, string> = {
  'circuitry full': 'circuitry: a change',
  'circuitry no-op': 'circuitry: nothing to change',
  'circuitry first-sight full': 'circuitry: a change, first sight of the circuit',
  'circuitry first-sight no-op': 'circuitry: nothing to change, first sight',
  'circuitry invocation (grant+full+revoke)': 'circuitry: whole request (lease grant, change, revoke)',
  'baseline full': 'reference write path: a change',
  'baseline no-op': 'reference write path: nothing to change',
};
const isReference = (name: string): boolean => /^(baseline|reference)\b/.test(name);
const isFloor = (name: string): boolean => /^floor\b/.test(name);
export const variantLabel = (name: string): string => VARIANT_LABELS[name] ?? name.replace(/^baseline\b/, 'reference write path:');

/** Percentile q as "nines" (-log10(1 - q)): p50 0.3, p90 1, p99 2, the max of n samples log10(n). */
const nines = (q: number): number => (q <= 0 ? 0 : Math.round(-Math.log10(1 - q) * 1e4) / 1e4);

export function propagateSpec(d: PropagateData): TopLevelSpec {
  const shown = d.variants.filter((v) => !isFloor(v.name));
  if (shown.length === 0) throw new Error('propagate: no circuitry or reference variant (only floors)');
  const ordered = [...shown.filter((v) => !isReference(v.name)), ...shown.filter((v) => isReference(v.name))];
  const domain = ordered.map((v) => variantLabel(v.name));
  let ci = 0;
  let ri = 0;
  const range = ordered.map((v) => (isReference(v.name) ? pick(REFERENCE_COLOURS, ri++) : pick(CIRCUITRY_COLOURS, ci++)));
  const values = ordered.flatMap((v) => {
    const variant = variantLabel(v.name);
    const group = isReference(v.name) ? 'reference write path' : 'circuitry';
    const pts: Array<[number, number, string]> = v.quantiles
      ? v.quantiles.map(([q, ms], i, a) => [q, ms, i === 0 ? 'min' : i === a.length - 1 ? 'max' : ''])
      : [
          [0, v.min, 'min'],
          [0.5, v.p50, 'p50'],
          [0.9, v.p90, 'p90'],
          [0.99, v.p99, 'p99'],
          [Math.max(0.99, 1 - 1 / v.n), v.max, 'max'],
        ];
    return pts.map(([q, ms, stat]) => ({ variant, group, x: nines(q), ms: Math.max(ms, 0.001), stat }));
  });
  const maxX = Math.max(2, ...values.map((v) => v.x));
  const ticks = [0, 0.301, 1, 2, 3, 4, 5].filter((t) => t <= maxX + 1e-9);
  const n = [...new Set(shown.map((v) => v.n))];
  const summaryOnly = shown.every((v) => !v.quantiles);
  const layers: NonNullable<Extract<TopLevelSpec, { layer: unknown }>['layer']> = [
    {
      mark: { type: 'line', strokeWidth: 2 },
      encoding: {
        x: {
          field: 'x',
          type: 'quantitative',
          scale: { domain: [0, Math.ceil(maxX * 10) / 10], nice: false },
          axis: {
            values: ticks,
            labelExpr: "datum.value < 0.01 ? 'min' : datum.value < 0.5 ? 'p50' : datum.value < 1.5 ? 'p90' : datum.value < 2.5 ? 'p99' : datum.value < 3.5 ? 'p99.9' : datum.value < 4.5 ? 'p99.99' : 'p99.999'",
            title: 'percentile (each step right is 10× rarer; a line ends at its slowest run)',
            grid: true,
          },
        },
        y: { field: 'ms', type: 'quantitative', scale: { type: 'log' }, axis: { title: 'propagate latency (ms, log scale)' } },
        color: { field: 'variant', type: 'nominal', scale: { domain, range }, legend: { title: 'variant', orient: 'bottom', columns: 2, symbolType: 'stroke', labelLimit: 420, columnPadding: 24 } },
        strokeDash: { field: 'group', type: 'nominal', scale: { domain: ['circuitry', 'reference write path'], range: [[1, 0], [6, 3]] }, legend: { title: 'write path', orient: 'bottom', symbolType: 'stroke' } },
        detail: { field: 'variant' },
      },
    },
    {
      mark: { type: 'point', filled: true, size: summaryOnly ? 36 : 14 },
      transform: summaryOnly ? [] : [{ filter: "datum.stat != ''" }],
      encoding: {
        x: { field: 'x', type: 'quantitative' },
        y: { field: 'ms', type: 'quantitative' },
        color: { field: 'variant', type: 'nominal' },
      },
    },
  ];
  if (d.floorMs !== undefined) {
    layers.push(
      { data: { values: [{ ms: d.floorMs }] }, mark: { type: 'rule', color: '#777777', strokeDash: [2, 3] }, encoding: { y: { field: 'ms', type: 'quantitative' } } },
      {
        data: { values: [{ ms: d.floorMs, label: `floor: 2 etcd + 1 database round trips (p50 each), ${fmt(d.floorMs)} ms` }] },
        mark: { type: 'text', align: 'left', baseline: 'bottom', dx: 4, dy: -3, color: '#555555', fontSize: 11 },
        encoding: { y: { field: 'ms', type: 'quantitative' }, x: { datum: 0, type: 'quantitative' }, text: { field: 'label' } },
      },
    );
  }
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    config: CONFIG,
    title: {
      text: `Propagate latency: circuitry vs the reference write path (${d.routes}-route circuit)`,
      subtitle: [
        `One uncontended propagate, ${n.length === 1 ? `${n[0]} interleaved runs per variant` : `${Math.min(...n)}–${Math.max(...n)} runs per variant`} (npm run bench, propagate part).`,
        summaryOnly ? 'Points: min, p50, p90, p99 and max of each variant; lines join them.' : 'Lines: the latency at each percentile of the raw samples; points: min and max.',
      ],
    },
    width: WIDTH,
    height: 380,
    data: { values },
    layer: layers,
  };
}

// ---- 2. sweep time vs routes ------------------------------------------------------------------------

export function sweepSeriesLabel(r: { series: 'health' | 'scaling'; concurrency: number }): string {
  if (r.series === 'scaling') return 'npm run bench (scaling): all backends healthy, 1 sweeper';
  return r.concurrency === 1 ? 'bench:health: 1 sweeper' : `bench:health: ${r.concurrency} concurrent sweepers`;
}

export function sweepSpec(d: SweepData): TopLevelSpec {
  const values = d.rows.map((r) => ({
    series: sweepSeriesLabel(r),
    routes: r.routes,
    circuits: r.circuits,
    s: Math.round(r.wallMs) / 1000,
    label: `${fmt(r.wallMs / 1000)} s`,
  }));
  const rows = [...d.rows].sort((a, b) => (a.series === b.series ? a.concurrency - b.concurrency : a.series === 'health' ? -1 : 1));
  const domain = [...new Set(rows.map(sweepSeriesLabel))];
  const range = domain.map((_, i) => pick(GENERIC_COLOURS, i));
  const routes = d.rows.map((r) => r.routes);
  const logX = Math.max(...routes) / Math.min(...routes) > 20;
  const health = d.rows.filter((r) => r.series === 'health');
  const perCircuit = [...new Set(health.map((r) => fmt(r.routes / r.circuits)))];
  const b = health.find((r) => r.behaviours)?.behaviours;
  const pct = (x: number) => `${fmt((100 * x) / (b!.healthy + b!.flapping + b!.hanging), 2)} %`;
  const mix = b ? `: ${pct(b.healthy)} healthy, ${pct(b.flapping)} flapping, ${pct(b.hanging)} hanging${d.probeTimeoutMs !== undefined ? ` past the ${fmt(d.probeTimeoutMs / 1000)} s probe timeout` : ''}` : '';
  const subtitle = [
    'One full scheduled-health sweep (claim, probe, persist, propagate changes, drift check), wall time.',
    ...(health.length > 0 ? [`bench:health: ${perCircuit.join('/')} routes per circuit${mix}.`] : []),
    ...(health.some((r) => r.concurrency > 1) ? ['Concurrent sweepers split the same fleet between them (the claim); time: first start to last end.'] : []),
  ];
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    config: CONFIG,
    title: { text: 'Health sweep: wall time vs routes swept', subtitle },
    width: WIDTH,
    height: 340,
    data: { values },
    encoding: {
      x: {
        field: 'routes',
        type: 'quantitative',
        scale: logX ? { type: 'log', nice: false, padding: 24 } : { zero: true },
        axis: { title: `routes swept${logX ? ' (log scale)' : ''}`, format: ',d', ...(logX ? {} : { tickMinStep: 1 }) },
      },
      y: { field: 's', type: 'quantitative', scale: { zero: true }, axis: { title: 'sweep wall time (s)' } },
      color: { field: 'series', type: 'nominal', scale: { domain, range }, legend: { title: 'series', orient: 'bottom', columns: 1, labelLimit: 480 } },
    },
    layer: [
      { mark: { type: 'line', strokeWidth: 2 } },
      { mark: { type: 'point', filled: true, size: 60 } },
      // Upper left of each point: a rising line leaves that corner free.
      { mark: { type: 'text', align: 'right', dx: -6, dy: -9, fontSize: 11 }, encoding: { text: { field: 'label' } } },
    ],
  };
}

// ---- 3. hot-circuit throughput ----------------------------------------------------------------------

const CONTENTION_LABELS: Record<string, string> = {
  'one circuit': 'all writers on one circuit',
  'one circuit per writer': 'each writer on its own circuit',
};
export const contentionLabel = (v: string): string => CONTENTION_LABELS[v] ?? v;

export function contentionSpec(d: ContentionData): TopLevelSpec {
  const known = Object.keys(CONTENTION_LABELS);
  const variants = [...new Set(d.rows.map((r) => r.variant))].sort((a, b) => {
    const ia = known.indexOf(a);
    const ib = known.indexOf(b);
    return (ia < 0 ? known.length : ia) - (ib < 0 ? known.length : ib) || a.localeCompare(b);
  });
  const domain = variants.map(contentionLabel);
  const range = variants.map((_, i) => pick(['#d62728', '#1f77b4', '#2ca02c', '#9467bd', '#ff7f0e', '#8c564b', '#17becf'], i));
  const writers = [...new Set(d.rows.map((r) => r.writers))].sort((a, b) => a - b);
  const groupOf = (w: number) => {
    const procs = [...new Set(d.rows.filter((r) => r.writers === w).map((r) => r.processes))];
    return `${w} writers (${procs.map((p) => plural(p, 'process', 'processes')).join(' / ')})`;
  };
  const values = d.rows.map((r) => ({
    group: groupOf(r.writers),
    variant: contentionLabel(r.variant),
    rate: r.updatesPerS,
    label: `${fmt(r.updatesPerS)}/s${r.lostUpdateCheckOk ? '' : ' LOST UPDATES'}`,
    wait: r.lockWaitP50Ms > 0 ? `lock wait p50 ${fmt(r.lockWaitP50Ms)} ms` : 'no lock wait',
    circuits: r.circuits,
  }));
  const k = [...new Set(d.rows.map((r) => r.updatesPerWriter))];
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    config: CONFIG,
    title: {
      text: 'Hot circuit: updates/s with N writers on one circuit vs on N circuits',
      subtitle: [
        `Committed updateRoutes per second, ${k.length === 1 ? `${k[0]} per writer` : `${k.join('/')} per writer`}, each writer with its own lease (npm run bench, contention part).`,
        'Above each bar: the rate, and the median wait for the circuit lock.',
      ],
    },
    width: Math.max(360, Math.min(WIDTH, writers.length * variants.length * 120)),
    height: 320,
    data: { values },
    encoding: {
      x: { field: 'group', type: 'nominal', sort: writers.map(groupOf), axis: { title: 'concurrent writers', labelAngle: 0, labelLimit: 240 } },
      xOffset: { field: 'variant', type: 'nominal', sort: domain, scale: { paddingInner: 0.1 } },
      color: { field: 'variant', type: 'nominal', scale: { domain, range }, legend: { title: 'variant', orient: 'bottom', columns: 1, labelLimit: 480 } },
    },
    layer: [
      { mark: { type: 'bar', width: { band: 0.9 } }, encoding: { y: { field: 'rate', type: 'quantitative', axis: { title: 'committed updates per second' } } } },
      {
        mark: { type: 'text', baseline: 'bottom', dy: -4, fontSize: 12, fontWeight: 'bold' },
        encoding: { y: { field: 'rate', type: 'quantitative' }, text: { field: 'label' } },
      },
      {
        mark: { type: 'text', baseline: 'bottom', dy: -20, fontSize: 11, color: '#555555' },
        encoding: { y: { field: 'rate', type: 'quantitative' }, text: { field: 'wait' }, color: { value: '#555555' } },
      },
    ],
  };
}

// ---- 4. chaos timeline ------------------------------------------------------------------------------

const OUTCOME_COLOURS: Record<(typeof OUTCOMES)[number], string> = {
  succeeded: '#4c78a8',
  'not applied / partial': '#9ecae9',
  'conflict / not found': '#bab0ac',
  unavailable: '#f58518',
  'error / killed': '#222222',
};
const FAULT_COLOURS: Record<string, string> = {
  pause: '#9467bd',
  kill: '#d62728',
  'etcd-restart': '#8c564b',
  'db-drop': '#e377c2',
  'drop-unload': '#7f7f7f',
};
const REFUSAL_COLOURS = ['#2ca02c', '#17becf', '#bcbd22', '#d62728'];

export function chaosSpec(d: ChaosData): TopLevelSpec {
  const c = d.convergence;
  const endX = Math.ceil(Math.max(d.workloadEndS, c.atS ?? 0, ...d.faults.map((f) => f.endS)) + d.binS);
  const scale = { domain: [0, endX], nice: false };
  const x = { field: 't', type: 'quantitative' as const, scale, axis: { title: null, grid: true, labelFlush: true } };
  const xLast = { ...x, axis: { title: 'seconds since the first operation started', grid: true, labelFlush: true } };
  const faultKinds = [...Object.keys(FAULT_COLOURS).filter((k) => d.faults.some((f) => f.kind === k)), ...[...new Set(d.faults.map((f) => f.kind))].filter((k) => !(k in FAULT_COLOURS)).sort()];
  const faultRange = faultKinds.map((k, i) => FAULT_COLOURS[k] ?? pick(GENERIC_COLOURS, i + 5));
  // A fault shorter than a quarter of a bin is drawn as a tick at its start, longer ones as bars.
  const faults = d.faults.map((f) => ({ kind: f.kind, t: f.startS, t2: f.endS, how: f.how, instant: f.endS - f.startS < d.binS / 4 }));
  const converged = c.converged && c.atS !== null;
  const afterS = converged && c.lastFaultEndS !== null ? (c.afterLastFaultMs ?? (c.atS! - c.lastFaultEndS) * 1000) / 1000 : null;
  const band = afterS !== null ? [{ t: c.lastFaultEndS!, t2: c.atS!, label: `converged ${fmt(afterS, 2)} s after the last fault` }] : [];
  const convergeRule = converged ? [{ t: c.atS!, label: band.length > 0 ? band[0]!.label : 'converged' }] : [];
  type Layer = NonNullable<Extract<TopLevelSpec, { layer: unknown }>['layer']>[number];
  const convergenceLayers = (withLabel: boolean): Layer[] => [
    ...(band.length > 0 ? [{ data: { values: band }, mark: { type: 'rect' as const, color: '#2ca02c', opacity: 0.12 }, encoding: { x: { field: 't', type: 'quantitative' as const, scale }, x2: { field: 't2' } } }] : []),
    ...(convergeRule.length > 0
      ? [{ data: { values: convergeRule }, mark: { type: 'rule' as const, color: '#2ca02c', strokeWidth: 2, strokeDash: [5, 3] }, encoding: { x: { field: 't', type: 'quantitative' as const, scale } } }]
      : []),
    ...(withLabel && convergeRule.length > 0
      ? [
          {
            data: { values: convergeRule },
            // Just above the plot, right-aligned at the convergence line: clear of the bars.
            mark: { type: 'text' as const, align: 'right' as const, baseline: 'bottom' as const, dx: 2, dy: -3, color: '#1b7a1b', fontSize: 11, fontWeight: 'bold' as const },
            encoding: { x: { field: 't', type: 'quantitative' as const, scale }, y: { value: 0 }, text: { field: 'label' } },
          },
        ]
      : []),
  ];
  const refusalCount = d.refusals.length;
  const verdict = d.run.violations === 0 ? 'no violation' : `${d.run.violations} violations`;
  const panelTitle = (text: string) => ({ text, fontSize: 12, fontWeight: 'bold' as const, anchor: 'start' as const, offset: 6 });
  const lanes = { labelFontSize: 11, labelLimit: 200, title: null };
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    config: { ...CONFIG, concat: { spacing: 18 } },
    title: {
      text: `Chaos run ${d.run.seed}: operations, faults, refused writes and convergence`,
      subtitle: [
        `npm run chaos: ${d.run.ops} operations from ${plural(d.run.procs, 'worker process', 'worker processes')}, strategy ${d.run.strategy}: ${verdict}.`,
        converged
          ? `Green: from the end of the last fault to the check that found etcd converged (one final sweep, ${fmt(c.sweepMs)} ms).`
          : 'The run did NOT converge.',
      ],
    },
    resolve: { scale: { x: 'shared', color: 'independent' }, legend: { color: 'independent' } },
    vconcat: [
      {
        title: panelTitle(d.binS === 1 ? 'Operations completed per second, by outcome' : `Operations completed per second, by outcome (${d.binS} s bins)`),
        width: WIDTH,
        height: 200,
        layer: [
          ...convergenceLayers(true),
          {
            data: { values: d.ops.flatMap((b) => b.counts.map((count, i) => ({ t: b.t, outcome: d.outcomes[i]!, count })).filter((x) => x.count > 0)) },
            transform: [
              { calculate: `datum.count / ${d.binS}`, as: 'rate' },
              { calculate: `datum.t + ${d.binS}`, as: 't2' },
              { calculate: `indexof(${JSON.stringify(OUTCOMES)}, datum.outcome)`, as: 'order' },
            ],
            mark: { type: 'bar', orient: 'vertical', ...(endX / d.binS <= 60 ? { stroke: '#ffffff', strokeWidth: 0.5 } : {}) },
            encoding: {
              x,
              x2: { field: 't2' },
              y: { field: 'rate', type: 'quantitative', stack: 'zero', axis: { title: 'operations / s' } },
              color: {
                field: 'outcome',
                type: 'nominal',
                scale: { domain: [...OUTCOMES], range: OUTCOMES.map((o) => OUTCOME_COLOURS[o]) },
                legend: { title: 'outcome', orient: 'right' },
              },
              order: { field: 'order', type: 'quantitative' },
            },
          },
        ],
      },
      {
        title: panelTitle('Faults (bars: intervals; ticks: instantaneous)'),
        width: WIDTH,
        height: Math.max(1, faultKinds.length) * 22,
        layer: [
          ...convergenceLayers(false),
          {
            data: { values: faults },
            transform: [{ filter: '!datum.instant' }],
            mark: { type: 'bar', height: 12, cornerRadius: 2 },
            encoding: {
              x,
              x2: { field: 't2' },
              y: { field: 'kind', type: 'nominal', scale: { domain: faultKinds }, axis: lanes },
              color: { field: 'kind', type: 'nominal', scale: { domain: faultKinds, range: faultRange }, legend: null },
            },
          },
          {
            data: { values: faults },
            transform: [{ filter: 'datum.instant' }],
            mark: { type: 'tick', thickness: 2, size: 16 },
            encoding: {
              x,
              y: { field: 'kind', type: 'nominal', scale: { domain: faultKinds }, axis: lanes },
              color: { field: 'kind', type: 'nominal', scale: { domain: faultKinds, range: faultRange }, legend: null },
            },
          },
        ],
      },
      {
        title: panelTitle(`Refused writes: ${refusalCount === 0 ? 'none' : refusalCount} (one tick each; lanes as summary.json fencing)`),
        width: WIDTH,
        height: REFUSALS.length * 22,
        layer: [
          ...convergenceLayers(false),
          {
            data: { values: d.refusals },
            mark: { type: 'tick', thickness: 2, size: 16 },
            encoding: {
              x: xLast,
              y: { field: 'kind', type: 'nominal', scale: { domain: [...REFUSALS] }, axis: lanes },
              color: { field: 'kind', type: 'nominal', scale: { domain: [...REFUSALS], range: REFUSAL_COLOURS }, legend: null },
            },
          },
        ],
      },
    ],
  } as TopLevelSpec;
}

export const SPECS = {
  propagate: { out: 'propagate-latency.svg', build: propagateSpec },
  sweep: { out: 'sweep-time.svg', build: sweepSpec },
  contention: { out: 'contention-throughput.svg', build: contentionSpec },
  chaos: { out: 'chaos-timeline.svg', build: chaosSpec },
} as const;
