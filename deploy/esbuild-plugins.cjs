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
// 3. zod-english-only and zod-slim: zod 4 re-exports every locale (`z.locales.*`, ~260 KB
//    minified, a fifth of a bundle) although only English, the default, is used; the locales
//    index is replaced by one that re-exports `en` and, for every other locale, a function that
//    throws naming the plugin. And `z` (a namespace object, so esbuild keeps all of it) also
//    carries `z.core`, `z.locales`, JSON Schema conversion and zod 4.6's compile API, which lib/
//    does not use (~60 KB more): they become stubs that throw naming the plugin. Everything lib/
//    uses (schemas, checks, parsing, errors, `.toJSONSchema()` on a schema) is untouched.
// 4. proto-loader-lazy-descriptors: @grpc/proto-loader computes, for every message and enum of a
//    loaded .proto, its descriptor (`type`) and the encoded FileDescriptorProtos, and loads
//    protobufjs/ext/descriptor to do so: ~15-20 ms at every cold start, for data only gRPC server
//    reflection reads (grpc-js's client only checks `'format' in definition`). The plugin makes
//    `type` and `fileDescriptorProtos` memoized getters that compute the same values on first
//    access. Serializers, paths and stream flags are built exactly as before.
// 5. aws-credentials-env-only: the AWS SDK's default credential chain (@aws-sdk/credential-provider-
//    node) imports SSO, shared ini files, credential_process, web identity tokens, and the
//    container/instance metadata providers, with the STS and SSO clients they need (~100 KB
//    minified). In Lambda the execution role's credentials are always in the environment
//    (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN), the chain's first link, which
//    stays; every other link is replaced by one that fails with a message naming this plugin
//    (locally: set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, as the local stack does).
// 6. grpc-js-client-only: @grpc/grpc-js's index requires its server (Server, server calls,
//    interceptors and credentials: ~50 KB minified, compiled and run at every cold start); etcd3
//    is a client only. Those four modules are replaced by one whose every export throws, naming
//    this plugin, when called or constructed.
// 7. metafile-report: with CIRCUITRY_METAFILE_DIR set, each build writes its esbuild metafile and
//    its effective options (plugins left out) to <dir>/<entry>.meta.json / .options.json;
//    `npm run bundle:report` and the cold-start benchmark summarise them.
//
// Every source patch checks the text it replaces and fails the BUILD when a dependency upgrade
// changed it, so a silently ineffective (or wrong) patch cannot ship.
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

/**
 * Replace exact snippets of a dependency's source; every snippet must occur exactly `count` times.
 * @param {string} plugin @param {string} file @param {string} source
 * @param {Array<[string, string, number?]>} edits
 * @returns {{ contents: string } | { errors: Array<{ text: string }> }}
 */
function patchSource(plugin, file, source, edits) {
  let out = source;
  for (const [from, to, count = 1] of edits) {
    const found = out.split(from).length - 1;
    if (found !== count) {
      return {
        errors: [
          {
            text: `${plugin}: expected ${count} occurrence(s) of ${JSON.stringify(from.slice(0, 80))} in ${file}, found ${found}; the dependency changed: update deploy/esbuild-plugins.cjs`,
          },
        ],
      };
    }
    out = out.split(from).join(to);
  }
  return { contents: out };
}

const ZOD_LOCALES_INDEX = /[\\/]node_modules[\\/]zod[\\/]v4[\\/]locales[\\/]index\.js$/;
const ZOD_LOCALE_EXPORT = /^export \{ default as (\w+) \} from "\.\/([\w-]+)\.js";$/;

/** @type {import('esbuild').Plugin} */
const zodEnglishOnly = {
  name: 'zod-english-only',
  setup(build) {
    build.onLoad({ filter: ZOD_LOCALES_INDEX }, async (args) => {
      const source = await fs.readFile(args.path, 'utf8');
      const lines = source.split('\n').filter((l) => l.trim() !== '' && !l.startsWith('//'));
      const names = lines.map((l) => ZOD_LOCALE_EXPORT.exec(l)?.[1]);
      if (names.some((n) => n === undefined) || !names.includes('en')) {
        return { errors: [{ text: `zod-english-only: ${args.path} is not a list of \`export { default as xx } from "./xx.js"\`; update deploy/esbuild-plugins.cjs` }] };
      }
      const others = names.filter((n) => n !== 'en');
      const contents = [
        'export { default as en } from "./en.js";',
        'const notBundled = (locale) => () => {',
        '  throw new Error(`zod locale "${locale}" is not bundled (deploy/esbuild-plugins.cjs bundles English only)`);',
        '};',
        ...others.map((n) => `export const ${n} = notBundled(${JSON.stringify(n)});`),
      ].join('\n');
      return { contents, loader: 'js', resolveDir: path.dirname(args.path) };
    });
  },
};

