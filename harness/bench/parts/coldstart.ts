// Part 3 of `npm run bench`: cold start of each function.
//   - `npx osls package --stage ci` (offline) into a temp dir; per function the zip size and its
//     entries (compressed bytes of the bundle vs etcd3's proto files);
//   - each zip extracted to a temp dir, then R rounds of fresh `node` processes (functions and a
//     bare node interleaved): the time from process start (performance.timeOrigin) to the
//     handler imported, the import alone, and the parent's spawn-to-exit wall time;
//   - what the bundle is made of: the same esbuild build (options of serverless.yml, the same
//     plugins) with a metafile, grouped by package; checked against the packaged bundle's size;
//   - what the import spends its time on: a CPU profile of the import of a build of the same
//     bundle with whitespace kept (identifiers and syntax minified), self time attributed to
//     packages through esbuild's `// <path>` module markers (line-level ticks).
import { execFile, spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import type { BuildOptions, Plugin } from 'esbuild';
import { ROOT, log, round, summarize, type Summary } from '../lib/common.js';

const run = promisify(execFile);
const require = createRequire(import.meta.url);

export const FUNCTIONS = ['circuits-api', 'scheduled-health', 'unload', 'update-routes'] as const;
const PROJECTED = 'scheduled-health (projected)';

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
  packages: Array<{ package: string; bytes: number; share: number }>;
  importProfile?: Array<{ where: string; ms: number; share: number }>;
  note?: string;
}

export interface ColdStartResult {
  packageSeconds: number;
  bare: { readyMs: Summary; wallMs: Summary };
  functions: ColdStartFunction[];
  metafileMatchesPackage: Record<string, boolean>;
}

function packageOf(input: string): string {
  const i = input.lastIndexOf('node_modules/');
  if (i < 0) return input.startsWith('lib/') || input.startsWith('functions/') ? 'circuitry (lib/, functions/)' : input.split('/')[0]!;
  const rest = input.slice(i + 'node_modules/'.length).split('/');
  return rest[0]!.startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0]!;
}

function esbuildOptions(entry: string, outdir: string, minify: boolean): BuildOptions {
  const plugins = require(path.join(ROOT, 'deploy/esbuild-plugins.cjs')) as Plugin[];
  return {
    entryPoints: [entry],
    outdir,
    bundle: true,
    minify,
    keepNames: true,
    sourcemap: false,
    target: 'node22',
    platform: 'node',
    format: 'esm',
    outExtension: { '.js': '.mjs' },
    mainFields: ['module', 'main'],
    external: [],
    plugins,
    metafile: true,
    absWorkingDir: ROOT,
    logLevel: 'silent',
  };
}

/** A scheduled-health entry as the finished function will look (functions/scheduled-health.ts is a placeholder today). */
function projectedEntry(dir: string): string {
  const f = path.join(dir, 'scheduled-health-projected.ts');
  const lib = (p: string) => JSON.stringify(path.join(ROOT, 'lib', p));
  fs.writeFileSync(
    f,
    [
      `import { eventHandler } from ${lib('event-handler.ts')};`,
      `import { runSweeps } from ${lib('health/sweep.ts')};`,
      `import { getPublisher, ROUTE_HEALTH_CHANGED } from ${lib('events.ts')};`,
      `import { getConfig } from ${lib('config.ts')};`,
      `export const handler = eventHandler(async (_event: unknown, context) => {`,
      `  const publisher = getPublisher(getConfig());`,
      `  const publish = async (es: Array<Record<string, unknown>>) => void (await publisher.publish(es.map((detail) => ({ detailType: ROUTE_HEALTH_CHANGED, detail }))));`,
      `  return runSweeps(context.inv, { remainingMs: () => context.getRemainingTimeInMillis(), safetyMarginMs: 2000, publish });`,
      `});`,
    ].join('\n'),
  );
  return f;
}

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
    "if (typeof m.handler !== 'function') throw new Error('no handler');",
    'console.log(JSON.stringify({ start: t0, ready: t1 }));',
    'process.exit(0);',
  ].join('\n');

