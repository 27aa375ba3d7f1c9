// Part 3 of `npm run bench`: cold start of each function.
//   - `npx osls package --stage ci` (offline) into a temp dir, with the metafile-report plugin on
//     (deploy/esbuild-plugins.cjs): per function the zip size and its entries, and the esbuild
//     metafile of exactly the packaged build (bytes by package, top input files);
//   - each zip extracted to a temp dir, then R rounds of fresh `node` processes (functions and a
//     bare node interleaved, order rotated): the time from process start (performance.timeOrigin)
//     to the handler imported ("ready handler"), the import alone, and the parent's spawn-to-exit;
//   - optionally a baseline (--cold-baseline DIR: zips saved by an earlier --cold-save DIR run, e.g.
//     of another commit) measured in the SAME rounds, so before/after ratios share the machine's
//     load at the time;
//   - optionally (--cold-deps) the main dependencies imported alone, bundled with the packaged
//     build's options and plugins, in the same rounds: what each costs on its own;
//   - what the import spends its time on: a CPU profile of the import of a build with the packaged
//     build's own options (from the plugin's <function>.options.json) but whitespace kept, self
//     time attributed to packages through esbuild's `// <path>` module markers (line-level ticks).
import { execFile, spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import type { BuildOptions, Plugin } from 'esbuild';
import { ROOT, log, ratio, round, summarize, type Summary } from '../lib/common.js';
import { packageOf, packageWithMetafiles, readMetafiles, type MetafileSummary } from '../../../deploy/bundle-report.mjs';

const run = promisify(execFile);
const require = createRequire(import.meta.url);

export const FUNCTIONS = ['circuits-api', 'scheduled-health', 'health-sweeper', 'unload', 'update-routes'] as const;
const BASELINE = ' (baseline)';

export interface ColdStartFunction {
  name: string;
  zipBytes: number;
  entries: Array<{ name: string; bytes: number; compressedBytes: number }>;
  bundleBytes: number;
  /** ms from process start to the handler imported (includes node's own start-up). */
  readyMs: Summary;
  /** ms of the dynamic import alone. */
  importMs: Summary;
  /** readyMs minus the bare process's time to its first line, per round (median). */
  readyMinusBareMs: number;
  /** Parent-measured spawn-to-exit. */
  wallMs: Summary;
  /** CPU time (user + system, all threads) of the process when the handler was ready: far less
   * sensitive than wall time to other load on a shared machine. */
  readyCpuMs: Summary;
  /** From the packaged build's metafile (absent for baseline rows). */
  packages?: MetafileSummary['packages'];
  topInputs?: MetafileSummary['topInputs'];
  importProfile?: Array<{ where: string; ms: number; share: number }>;
  /** For a function with a baseline row: this row / the baseline row. */
  vsBaseline?: { zip: number; readyP50: number; importP50: number; readyMinusBare: number; readyCpuP50: number };
}

export interface ColdStartResult {
  packageSeconds: number;
  bare: { readyMs: Summary; wallMs: Summary; readyCpuMs: Summary };
  functions: ColdStartFunction[];
  baselineDir?: string;
  metafileDir?: string;
}

export interface ColdStartOptions {
  rounds: number;
  profileRounds: number;
  /** Measure the zips in this directory (<function>.zip) as "<function> (baseline)" rows. */
  baselineDir?: string;
  /** Copy the packaged zips here (for a later --cold-baseline). */
  saveDir?: string;
  /** Keep the metafiles here (default: a temp dir, removed). */
  metafileDir?: string;
  /** Also time the main dependencies imported alone ("dep: ..." rows). */
  deps?: boolean;
}

/** The main dependencies, each imported alone by a one-line handler (what it costs on its own). */
const DEPS: Record<string, string> = {
  'dep: (empty module)': 'export const handler = () => 1;',
  'dep: etcd3 (grpc-js, protobufjs, its protos)': "import { Etcd3 } from 'etcd3'; export const handler = () => Etcd3;",
  'dep: zod': "import { z } from 'zod'; export const handler = () => z.string();",
  'dep: @neondatabase/serverless + ws': "import { Pool } from '@neondatabase/serverless'; import ws from 'ws'; export const handler = () => [Pool, ws];",
  'dep: middy + Powertools': [
    "import middy from '@middy/core';",
    "import { Logger } from '@aws-lambda-powertools/logger';",
    "import { Metrics } from '@aws-lambda-powertools/metrics';",
    "import { logMetrics } from '@aws-lambda-powertools/metrics/middleware';",
    "import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';",
    "export const handler = () => [middy, new Logger(), new Metrics({ namespace: 'x' }), logMetrics, injectLambdaContext];",
  ].join('\n'),
};

async function unzipEntries(zip: string): Promise<ColdStartFunction['entries']> {
  const { stdout } = await run('unzip', ['-v', zip]);
  return stdout
    .split('\n')
    .map((l) => /^\s*(\d+)\s+\S+\s+(\d+)\s+\S+\s+\S+\s+\S+\s+\S+\s+(\S.*)$/.exec(l))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => ({ name: m[3]!, bytes: Number(m[1]), compressedBytes: Number(m[2]) }));
}