const ZOD_CLASSIC_EXTERNAL = /[\\/]node_modules[\\/]zod[\\/]v4[\\/]classic[\\/]external\.js$/;
const zodStub = (name) => `export const ${name} = /* @__PURE__ */ zodNotBundled(${JSON.stringify(name)});`;

/** @type {import('esbuild').Plugin} */
const zodSlim = {
  name: 'zod-slim',
  setup(build) {
    build.onLoad({ filter: ZOD_CLASSIC_EXTERNAL }, async (args) => {
      const source = await fs.readFile(args.path, 'utf8');
      const patched = patchSource('zod-slim', args.path, source, [
        ['export * as core from "../core/index.js";\n', `${zodStub('core')}\n`],
        ['INVALID, toZod, compile, withParser, ZodCompileAsyncError, ZodCompileUnsupportedError, ', ''],
        ['export { toJSONSchema } from "../core/json-schema-processors.js";\n', `${zodStub('toJSONSchema')}\n`],
        ['export { fromJSONSchema } from "./from-json-schema.js";\n', `${zodStub('fromJSONSchema')}\n`],
        ['export * as locales from "../locales/index.js";\n', `${zodStub('locales')}\n`],
      ]);
      if ('errors' in patched) return patched;
      const removed = ['INVALID', 'toZod', 'compile', 'withParser', 'ZodCompileAsyncError', 'ZodCompileUnsupportedError'];
      const contents = [
        'function zodNotBundled(name) {',
        '  const fail = () => { throw new Error(`z.${name} is not bundled (deploy/esbuild-plugins.cjs: zod-slim)`); };',
        '  return new Proxy(fail, { get: (_, key) => (key === "then" || typeof key === "symbol" ? undefined : fail()), apply: fail, construct: fail });',
        '}',
        patched.contents,
        ...removed.map(zodStub),
      ].join('\n');
      return { contents, loader: 'js', resolveDir: path.dirname(args.path) };
    });
  },
};

const PROTO_LOADER_INDEX = /[\\/]node_modules[\\/]@grpc[\\/]proto-loader[\\/]build[\\/]src[\\/]index\.js$/;
const LAZY_TYPE_DEFINITION = `
function lazyTypeDefinition(format, reflected, fileDescriptors) {
    let type;
    return {
        format,
        get type() {
            if (type === undefined) {
                descriptorLazy();
                const d = reflected.toDescriptor('proto3');
                type = d.$type.toObject(d, descriptorOptions);
            }
            return type;
        },
        get fileDescriptorProtos() {
            return fileDescriptors();
        },
    };
}
`;

/** @type {import('esbuild').Plugin} */
const protoLoaderLazyDescriptors = {
  name: 'proto-loader-lazy-descriptors',
  setup(build) {
    // Only the copy etcd3 loads (grpc-js nests another version for its server-side channelz and
    // ORCA services, which it loads lazily and never on the client path).
    let etcd3Loader;
    try {
      const from = path.dirname(require.resolve('etcd3/package.json', { paths: [build.initialOptions.absWorkingDir ?? process.cwd()] }));
      etcd3Loader = require.resolve('@grpc/proto-loader', { paths: [from] });
    } catch {
      return; // no etcd3 here
    }
    build.onLoad({ filter: PROTO_LOADER_INDEX }, async (args) => {
      if (path.resolve(args.path) !== etcd3Loader) return undefined;
      const source = await fs.readFile(args.path, 'utf8');
      const patched = patchSource('proto-loader-lazy-descriptors', args.path, source, [
        [
          'const descriptor = require("protobufjs/ext/descriptor");',
          'let descriptorModule;\nconst descriptorLazy = () => (descriptorModule !== undefined ? descriptorModule : (descriptorModule = require("protobufjs/ext/descriptor")));',
        ],
        ['descriptor.FileDescriptorProto.', 'descriptorLazy().FileDescriptorProto.'],
        ['descriptor.FileDescriptorSet.', 'descriptorLazy().FileDescriptorSet.', 2],
        [
          `function createMessageDefinition(message, fileDescriptors) {
    const messageDescriptor = message.toDescriptor('proto3');
    return {
        format: 'Protocol Buffer 3 DescriptorProto',
        type: messageDescriptor.$type.toObject(messageDescriptor, descriptorOptions),
        fileDescriptorProtos: fileDescriptors,
    };
}`,
          `${LAZY_TYPE_DEFINITION}function createMessageDefinition(message, fileDescriptors) {
    return lazyTypeDefinition('Protocol Buffer 3 DescriptorProto', message, fileDescriptors);
}`,
        ],
        [
          `function createEnumDefinition(enumType, fileDescriptors) {
    const enumDescriptor = enumType.toDescriptor('proto3');
    return {
        format: 'Protocol Buffer 3 EnumDescriptorProto',
        type: enumDescriptor.$type.toObject(enumDescriptor, descriptorOptions),
        fileDescriptorProtos: fileDescriptors,
    };
}`,
          `function createEnumDefinition(enumType, fileDescriptors) {
    return lazyTypeDefinition('Protocol Buffer 3 EnumDescriptorProto', enumType, fileDescriptors);
}`,
        ],
        [
          `    const descriptorList = root.toDescriptor('proto3').file;
    const bufferList = descriptorList.map(value => Buffer.from(descriptorLazy().FileDescriptorProto.encode(value).finish()));
    for (const [name, obj] of getAllHandledReflectionObjects(root, '')) {
        def[name] = createDefinition(obj, name, options, bufferList);
    }`,
          `    let bufferList;
    const fileDescriptors = () => {
        if (bufferList === undefined) {
            descriptorLazy();
            const descriptorList = root.toDescriptor('proto3').file;
            bufferList = descriptorList.map(value => Buffer.from(descriptorLazy().FileDescriptorProto.encode(value).finish()));
        }
        return bufferList;
    };
    for (const [name, obj] of getAllHandledReflectionObjects(root, '')) {
        def[name] = createDefinition(obj, name, options, fileDescriptors);
    }`,
        ],
      ]);
      if ('errors' in patched) return patched;
      return { contents: patched.contents, loader: 'js', resolveDir: path.dirname(args.path) };
    });
  },
};

