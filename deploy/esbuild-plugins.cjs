// esbuild plugins for serverless-esbuild (`custom.esbuild.plugins` in serverless.yml). CommonJS
// because serverless-esbuild loads this file with require().
//
// 1. esm-cjs-interop: the bundle is ESM, but etcd3, @grpc/*, protobufjs and ws are CommonJS and
//    call require() on Node built-ins and read __dirname. esbuild's ESM output has neither, so a
//    banner defines them from import.meta.url.
// 2. etcd3-proto: etcd3 loads `${__dirname}/../proto/rpc.proto` (plus kv.proto and auth.proto,
//    imported by it) when the module is first evaluated. Once bundled, __dirname is the bundle's
//    directory, so the plugin rewrites that path to `<bundle dir>/etcd3-proto/rpc.proto` and copies
//    the .proto files there after every build. serverless-esbuild zips everything in its build
//    directory that does not belong to another function, so every function zip ships them as
//    `functions/etcd3-proto/*.proto`. If an etcd3 upgrade changes the loading code, the build fails
//    here instead of the Lambda failing at cold start.
// 3. metafile-report: with CIRCUITRY_METAFILE_DIR set, each build writes its esbuild metafile and
//    its effective options (plugins left out) to <dir>/<entry>.meta.json / .options.json;
//    `npm run bundle:report` and the cold-start benchmark summarise them.
'use strict';
/* global require, module, process */
/* eslint-disable @typescript-eslint/no-require-imports -- CommonJS on purpose, see above */

const fs = require('node:fs/promises');
const path = require('node:path');

const PROTO_DIR_NAME = 'etcd3-proto';
const ETCD3_LOADER = /[\\/]node_modules[\\/]etcd3[\\/]lib[\\/]connection-pool\.js$/;
const ORIGINAL_PATH = '`${__dirname}/../proto/rpc.proto`';
const BUNDLED_PATH = '`${__dirname}/' + PROTO_DIR_NAME + '/rpc.proto`';

const ESM_SHIM =
  "import{createRequire as __shimCreateRequire}from'node:module';" +
  "import{fileURLToPath as __shimFileURLToPath}from'node:url';" +
  "import{dirname as __shimDirname}from'node:path';" +
  'const require=__shimCreateRequire(import.meta.url);' +
  'const __filename=__shimFileURLToPath(import.meta.url);' +
  'const __dirname=__shimDirname(__filename);';

/** @type {import('esbuild').Plugin} */
const esmCjsInterop = {
  name: 'esm-cjs-interop',
  setup(build) {
    const o = build.initialOptions;
    if (o.format !== 'esm' || o.platform !== 'node') return;
    const js = o.banner?.js ?? '';
    if (!js.includes(ESM_SHIM)) o.banner = { ...o.banner, js: ESM_SHIM + js };
  },
};

/** @type {import('esbuild').Plugin} */
const etcd3Proto = {
  name: 'etcd3-proto',
  setup(build) {
    /** @type {string | undefined} the proto directory of the etcd3 that was actually bundled */
    let protoDir;

    build.onLoad({ filter: ETCD3_LOADER }, async (args) => {
      const source = await fs.readFile(args.path, 'utf8');
      if (!source.includes(ORIGINAL_PATH)) {
        return {
          errors: [
            {
              text: `etcd3-proto: ${args.path} no longer loads ${ORIGINAL_PATH}; update deploy/esbuild-plugins.cjs for this etcd3 version`,
            },
          ],
        };
      }
      protoDir = path.join(path.dirname(args.path), '..', 'proto');
      return { contents: source.replace(ORIGINAL_PATH, BUNDLED_PATH), loader: 'js', resolveDir: path.dirname(args.path) };
    });

    build.onEnd(async (result) => {
      if (result.errors.length > 0 || protoDir === undefined) return; // etcd3 not in this bundle
      const o = build.initialOptions;
      const outDir = o.outdir ?? (o.outfile !== undefined ? path.dirname(o.outfile) : undefined);
      if (outDir === undefined) {
        return { errors: [{ text: 'etcd3-proto: esbuild needs outdir or outfile to place the proto files' }] };
      }
      const target = path.join(outDir, PROTO_DIR_NAME);
      await fs.mkdir(target, { recursive: true });
      const files = (await fs.readdir(protoDir)).filter((f) => f.endsWith('.proto'));
      if (!files.includes('rpc.proto')) {
        return { errors: [{ text: `etcd3-proto: no rpc.proto in ${protoDir}` }] };
      }
      await Promise.all(files.map((f) => fs.copyFile(path.join(protoDir, f), path.join(target, f))));
      return undefined;
    });
  },
};

/** @type {import('esbuild').Plugin} */
const metafileReport = {
  name: 'metafile-report',
  setup(build) {
    const dir = process.env.CIRCUITRY_METAFILE_DIR;
    if (dir === undefined || dir === '') return;
    const o = build.initialOptions;
    o.metafile = true;
    const entries = Array.isArray(o.entryPoints) ? o.entryPoints : Object.values(o.entryPoints ?? {});
    const first = entries[0];
    const entry = typeof first === 'string' ? first : (first?.in ?? 'bundle');
    const name = path.basename(entry).replace(/\.[cm]?[jt]sx?$/, '');
    build.onEnd(async (result) => {
      if (result.metafile === undefined) return;
      await fs.mkdir(dir, { recursive: true });
      const { plugins, ...options } = o;
      await fs.writeFile(path.join(dir, `${name}.meta.json`), JSON.stringify(result.metafile));
      await fs.writeFile(
        path.join(dir, `${name}.options.json`),
        JSON.stringify({ ...options, metafile: false, pluginNames: (plugins ?? []).map((p) => p.name) }, null, 2),
      );
    });
  },
};

module.exports = [esmCjsInterop, etcd3Proto, metafileReport];
