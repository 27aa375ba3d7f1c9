// `npm run openapi`: docs/openapi.json (OpenAPI 3.1) generated from the API's contract
// (lib/http/contract.ts: the zod schemas the handlers parse with and answer in). With --check it
// writes nothing and exits 1 when the committed file is not what the contract generates.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { API, COMPONENTS, UNROUTED, type Answer, type RouteSpec } from '../../lib/http/index.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const OPENAPI_FILE = path.join(ROOT, 'docs/openapi.json');

type Json = Record<string, unknown>;

const toJson = (schema: z.ZodType, io: 'input' | 'output'): Json => {
  const s = z.toJSONSchema(schema, { target: 'draft-2020-12', io, unrepresentable: 'any' }) as Json;
  delete s.$schema;
  return s;
};

/** A component's $ref when the schema is one of the named components, else the schema inline. */
function schemaOf(schema: z.ZodType, io: 'input' | 'output'): Json {
  const name = Object.entries(COMPONENTS).find(([, s]) => s === schema)?.[0];
  return name !== undefined ? { $ref: `#/components/schemas/${name}` } : toJson(schema, io);
}

function parameters(r: RouteSpec): Json[] {
  const out: Json[] = [];
  const add = (where: 'path' | 'query' | 'header', obj: z.ZodObject | undefined) => {
    if (obj === undefined) return;
    const js = toJson(obj, 'input') as { properties?: Record<string, Json>; required?: string[] };
    for (const [name, schema] of Object.entries(js.properties ?? {})) {
      const { description, ...rest } = schema as Json & { description?: string };
      out.push({ name, in: where, required: where === 'path' || (js.required ?? []).includes(name), ...(description ? { description } : {}), schema: rest });
    }
  };
  add('path', r.params);
  add('query', r.query);
  add('header', r.headers);
  return out;
}

function answers(responses: Record<number, Answer>): Json {
  const out: Json = {};
  for (const [status, a] of Object.entries(responses).sort(([x], [y]) => Number(x) - Number(y))) {
    const type = a.contentType ?? (Number(status) >= 400 ? 'application/problem+json' : 'application/json');
    out[status] = { description: a.description, ...(a.schema ? { content: { [type]: { schema: schemaOf(a.schema, 'output') } } } : {}) };
  }
  return out;
}

export function generateOpenApi(version: string): Json {
  const paths: Record<string, Json> = {};
  for (const r of API) {
    const op: Json = {
      operationId: r.operationId,
      summary: r.summary,
      ...(r.auth ? {} : { security: [] }),
      ...(parameters(r).length ? { parameters: parameters(r) } : {}),
      ...(r.body ? { requestBody: { required: true, content: { 'application/json': { schema: schemaOf(r.body, 'input') } } } } : {}),
      responses: answers(r.responses),
    };
    paths[r.path] = { ...(paths[r.path] ?? {}), [r.method.toLowerCase()]: op };
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'circuitry',
      version,
      description: `Publishes application-proxy circuits to Traefik through etcd. Every error is application/problem+json (RFC 9457); ${Object.entries(UNROUTED)
        .map(([s, a]) => `${s}: ${a.description}`)
        .join('; ')}.`,
    },
    security: [{ bearer: [] }],
    paths,
    components: {
      securitySchemes: { bearer: { type: 'http', scheme: 'bearer', description: 'one of API_TOKENS' } },
      schemas: Object.fromEntries(Object.entries(COMPONENTS).map(([name, s]) => [name, toJson(s, 'output')])),
    },
  };
}

export const render = (doc: Json): string => `${JSON.stringify(doc, null, 2)}\n`;

async function main(argv: string[]): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write('usage: npm run openapi [-- --check]\n  writes docs/openapi.json from lib/http/contract.ts; --check writes nothing and exits 1 if it is out of date\n');
    return 0;
  }
  const unknown = argv.filter((a) => a !== '--check');
  if (unknown.length > 0) {
    process.stderr.write(`openapi: unknown argument(s): ${unknown.join(' ')} (see --help)\n`);
    return 2;
  }
  const version = (JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
  const text = render(generateOpenApi(version));
  if (argv.includes('--check')) {
    const current = fs.existsSync(OPENAPI_FILE) ? fs.readFileSync(OPENAPI_FILE, 'utf8') : '';
    if (current !== text) {
      process.stderr.write('openapi: docs/openapi.json is out of date: run npm run openapi\n');
      return 1;
    }
    process.stdout.write('openapi: docs/openapi.json is up to date\n');
    return 0;
  }
  fs.mkdirSync(path.dirname(OPENAPI_FILE), { recursive: true });
  fs.writeFileSync(OPENAPI_FILE, text);
  process.stdout.write(`openapi: wrote ${path.relative(process.cwd(), OPENAPI_FILE)} (${API.length} operations)\n`);
  return 0;
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) {
  main(process.argv.slice(2)).then((code) => process.exit(code));
}