function nodeOnce(cwd: string, script: string, extraArgs: string[] = []): Promise<{ out: string; wallMs: number }> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(process.execPath, [...extraArgs, '--input-type=module', '-e', script], {
      cwd,
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', AWS_REGION: 'eu-west-1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('exit', (code) => {
      const wallMs = performance.now() - t0;
      if (code !== 0) reject(new Error(`node exited ${code}: ${err.slice(-2000)}`));
      else resolve({ out: out.trim().split('\n').at(-1) ?? '', wallMs });
    });
  });
}

const importScript = (rel: string) =>
  [
    'const t0 = performance.now();',
    `const m = await import(${JSON.stringify(rel)});`,
    'const t1 = performance.now();',
    'const cpu = process.cpuUsage();',
    "if (typeof m.handler !== 'function') throw new Error('no handler');",
    'console.log(JSON.stringify({ start: t0, ready: t1, cpuMs: (cpu.user + cpu.system) / 1000 }));',
    'process.exit(0);',
  ].join('\n');

/** Self time of the import by package, from a CPU profile of a whitespace-kept build. */
export async function importProfile(bundleDir: string, bundleFile: string, rounds: number): Promise<ColdStartFunction['importProfile']> {
  const src = fs.readFileSync(path.join(bundleDir, bundleFile), 'utf8').split('\n');
  // esbuild marks each module's code with a `// <path>` comment line in unminified output.
  const marks: Array<{ line: number; pkg: string }> = [];
  src.forEach((l, i) => {
    const m = /^\s*\/\/ ((?:node_modules|lib|functions|\.\.?\/)\S*\.(?:[cm]?js|ts|json))$/.exec(l);
    if (m) marks.push({ line: i, pkg: packageOf(m[1]!) });
  });
  const pkgAt = (line: number): string => {
    let lo = 0;
    let hi = marks.length - 1;
    let best = '(esbuild module wrappers: lazy compile of CommonJS bodies)';
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (marks[mid]!.line <= line) {
        best = marks[mid]!.pkg;
        lo = mid + 1;
      } else hi = mid - 1;
    }
    return best;
  };
  const totals = new Map<string, number>();
  const profDir = fs.mkdtempSync(path.join(os.tmpdir(), 'circuitry-bench-prof-'));
  for (let r = 0; r < rounds; r++) {
    await nodeOnce(bundleDir, importScript(`./${bundleFile}`), ['--cpu-prof', `--cpu-prof-dir=${profDir}`, '--cpu-prof-interval=100']);
  }
  for (const f of fs.readdirSync(profDir)) {
    const prof = JSON.parse(fs.readFileSync(path.join(profDir, f), 'utf8')) as {
      nodes: Array<{ id: number; callFrame: { url: string; lineNumber: number; functionName: string }; positionTicks?: Array<{ line: number; ticks: number }> }>;
      samples: number[];
      timeDeltas: number[];
    };
    const byId = new Map(prof.nodes.map((n) => [n.id, n]));
    const self = new Map<number, number>();
    for (let i = 0; i < prof.samples.length; i++) {
      const dt = prof.timeDeltas[i + 1] ?? 0; // the delta after sample i is the time it covers
      self.set(prof.samples[i]!, (self.get(prof.samples[i]!) ?? 0) + dt);
    }
    for (const [id, us] of self) {
      const n = byId.get(id)!;
      const url = n.callFrame.url;
      let where: string;
      if (url.endsWith(bundleFile)) {
        // Line-level ticks when present (ESM modules are inlined into the bundle's top level).
        const ticks = n.positionTicks ?? [];
        const total = ticks.reduce((a, t) => a + t.ticks, 0);
        if (total > 0) {
          for (const t of ticks) {
            const w = pkgAt(t.line - 1);
            totals.set(w, (totals.get(w) ?? 0) + (us * t.ticks) / total);
          }
          continue;
        }
        where = pkgAt(n.callFrame.lineNumber);
      } else if (n.callFrame.functionName === 'compileSourceTextModule') where = '(V8 parse+compile of the bundle)';
      else if (n.callFrame.functionName === 'compileForInternalLoader' || n.callFrame.functionName === 'internalBinding') where = '(node built-in modules loaded)';
      else if (url === '') where = n.callFrame.functionName.startsWith('(') ? n.callFrame.functionName : '(native / V8)';
      else if (url.startsWith('node:')) where = '(node internals: loader, bootstrap)';
      else where = '(other)';
      totals.set(where, (totals.get(where) ?? 0) + us);
    }
  }
  fs.rmSync(profDir, { recursive: true, force: true });
  const all = [...totals.values()].reduce((a, b) => a + b, 0);
  return [...totals]
    .filter(([w]) => w !== '(idle)')
    .sort((a, b) => b[1] - a[1])
    .slice(0, 12)
    .map(([where, us]) => ({ where, ms: round(us / 1000 / rounds, 1), share: round(us / all, 3) }));
}

