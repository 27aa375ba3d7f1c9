// `npm run charts`: renders the charts of the README's Performance and Reliability sections.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { importBench } from './import-bench.js';
import { importChaos } from './import-chaos.js';
import { renderChart } from './render.js';
import { CHART_NAMES, InputError, SNAPSHOTS, writeSnapshot, type ChartName } from './schema.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

export const USAGE = `Usage: npm run charts -- [options]

Renders docs/charts/*.svg (Vega-Lite, headless, deterministic: the same data gives byte-identical
SVGs) from the committed data snapshots docs/data/*.json:

  propagate-latency.svg      propagate latency percentiles, circuitry vs the reference write path
                             (docs/data/propagate.json, from npm run bench's propagate part)
  sweep-time.svg             health sweep wall time vs routes, a series per sweeper concurrency
                             (docs/data/sweep.json, from npm run bench:health [+ bench scaling])
  contention-throughput.svg  updates/s, N writers on one circuit vs on N circuits (and any other
                             variant) (docs/data/contention.json, from npm run bench's contention part)
  chaos-timeline.svg         operations/s by outcome, faults by kind, refused writes, convergence
                             (docs/data/chaos.json, from a chaos run's output directory)

Options:
  --import-bench PATH  first condense benchmark JSON into docs/data/{propagate,contention,sweep}.json:
                       a file, or a directory such as bench/ (results.json from npm run bench,
                       health.json from npm run bench:health; the newest of each part is taken,
                       contention rows of every file are merged). Parts not found keep their snapshot.
  --import-chaos DIR   first condense a chaos run's --out directory (summary.json, faults.jsonl,
                       ops-<w>.jsonl, killed-ops.jsonl) into docs/data/chaos.json
  --only LIST          charts to render, comma-separated: ${CHART_NAMES.join(',')} (default: all)
  --check              render and compare with the SVGs on disk; write nothing; exit 1 if any differs
  --data DIR           snapshot directory (default docs/data)
  --out DIR            SVG directory (default docs/charts)
  -h, --help           this help

Examples:
  npm run charts
  npm run charts -- --import-bench bench/ --import-chaos chaos-out/2026-11-27-5eed2027

Exit status: 0 done, 1 --check found a difference, 2 usage or input error (the message names the
file and the field).`;

class UsageError extends Error {}

interface Args {
  importBench?: string;
  importChaos?: string;
  only: ChartName[];
  check: boolean;
  data: string;
  out: string;
}

export function parseArgs(argv: string[]): Args | 'help' {
  if (argv.includes('--help') || argv.includes('-h')) return 'help';
  const a = new Map<string, string>();
  const flags = new Set(['check']);
  const valued = new Set(['import-bench', 'import-chaos', 'only', 'data', 'out']);
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (!arg.startsWith('--')) throw new UsageError(`unexpected argument "${arg}"`);
    const [name, inline] = arg.slice(2).split(/=(.*)/s, 2) as [string, string | undefined];
    if (flags.has(name)) {
      if (inline !== undefined) throw new UsageError(`--${name} takes no value`);
      a.set(name, 'true');
    } else if (valued.has(name)) {
      const v = inline ?? argv[++i];
      if (v === undefined || v === '' || (inline === undefined && v.startsWith('--'))) throw new UsageError(`--${name} needs a value`);
      a.set(name, v);
    } else throw new UsageError(`unknown option --${name}`);
  }
  if (a.has('check') && (a.has('import-bench') || a.has('import-chaos'))) throw new UsageError('--check writes nothing: it cannot be combined with --import-bench or --import-chaos');
  const only = (a.get('only') ?? CHART_NAMES.join(',')).split(',').map((s) => s.trim()) as ChartName[];
  for (const o of only) if (!CHART_NAMES.includes(o)) throw new UsageError(`--only: unknown chart "${o}" (charts: ${CHART_NAMES.join(', ')})`);
  const abs = (p: string) => path.resolve(process.cwd(), p);
  return {
    ...(a.has('import-bench') ? { importBench: abs(a.get('import-bench')!) } : {}),
    ...(a.has('import-chaos') ? { importChaos: abs(a.get('import-chaos')!) } : {}),
    only,
    check: a.has('check'),
    data: a.has('data') ? abs(a.get('data')!) : path.join(ROOT, 'docs/data'),
    out: a.has('out') ? abs(a.get('out')!) : path.join(ROOT, 'docs/charts'),
  };
}

/** Names a file in messages and in a snapshot's source: relative to the repository, else absolute. */
const rel = (f: string): string => {
  const r = path.relative(ROOT, f);
  return r === '' ? '.' : r.startsWith('..') || path.isAbsolute(r) ? f : r;
};
const say = (s: string) => process.stderr.write(`charts: ${s}\n`);

export async function main(argv: string[]): Promise<number> {
  let args: Args | 'help';
  try {
    args = parseArgs(argv);
  } catch (err) {
    if (err instanceof UsageError) {
      say(`${err.message} (npm run charts -- --help)`);
      return 2;
    }
    throw err;
  }
  if (args === 'help') {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  try {
    if (args.importBench || args.importChaos) fs.mkdirSync(args.data, { recursive: true });
    if (args.importBench) {
      const b = importBench(args.importBench, rel);
      for (const n of b.notes) say(n);
      for (const name of ['propagate', 'contention', 'sweep'] as const) {
        const d = b[name];
        if (!d) continue;
        const file = path.join(args.data, SNAPSHOTS[name].file);
        writeSnapshot(file, d);
        say(`wrote ${rel(file)} (${fs.statSync(file).size} bytes)`);
      }
    }
    if (args.importChaos) {
      const c = importChaos(args.importChaos, rel);
      for (const n of c.notes) say(n);
      const file = path.join(args.data, SNAPSHOTS.chaos.file);
      writeSnapshot(file, c.data);
      say(`wrote ${rel(file)} (${fs.statSync(file).size} bytes)`);
    }
    let differ = 0;
    if (!args.check) fs.mkdirSync(args.out, { recursive: true });
    for (const name of args.only) {
      const r = await renderChart(name, args.data, rel);
      for (const w of r.warnings) say(`${name}: vega-lite: ${w}`);
      const file = path.join(args.out, r.out);
      if (args.check) {
        const old = fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : null;
        if (old !== r.svg) {
          differ++;
          say(`${rel(file)}: ${old === null ? 'missing' : 'differs from a fresh render'} of ${rel(path.join(args.data, SNAPSHOTS[name].file))}`);
        }
      } else {
        fs.writeFileSync(file, r.svg);
        say(`wrote ${rel(file)} (${r.svg.length} bytes)`);
      }
    }
    if (args.check) say(differ === 0 ? `${args.only.length} charts up to date` : `${differ} of ${args.only.length} charts out of date: run npm run charts`);
    return differ === 0 ? 0 : 1;
  } catch (err) {
    if (err instanceof InputError) {
      say(err.message.split('\n').join('\ncharts: '));
      return 2;
    }
    throw err;
  }
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (err: unknown) => {
      say(`${(err as Error).stack ?? String(err)}`);
      process.exit(2);
    },
  );
}
