// What is in each function's bundle, from the esbuild metafiles of a real `osls package` build.
//
//   npm run bundle:report -- [--stage ci] [--out bench/metafile] [--top 12] [--json]
//
// Packages the service offline (`npx osls package --stage <stage>` into a temporary directory,
// with dummy AWS credentials) with CIRCUITRY_METAFILE_DIR=<out>, so the metafile-report plugin of
// deploy/esbuild-plugins.cjs writes <out>/<function>.meta.json (esbuild's metafile) and
// <out>/<function>.options.json (the effective build options). Then prints, per function, the zip
// size, the bundle size, and the top packages and input files by bytes in the output. The
// metafiles stay in <out> for esbuild's analyzer (https://esbuild.github.io/analyze/) or
// `npx esbuild --analyze`-style tooling. The cold-start benchmark (`npm run bench -- --only
// coldstart`) uses the same summaries.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/** The package an esbuild input path belongs to ("circuitry" for our own sources). */
export function packageOf(input) {
  const i = input.lastIndexOf('node_modules/');
  if (i < 0) return input.startsWith('lib/') || input.startsWith('functions/') ? 'circuitry (lib/, functions/)' : input.split('/')[0];
  const rest = input.slice(i + 'node_modules/'.length).split('/');
  return rest[0].startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0];
}

/**
 * Summary of one metafile: the entry's output bytes, bytes by package and the top input files.
 * @param {import('esbuild').Metafile} metafile
 */
export function summarizeMetafile(metafile, top = 12) {
  const outputs = Object.entries(metafile.outputs).filter(([k, o]) => k.endsWith('.mjs') || k.endsWith('.js') || o.entryPoint !== undefined);
  const [outPath, output] = outputs.find(([, o]) => o.entryPoint !== undefined) ?? outputs[0];
  const byPkg = new Map();
  const files = [];
  for (const [input, info] of Object.entries(output.inputs)) {
    const pkg = packageOf(input);
    byPkg.set(pkg, (byPkg.get(pkg) ?? 0) + info.bytesInOutput);
    files.push({ input, bytes: info.bytesInOutput });
  }
  const total = [...byPkg.values()].reduce((a, b) => a + b, 0);
  const share = (b) => Math.round((b / Math.max(1, total)) * 1000) / 1000;
  return {
    output: outPath,
    bytes: output.bytes,
    inputs: files.length,
    packages: [...byPkg].sort((a, b) => b[1] - a[1]).map(([pkg, bytes]) => ({ package: pkg, bytes, share: share(bytes) })),
    topInputs: files.sort((a, b) => b.bytes - a.bytes).slice(0, top).map((f) => ({ ...f, share: share(f.bytes) })),
  };
}

/** Summaries of every <name>.meta.json in dir, by function name. */
export function readMetafiles(dir, top = 12) {
  const out = {};
  for (const f of fs.readdirSync(dir).filter((x) => x.endsWith('.meta.json')).sort()) {
    out[f.slice(0, -'.meta.json'.length)] = summarizeMetafile(JSON.parse(fs.readFileSync(path.join(dir, f), 'utf8')), top);
  }
  return out;
}

const kib = (b) => (b / 1024).toFixed(1);

export function formatSummary(name, s, zipBytes, top = 12) {
  const lines = [`${name}: bundle ${kib(s.bytes)} KiB${zipBytes !== undefined ? `, zip ${kib(zipBytes)} KiB` : ''}, ${s.inputs} input files`];
  lines.push(`  packages: ${s.packages.slice(0, top).map((p) => `${p.package} ${kib(p.bytes)} KiB (${(p.share * 100).toFixed(1)}%)`).join(', ')}`);
  lines.push('  top input files:');
  for (const f of s.topInputs.slice(0, top)) lines.push(`    ${kib(f.bytes).padStart(7)} KiB  ${f.input}`);
  return lines.join('\n');
}

/** `npx osls package` into pkgDir with the metafiles written to metaDir. */
export async function packageWithMetafiles({ stage = 'ci', pkgDir, metaDir, extraEnv = {} }) {
  const workFolder = `.esbuild/report-${process.pid}-${Date.now()}`;
  fs.rmSync(metaDir, { recursive: true, force: true });
  fs.mkdirSync(metaDir, { recursive: true });
  try {
    await promisify(execFile)('npx', ['--no', 'osls', 'package', '--stage', stage, '--package', pkgDir, `--param=esbuildWorkFolder=${workFolder}`], {
      cwd: ROOT,
      env: {
        ...process.env,
        AWS_ACCESS_KEY_ID: 'x',
        AWS_SECRET_ACCESS_KEY: 'x',
        AWS_SESSION_TOKEN: undefined,
        AWS_PROFILE: undefined,
        NODE_OPTIONS: undefined,
        CIRCUITRY_METAFILE_DIR: metaDir,
        ...extraEnv,
      },
      timeout: 300_000,
      maxBuffer: 16 * 1024 * 1024,
    });
  } catch (err) {
    throw new Error(`osls package failed: ${err.message}\n${err.stdout ?? ''}\n${err.stderr ?? ''}`);
  } finally {
    fs.rmSync(path.join(ROOT, workFolder), { recursive: true, force: true });
    try {
      fs.rmdirSync(path.join(ROOT, '.esbuild'));
    } catch {
      /* in use by something else */
    }
  }
}

async function main() {
  const argv = process.argv.slice(2);
  const arg = (k, d) => {
    const i = argv.indexOf(`--${k}`);
    return i >= 0 ? argv[i + 1] : d;
  };
  if (argv.includes('--help')) {
    console.log(
      'npm run bundle:report -- [--stage ci] [--out bench/metafile] [--top 12] [--json]\n' +
        '  packages offline and writes <out>/<function>.meta.json (esbuild metafile) and .options.json, then prints\n' +
        '  per function: zip and bundle size, bytes by package, the top input files. --json prints the summaries as JSON.',
    );
    return;
  }
  const stage = arg('stage', 'ci');
  const metaDir = path.resolve(ROOT, arg('out', 'bench/metafile'));
  const top = Number(arg('top', '12'));
  const pkgDir = fs.mkdtempSync(path.join(os.tmpdir(), 'circuitry-report-'));
  try {
    await packageWithMetafiles({ stage, pkgDir, metaDir });
    const summaries = readMetafiles(metaDir, top);
    const zips = Object.fromEntries(Object.keys(summaries).map((n) => [n, fs.existsSync(path.join(pkgDir, `${n}.zip`)) ? fs.statSync(path.join(pkgDir, `${n}.zip`)).size : undefined]));
    if (argv.includes('--json')) {
      console.log(JSON.stringify(Object.fromEntries(Object.entries(summaries).map(([n, s]) => [n, { zipBytes: zips[n], ...s }])), null, 2));
      return;
    }
    for (const [n, s] of Object.entries(summaries)) console.log(`${formatSummary(n, s, zips[n], top)}\n`);
    console.log(`metafiles: ${path.relative(process.cwd(), metaDir) || '.'}/*.meta.json`);
  } finally {
    fs.rmSync(pkgDir, { recursive: true, force: true });
  }
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().catch((err) => {
    process.stderr.write(`${err.stack ?? err}\n`);
    process.exit(1);
  });
}
