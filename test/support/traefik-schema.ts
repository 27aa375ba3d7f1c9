// Validates rendered etcd keys the way Traefik's KV provider would read them: keys -> tree
// (numeric segments are list indices), string leaves typed by the schema at their location,
// then JSON-schema validation against Traefik v3's dynamic configuration schema, then a check
// that routers only reference services and middlewares that exist.
import { readFileSync } from 'node:fs';
import { Ajv, type ValidateFunction } from 'ajv';
import { keysToTree } from '../../lib/traefik/tree.js';

type Schema = Record<string, unknown>;

const SCHEMA_URL = new URL('../../../shared/traefik/traefik-v3-dynamic.schema.json', import.meta.url);

/**
 * The shared schema, tightened in memory (the shared file is not ours to edit). Every change
 * only adds constraints, so whatever passes here also passes the original schema:
 * - the schema has no `tcp.middlewares`, so TCP allow-lists would go unchecked: add Traefik
 *   v3's TCP middlewares (pkg/config/dynamic: ipAllowList, ipWhiteList, inFlightConn);
 * - `http` and `tcp` are open objects, so a misspelt `http/routerz/...` would pass: close
 *   them to the fields Traefik v3 knows.
 */
function loadSchema(): Schema {
  const schema = JSON.parse(readFileSync(SCHEMA_URL, 'utf8')) as Schema;
  const defs = schema.definitions as Record<string, Schema>;
  const props = schema.properties as Record<string, Schema>;
  const sourceRangeOnly = {
    type: 'object',
    properties: { sourceRange: { type: 'array', items: { type: 'string' } } },
    additionalProperties: false,
  };
  defs.tcpMiddleware = {
    type: 'object',
    oneOf: [
      { properties: { ipAllowList: sourceRangeOnly }, additionalProperties: false },
      { properties: { ipWhiteList: sourceRangeOnly }, additionalProperties: false },
      {
        properties: {
          inFlightConn: { type: 'object', properties: { amount: { type: 'integer' } }, additionalProperties: false },
        },
        additionalProperties: false,
      },
    ],
  };
  const http = props.http!;
  const tcp = props.tcp!;
  (tcp.properties as Record<string, unknown>).middlewares = {
    type: 'object',
    additionalProperties: { $ref: '#/definitions/tcpMiddleware' },
  };
  const open = { type: 'object' };
  http.properties = { serversTransports: open, models: open, ...(http.properties as object) };
  tcp.properties = { serversTransports: open, ...(tcp.properties as object) };
  http.additionalProperties = false;
  tcp.additionalProperties = false;
  return schema;
}

interface Compiled {
  ajv: Ajv;
  schema: Schema;
  validate: ValidateFunction;
}
let compiled: Compiled | undefined;
function compiledSchema(): Compiled {
  if (compiled === undefined) {
    const schema = loadSchema();
    // The schema declares draft-07, which is what Ajv's default class implements.
    const ajv = new Ajv({ strict: false, allErrors: true });
    compiled = { ajv, schema, validate: ajv.compile(schema) };
  }
  return compiled;
}

// --- walking the schema to find the type at a location -------------------------------------

function deref(root: Schema, s: unknown): Schema[] {
  if (typeof s !== 'object' || s === null) return [];
  const schema = s as Schema;
  const ref = schema.$ref;
  if (typeof ref === 'string') {
    const name = /^#\/definitions\/(.+)$/.exec(ref)?.[1];
    if (name === undefined) throw new Error(`unsupported $ref ${ref}`);
    return deref(root, (root.definitions as Record<string, unknown>)[name]);
  }
  // A location's schema is itself plus every branch that may apply to it.
  const branches = ['oneOf', 'anyOf', 'allOf'].flatMap((k) => (Array.isArray(schema[k]) ? (schema[k] as unknown[]) : []));
  return [schema, ...branches.flatMap((b) => deref(root, b))];
}

function childSchemas(root: Schema, schemas: Schema[], key: string): Schema[] {
  return schemas.flatMap((s) => {
    const props = s.properties as Record<string, unknown> | undefined;
    if (props !== undefined && Object.hasOwn(props, key)) return deref(root, props[key]);
    const patterns = Object.entries((s.patternProperties as Record<string, unknown> | undefined) ?? {});
    const matched = patterns.filter(([re]) => new RegExp(re, 'u').test(key));
    if (matched.length > 0) return matched.flatMap(([, sub]) => deref(root, sub));
    return deref(root, s.additionalProperties);
  });
}

function typesOf(schemas: Schema[]): Set<string> {
  return new Set(schemas.flatMap((s) => (Array.isArray(s.type) ? (s.type as string[]) : typeof s.type === 'string' ? [s.type] : [])));
}

const NUMERIC = /^-?\d+(\.\d+)?([eE][+-]?\d+)?$/;

/** Types a string leaf as Traefik would; a string it cannot convert is left for ajv to reject. */
function coerce(root: Schema, value: unknown, schemas: Schema[]): unknown {
  if (typeof value === 'string') {
    const types = typesOf(schemas);
    if (types.has('string') || types.size === 0) return value;
    if ((types.has('integer') || types.has('number')) && NUMERIC.test(value)) return Number(value);
    if (types.has('boolean') && (value === 'true' || value === 'false')) return value === 'true';
    if (types.has('object') && (value === '' || value === 'true')) return {};
    return value;
  }
  if (Array.isArray(value)) {
    const items = schemas.flatMap((s) => deref(root, s.items));
    return value.map((v) => coerce(root, v, items));
  }
  const obj = value as Record<string, unknown>;
  return Object.fromEntries(Object.entries(obj).map(([k, v]) => [k, coerce(root, v, childSchemas(root, schemas, k))]));
}

/** Reads the keys under rootPath back as Traefik would and validates them against the schema. */
export function validateTraefikKeys(rootPath: string, kv: ReadonlyMap<string, string>): { valid: boolean; errors: string } {
  const { ajv, schema, validate } = compiledSchema();
  let typed: unknown;
  try {
    typed = coerce(schema, keysToTree(rootPath, kv), deref(schema, schema));
  } catch (e) {
    return { valid: false, errors: (e as Error).message };
  }
  if (!validate(typed)) return { valid: false, errors: ajv.errorsText(validate.errors, { separator: '\n' }) };
  const dangling = danglingReferences(typed as Record<string, unknown>);
  return { valid: dangling.length === 0, errors: dangling.join('\n') };
}

/**
 * What a schema cannot express: a router's service and middlewares must exist in the same
 * provider (Traefik drops such a router), e.g. a router left behind after its service's keys
 * went. Names with '@' refer to another provider and are not checked.
 */
function danglingReferences(tree: Record<string, unknown>): string[] {
  const errors: string[] = [];
  const names = (o: unknown): Set<string> => new Set(Object.keys((o ?? {}) as object));
  for (const p of ['http', 'tcp'] as const) {
    const section = (tree[p] ?? {}) as Record<string, Record<string, unknown> | undefined>;
    const services = names(section.services);
    const middlewares = names(section.middlewares);
    for (const [name, r] of Object.entries(section.routers ?? {})) {
      const router = r as { service: string; middlewares?: string[] };
      if (!router.service.includes('@') && !services.has(router.service)) {
        errors.push(`${p} router ${name}: service ${router.service} is not defined`);
      }
      for (const m of router.middlewares ?? []) {
        if (!m.includes('@') && !middlewares.has(m)) errors.push(`${p} router ${name}: middleware ${m} is not defined`);
      }
    }
  }
  return errors;
}