const AWS_DEFAULT_PROVIDER = /[\\/]node_modules[\\/]@aws-sdk[\\/]credential-provider-node[\\/]dist-es[\\/]defaultProvider\.js$/;
const notBundled = (provider) =>
  `throw new CredentialsProviderError(${JSON.stringify(
    `${provider} is not bundled: deploy/esbuild-plugins.cjs keeps only environment credentials (always set in Lambda; locally set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, and unset AWS_PROFILE)`,
  )}, { logger: init.logger, tryNextLink: true });`;

/** @type {import('esbuild').Plugin} */
const awsCredentialsEnvOnly = {
  name: 'aws-credentials-env-only',
  setup(build) {
    build.onLoad({ filter: AWS_DEFAULT_PROVIDER }, async (args) => {
      const source = await fs.readFile(args.path, 'utf8');
      const patched = patchSource('aws-credentials-env-only', args.path, source, [
        ['import { remoteProvider } from "./remoteProvider";\n', ''],
        ['const { fromSSO } = await import("@aws-sdk/credential-provider-sso");\n        return fromSSO(init)(awsIdentityProperties);', notBundled('fromSSO')],
        ['const { fromIni } = await import("@aws-sdk/credential-provider-ini");\n        return fromIni(init)(awsIdentityProperties);', notBundled('fromIni')],
        ['const { fromProcess } = await import("@aws-sdk/credential-provider-process");\n        return fromProcess(init)(awsIdentityProperties);', notBundled('fromProcess')],
        ['const { fromTokenFile } = await import("@aws-sdk/credential-provider-web-identity");\n        return fromTokenFile(init)(awsIdentityProperties);', notBundled('fromTokenFile')],
        ['return (await remoteProvider(init))();', notBundled('remoteProvider (container and instance metadata)')],
        [
          'throw new CredentialsProviderError("Could not load credentials from any providers", {',
          'throw new CredentialsProviderError("Could not load credentials from any providers (this bundle has environment credentials only: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY; see deploy/esbuild-plugins.cjs)", {',
        ],
      ]);
      if ('errors' in patched) return patched;
      return { contents: patched.contents, loader: 'js', resolveDir: path.dirname(args.path) };
    });
  },
};

const GRPC_SERVER_MODULES = /^\.\/(server|server-call|server-credentials|server-interceptors)$/;
const GRPC_SRC_DIR = /[\\/]node_modules[\\/]@grpc[\\/]grpc-js[\\/]build[\\/]src$/;
const GRPC_SERVER_STUB = `'use strict';
const cache = new Map();
const notBundled = (name) => {
  if (!cache.has(name)) {
    cache.set(name, function () {
      throw new Error('@grpc/grpc-js server-side ' + name + ' is not bundled (client only: deploy/esbuild-plugins.cjs)');
    });
  }
  return cache.get(name);
};
module.exports = new Proxy({}, {
  get(_, key) {
    if (key === '__esModule') return true;
    if (typeof key === 'symbol' || key === 'then') return undefined;
    return notBundled(key);
  },
});
`;

/** @type {import('esbuild').Plugin} */
const grpcClientOnly = {
  name: 'grpc-js-client-only',
  setup(build) {
    build.onResolve({ filter: GRPC_SERVER_MODULES }, (args) => {
      if (!GRPC_SRC_DIR.test(args.resolveDir)) return undefined;
      return { path: args.path, namespace: 'grpc-js-server-stub' };
    });
    build.onLoad({ filter: /.*/, namespace: 'grpc-js-server-stub' }, () => ({ contents: GRPC_SERVER_STUB, loader: 'js' }));
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

module.exports = [esmCjsInterop, etcd3Proto, zodEnglishOnly, zodSlim, protoLoaderLazyDescriptors, awsCredentialsEnvOnly, grpcClientOnly, metafileReport];