export async function coldStart(opts: ColdStartOptions): Promise<ColdStartResult> {
  const esbuild = (await import('esbuild')) as typeof import('esbuild');
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'circuitry-bench-cold-'));
  const pkgDir = path.join(tmp, 'package');
  const metaDir = opts.metafileDir ?? path.join(tmp, 'metafile');
  try {
    log('coldstart: npx osls package --stage ci (with esbuild metafiles) ...');
    const t0 = performance.now();
    await packageWithMetafiles({ stage: 'ci', pkgDir, metaDir });
    const packageSeconds = round((performance.now() - t0) / 1000, 1);
    const meta = readMetafiles(metaDir, 15);
    if (opts.saveDir) {
      fs.mkdirSync(opts.saveDir, { recursive: true });
      for (const name of FUNCTIONS) fs.copyFileSync(path.join(pkgDir, `${name}.zip`), path.join(opts.saveDir, `${name}.zip`));
      log(`coldstart: zips saved to ${opts.saveDir} (use --cold-baseline ${path.relative(process.cwd(), opts.saveDir)} in a later run)`);
    }

    const dirs = new Map<string, { dir: string; file: string; zip: string }>();
    const unpack = async (name: string, zip: string, file: string) => {
      const dir = path.join(tmp, 'x', name.replace(/\W+/g, '-'));
      fs.mkdirSync(dir, { recursive: true });
      await run('unzip', ['-q', zip, '-d', dir]);
      dirs.set(name, { dir, file, zip });
    };
    for (const name of FUNCTIONS) await unpack(name, path.join(pkgDir, `${name}.zip`), `functions/${name}.mjs`);
    if (opts.baselineDir) {
      for (const name of FUNCTIONS) {
        const zip = path.join(opts.baselineDir, `${name}.zip`);
        if (fs.existsSync(zip)) await unpack(`${name}${BASELINE}`, zip, `functions/${name}.mjs`);
        else log(`coldstart: no ${zip}, no baseline for ${name}`);
      }
    }
    if (opts.deps) {
      const optionsFile = path.join(metaDir, 'unload.options.json');
      const { pluginNames: _p, entryPoints: _e, outdir: _o, ...base } = JSON.parse(fs.readFileSync(optionsFile, 'utf8')) as BuildOptions & { pluginNames: string[] };
      const plugins = (require(path.join(ROOT, 'deploy/esbuild-plugins.cjs')) as Plugin[]).filter((p) => p.name !== 'metafile-report');
      for (const [name, code] of Object.entries(DEPS)) {
        const dir = path.join(tmp, 'x', name.replace(/\W+/g, '-'));
        const src = path.join(tmp, 'deps', `${name.replace(/\W+/g, '-')}.ts`);
        fs.mkdirSync(path.dirname(src), { recursive: true });
        fs.writeFileSync(src, code);
        await esbuild.build({ ...base, entryPoints: { dep: src }, outdir: path.join(dir, 'functions'), nodePaths: [path.join(ROOT, 'node_modules')], metafile: false, logLevel: 'silent', plugins, absWorkingDir: ROOT });
        const zip = path.join(tmp, 'deps', `${name.replace(/\W+/g, '-')}.zip`);
        await run('zip', ['-q', '-9', '-r', zip, 'functions'], { cwd: dir });
        dirs.set(name, { dir, file: 'functions/dep.mjs', zip });
      }
    }

    // Import timing: R rounds, every function and a bare node in each round, order rotated.
    const names = [...dirs.keys()];
    const ready = new Map<string, number[]>(names.map((n) => [n, []]));
    const imp = new Map<string, number[]>(names.map((n) => [n, []]));
    const wall = new Map<string, number[]>(names.map((n) => [n, []]));
    const minusBare = new Map<string, number[]>(names.map((n) => [n, []]));
    const bareReady: number[] = [];
    const bareWall: number[] = [];
    const bareCpu: number[] = [];
    const cpu = new Map<string, number[]>(names.map((n) => [n, []]));
    const bareScript = 'const c = process.cpuUsage(); console.log(JSON.stringify({ ready: performance.now(), cpuMs: (c.user + c.system) / 1000 })); process.exit(0);';
    log(`coldstart: ${opts.rounds} rounds of ${names.length + 1} fresh node processes ...`);
    await nodeOnce(tmp, bareScript); // page cache warm for node itself
    for (const name of names) await nodeOnce(dirs.get(name)!.dir, importScript(`./${dirs.get(name)!.file}`)); // and for each bundle
    const BARE = '(bare node)';
    const order = [BARE, ...names];
    for (let r = 0; r < opts.rounds; r++) {
      const roundReady = new Map<string, number>();
      for (let j = 0; j < order.length; j++) {
        const name = order[(r + j) % order.length]!;
        if (name === BARE) {
          const b = await nodeOnce(tmp, bareScript);
          const bOut = JSON.parse(b.out) as { ready: number; cpuMs: number };
          const bReady = bOut.ready;
          bareCpu.push(bOut.cpuMs);
          bareReady.push(bReady);
          bareWall.push(b.wallMs);
          roundReady.set(BARE, bReady);
          continue;
        }
        const d = dirs.get(name)!;
        const x = await nodeOnce(d.dir, importScript(`./${d.file}`));
        const o = JSON.parse(x.out) as { start: number; ready: number; cpuMs: number };
        ready.get(name)!.push(o.ready);
        cpu.get(name)!.push(o.cpuMs);
        imp.get(name)!.push(o.ready - o.start);
        wall.get(name)!.push(x.wallMs);
        roundReady.set(name, o.ready);
      }
      for (const name of names) minusBare.get(name)!.push(roundReady.get(name)! - roundReady.get(BARE)!);
    }

    log('coldstart: import CPU profiles ...');
    const plugins = require(path.join(ROOT, 'deploy/esbuild-plugins.cjs')) as Plugin[];
    const functions: ColdStartFunction[] = [];
    for (const name of names) {
      const d = dirs.get(name)!;
      const isBaseline = name.endsWith(BASELINE) || name.startsWith('dep: ');
      const m = isBaseline ? undefined : meta[name];
      const bundleBytes = fs.statSync(path.join(d.dir, d.file)).size;
      if (m && m.bytes !== bundleBytes) log(`coldstart: WARNING ${name}: metafile says ${m.bytes} bytes, the packaged bundle has ${bundleBytes}`);

      // The packaged build's own options, whitespace kept: esbuild then keeps its `// <path>`
      // module markers, and the parse cost stays close to the real bundle's.
      let profile: ColdStartFunction['importProfile'];
      const optionsFile = path.join(metaDir, `${name}.options.json`);
      if (!isBaseline && opts.profileRounds > 0 && fs.existsSync(optionsFile)) {
        const { pluginNames: _p, entryPoints: _e, outdir: _o, ...base } = JSON.parse(fs.readFileSync(optionsFile, 'utf8')) as BuildOptions & { pluginNames: string[] };
        const dev = path.join(tmp, 'dev', name);
        fs.cpSync(path.join(d.dir, 'functions'), path.join(dev, 'functions'), { recursive: true }); // proto files
        await esbuild.build({
          ...base,
          entryPoints: [path.join(ROOT, 'functions', `${name}.ts`)],
          outdir: path.join(dev, 'functions'),
          minify: false,
          minifyIdentifiers: true,
          minifySyntax: true,
          metafile: false,
          logLevel: 'silent',
          plugins,
        });
        profile = await importProfile(dev, d.file, opts.profileRounds);
      }
      functions.push({
        name,
        zipBytes: fs.statSync(d.zip).size,
        entries: await unzipEntries(d.zip),
        bundleBytes,
        readyMs: summarize(ready.get(name)!),
        importMs: summarize(imp.get(name)!),
        readyMinusBareMs: round(summarize(minusBare.get(name)!).p50, 1),
        wallMs: summarize(wall.get(name)!),
        readyCpuMs: summarize(cpu.get(name)!),
        ...(m ? { packages: m.packages, topInputs: m.topInputs } : {}),
        ...(profile ? { importProfile: profile } : {}),
      });
    }
    for (const f of functions) {
      const b = functions.find((x) => x.name === `${f.name}${BASELINE}`);
      if (b) {
        f.vsBaseline = {
          zip: ratio(f.zipBytes, b.zipBytes),
          readyP50: ratio(f.readyMs.p50, b.readyMs.p50),
          importP50: ratio(f.importMs.p50, b.importMs.p50),
          readyMinusBare: ratio(f.readyMinusBareMs, b.readyMinusBareMs),
          readyCpuP50: ratio(f.readyCpuMs.p50, b.readyCpuMs.p50),
        };
      }
    }
    return {
      packageSeconds,
      bare: { readyMs: summarize(bareReady), wallMs: summarize(bareWall), readyCpuMs: summarize(bareCpu) },
      functions,
      ...(opts.baselineDir ? { baselineDir: path.relative(ROOT, opts.baselineDir) } : {}),
      ...(opts.metafileDir ? { metafileDir: path.relative(ROOT, opts.metafileDir) } : {}),
    };
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}