/** Self time of the import by package, from a CPU profile of an unminified build. */
async function importProfile(bundleDir: string, bundleFile: string, rounds: number): Promise<ColdStartFunction['importProfile']> {
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

export async function coldStart(opts: { rounds: number; profileRounds: number }): Promise<ColdStartResult> {
  const esbuild = (await import('esbuild')) as typeof import('esbuild');
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'circuitry-bench-cold-'));
  const pkgDir = path.join(tmp, 'package');
  const workFolder = `.esbuild/bench-${process.pid}-${Date.now()}`;
  try {
    log('coldstart: npx osls package --stage ci ...');
    const t0 = performance.now();
    await run('npx', ['--no', 'osls', 'package', '--stage', 'ci', '--package', pkgDir, `--param=esbuildWorkFolder=${workFolder}`], {
      cwd: ROOT,
      env: { ...process.env, AWS_ACCESS_KEY_ID: 'x', AWS_SECRET_ACCESS_KEY: 'x', AWS_SESSION_TOKEN: undefined, AWS_PROFILE: undefined, NODE_OPTIONS: undefined },
      timeout: 300_000,
      maxBuffer: 16 * 1024 * 1024,
    });
    const packageSeconds = round((performance.now() - t0) / 1000, 1);

    // The packaged zips, plus the projected scheduled-health zipped the same way (zip -9 of the
    // same layout: functions/<name>.mjs + functions/etcd3-proto/*.proto).
    const dirs = new Map<string, { dir: string; file: string; zip: string }>();
    for (const name of FUNCTIONS) {
      const dir = path.join(tmp, 'x', name);
      fs.mkdirSync(dir, { recursive: true });
      await run('unzip', ['-q', path.join(pkgDir, `${name}.zip`), '-d', dir]);
      dirs.set(name, { dir, file: `functions/${name}.mjs`, zip: path.join(pkgDir, `${name}.zip`) });
    }
    // While functions/scheduled-health.ts is still a placeholder, measure what it will be.
    const placeholder = fs.statSync(path.join(dirs.get('scheduled-health')!.dir, 'functions/scheduled-health.mjs')).size < 10_000;
    const projEntry = projectedEntry(tmp);
    let projBuild: Awaited<ReturnType<typeof esbuild.build>> | undefined;
    if (placeholder) {
      const projDir = path.join(tmp, 'x', 'projected');
      projBuild = await esbuild.build(esbuildOptions(projEntry, path.join(projDir, 'functions'), true));
      fs.renameSync(path.join(projDir, 'functions', 'scheduled-health-projected.mjs'), path.join(projDir, 'functions', 'scheduled-health.mjs'));
      const projZip = path.join(tmp, 'scheduled-health-projected.zip');
      await run('zip', ['-q', '-9', '-r', projZip, 'functions'], { cwd: projDir });
      dirs.set(PROJECTED, { dir: projDir, file: 'functions/scheduled-health.mjs', zip: projZip });
    }

    // Import timing: R rounds, every function and a bare node in each round, order rotated.
    const names = [...dirs.keys()];
    const ready = new Map<string, number[]>(names.map((n) => [n, []]));
    const imp = new Map<string, number[]>(names.map((n) => [n, []]));
    const wall = new Map<string, number[]>(names.map((n) => [n, []]));
    const minusBare = new Map<string, number[]>(names.map((n) => [n, []]));
    const bareReady: number[] = [];
    const bareWall: number[] = [];
    const bareScript = "console.log(JSON.stringify({ ready: performance.now() })); process.exit(0);";
    log(`coldstart: ${opts.rounds} rounds of fresh node processes ...`);
    await nodeOnce(tmp, bareScript); // page cache warm for node itself
    const BARE = '(bare node)';
    const order = [BARE, ...names];
    for (let r = 0; r < opts.rounds; r++) {
      const roundReady = new Map<string, number>();
      for (let j = 0; j < order.length; j++) {
        const name = order[(r + j) % order.length]!;
        if (name === BARE) {
          const b = await nodeOnce(tmp, bareScript);
          const bReady = (JSON.parse(b.out) as { ready: number }).ready;
          bareReady.push(bReady);
          bareWall.push(b.wallMs);
          roundReady.set(BARE, bReady);
          continue;
        }
        const d = dirs.get(name)!;
        const x = await nodeOnce(d.dir, importScript(`./${d.file}`));
        const o = JSON.parse(x.out) as { start: number; ready: number };
        ready.get(name)!.push(o.ready);
        imp.get(name)!.push(o.ready - o.start);
        wall.get(name)!.push(x.wallMs);
        roundReady.set(name, o.ready);
      }
      for (const name of names) minusBare.get(name)!.push(roundReady.get(name)! - roundReady.get(BARE)!);
    }

    // Composition: the same esbuild build with a metafile.
    log('coldstart: bundle composition (esbuild metafile) and import CPU profiles ...');
    const functions: ColdStartFunction[] = [];
    const matches: Record<string, boolean> = {};
    for (const name of names) {
      const d = dirs.get(name)!;
      const entry = name === PROJECTED ? projEntry : path.join(ROOT, 'functions', `${name}.ts`);
      const out = path.join(tmp, 'meta', name.replace(/\W+/g, '-'));
      const res = name === PROJECTED && projBuild ? projBuild : await esbuild.build(esbuildOptions(entry, out, true));
      const outputs = Object.entries(res.metafile!.outputs).filter(([k]) => k.endsWith('.mjs'));
      const [, output] = outputs[0]!;
      const byPkg = new Map<string, number>();
      for (const [input, info] of Object.entries(output.inputs)) byPkg.set(packageOf(input), (byPkg.get(packageOf(input)) ?? 0) + info.bytesInOutput);
      const bundleBytes = fs.statSync(path.join(d.dir, d.file)).size;
      matches[name] = output.bytes === bundleBytes;
      const total = [...byPkg.values()].reduce((a, b) => a + b, 0);
      const packages = [...byPkg]
        .sort((a, b) => b[1] - a[1])
        .map(([pkg, bytes]) => ({ package: pkg, bytes, share: round(bytes / total, 3) }));

      // Unminified build of the same bundle for the import profile.
      let profile: ColdStartFunction['importProfile'];
      if (opts.profileRounds > 0 && bundleBytes > 10_000) {
        const dev = path.join(tmp, 'dev', name.replace(/\W+/g, '-'));
        const devEntryName = path.basename(entry).replace(/\.ts$/, '.mjs');
        // Identifiers and syntax minified as in the package, whitespace kept: esbuild then keeps
        // its `// <path>` module markers, and the parse cost stays close to the real bundle's.
        await esbuild.build({ ...esbuildOptions(entry, path.join(dev, 'functions'), false), minifyIdentifiers: true, minifySyntax: true, metafile: false });
        profile = await importProfile(dev, `functions/${devEntryName}`, opts.profileRounds);
      }
      const medianOf = (xs: number[]) => summarize(xs).p50;
      functions.push({
        name,
        zipBytes: fs.statSync(d.zip).size,
        entries: await unzipEntries(d.zip),
        bundleBytes,
        readyMs: summarize(ready.get(name)!),
        importMs: summarize(imp.get(name)!),
        readyMinusBareMs: round(medianOf(minusBare.get(name)!), 1),
        wallMs: summarize(wall.get(name)!),
        packages,
        ...(profile ? { importProfile: profile } : {}),
        ...(name === 'scheduled-health' && placeholder
          ? { note: 'functions/scheduled-health.ts is a placeholder today (an empty handler): see the projected row' }
          : name === PROJECTED
            ? { note: 'built by this bench from lib/event-handler + lib/health/sweep runSweeps + lib/events publisher, same esbuild options, zip -9' }
            : {}),
      });
    }
    return { packageSeconds, bare: { readyMs: summarize(bareReady), wallMs: summarize(bareWall) }, functions, metafileMatchesPackage: matches };
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
    fs.rmSync(path.join(ROOT, workFolder), { recursive: true, force: true });
    try {
      fs.rmdirSync(path.join(ROOT, '.esbuild'));
    } catch {
      /* in use by something else */
    }
  }
}
