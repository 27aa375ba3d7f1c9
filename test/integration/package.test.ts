// `npx osls package` works offline and produces what DESIGN §5 and serverless.yml promise: the
// four functions, the six HTTP API routes, the schedule, the unload rule with its dead-letter
// queue, PutEvents limited to the bus, and per-function zips that are small, ship etcd3's proto
// files and import without touching the network. Needs no services (etcd/Postgres) and no AWS
// access: packaging runs with dummy credentials and resolves SSM only at deploy time.
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, rmdir, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const run = promisify(execFile);
const root = fileURLToPath(new URL('../..', import.meta.url));

const FUNCTIONS = ['circuits-api', 'scheduled-health', 'unload', 'update-routes'] as const;
const ROUTES = [
  'DELETE /v2/circuits/{id}',
  'GET /v2/circuits',
  'GET /v2/circuits/{id}',
  'POST /v2/circuits',
  'PUT /v2/circuits/{id}/routes',
  'PUT /v2/workers/{authority}',
];
const PROTO_FILES = ['auth.proto', 'kv.proto', 'rpc.proto'];
const MAX_ZIP_BYTES = 2 * 1024 * 1024;

type Json = Record<string, unknown>;
interface Resource {
  Type: string;
  Properties: Json;
}

let pkgDir: string;
let workFolder: string;
let resources: Record<string, Resource>;
const tmpDirs: string[] = [];

const ofType = (type: string): [string, Resource][] => Object.entries(resources).filter(([, r]) => r.Type === type);
const obj = (v: unknown): Json => (typeof v === 'object' && v !== null ? (v as Json) : {});
/** The logical id in `{ "Fn::GetAtt": [id, attr] }`. */
const getAttId = (v: unknown, attr = 'Arn'): string | undefined => {
  const ga = obj(v)['Fn::GetAtt'];
  return Array.isArray(ga) && ga[1] === attr ? String(ga[0]) : undefined;
};
/** Lambda function logical id → the function name in serverless.yml (from its handler path). */
const functionName = (logicalId: string | undefined): string | undefined => {
  const handler = logicalId === undefined ? undefined : resources[logicalId]?.Properties.Handler;
  return typeof handler === 'string' ? /^functions\/(.+)\.handler$/.exec(handler)?.[1] : undefined;
};
const asList = (v: unknown): unknown[] => (Array.isArray(v) ? v : [v]);

beforeAll(async () => {
  pkgDir = await mkdtemp(path.join(tmpdir(), 'circuitry-package-'));
  tmpDirs.push(pkgDir);
  // Its own esbuild work folder (osls deletes it afterwards), so a running `osls offline` keeps
  // its bundles in .esbuild/.build.
  workFolder = `.esbuild/package-test-${process.pid}-${Date.now()}`;
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    AWS_ACCESS_KEY_ID: 'x',
    AWS_SECRET_ACCESS_KEY: 'x',
    AWS_SESSION_TOKEN: undefined,
    AWS_PROFILE: undefined,
  };
  try {
    await run(
      'npx',
      ['--no', 'osls', 'package', '--stage', 'ci', '--package', pkgDir, `--param=esbuildWorkFolder=${workFolder}`],
      { cwd: root, env, timeout: 150_000, maxBuffer: 16 * 1024 * 1024 },
    );
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string; message: string };
    throw new Error(`osls package failed: ${e.message}\n${e.stdout ?? ''}\n${e.stderr ?? ''}`);
  }
  const template = JSON.parse(await readFile(path.join(pkgDir, 'cloudformation-template-update-stack.json'), 'utf8')) as {
    Resources: Record<string, Resource>;
  };
  resources = template.Resources;
}, 180_000);

afterAll(async () => {
  await Promise.all([
    ...tmpDirs.map((d) => rm(d, { recursive: true, force: true })),
    ...(workFolder !== undefined ? [rm(path.join(root, workFolder), { recursive: true, force: true })] : []),
  ]);
  await rmdir(path.join(root, '.esbuild')).catch(() => {}); // only when nothing else uses it
});

describe('npx osls package --stage ci', () => {
  it('declares the four functions on nodejs22.x / arm64 with SSM-backed configuration', () => {
    const fns = ofType('AWS::Lambda::Function');
    expect(fns.map(([id]) => functionName(id)).sort()).toEqual([...FUNCTIONS]);
    for (const [id, fn] of fns) {
      const p = fn.Properties;
      expect(p.Runtime, id).toBe('nodejs22.x');
      expect(p.Architectures, id).toEqual(['arm64']);
      expect(Object.keys(obj(p.VpcConfig)).sort(), id).toEqual(['SecurityGroupIds', 'SubnetIds']);
      const vars = obj(obj(p.Environment).Variables);
      // Resolved by CloudFormation at deploy time, never by the framework at package time.
      expect(vars.ETCD_ENDPOINTS, id).toBe('{{resolve:ssm:/circuitry/ci/etcd-endpoints}}');
      expect(vars.DATABASE_URL, id).toBe('{{resolve:ssm:/circuitry/ci/database-url}}');
      expect(vars.API_TOKENS, id).toBe('{{resolve:ssm:/circuitry/ci/api-tokens}}');
      expect(vars.EVENT_BUS_NAME, id).toBe('circuitry-ci');
    }
    const timeouts = Object.fromEntries(fns.map(([id, fn]) => [functionName(id), fn.Properties.Timeout]));
    expect(timeouts['scheduled-health']).toBe(60);
    expect(timeouts.unload).toBe(30);
  });

  it('routes exactly the six HTTP API routes to their functions', () => {
    const integrationFn = (target: unknown): string | undefined => {
      const join = obj(target)['Fn::Join'];
      const ref = Array.isArray(join) && Array.isArray(join[1]) ? obj(join[1][1]).Ref : undefined;
      const integration = typeof ref === 'string' ? resources[ref] : undefined;
      return functionName(getAttId(integration?.Properties.IntegrationUri));
    };
    const routes = ofType('AWS::ApiGatewayV2::Route').map(([, r]) => [String(r.Properties.RouteKey), integrationFn(r.Properties.Target)]);
    expect(routes.map(([k]) => k).sort()).toEqual(ROUTES);
    for (const [key, fn] of routes) {
      expect(fn, key).toBe(key === 'PUT /v2/circuits/{id}/routes' ? 'update-routes' : 'circuits-api');
    }
  });

  it('runs scheduled-health every minute', () => {
    const schedules = ofType('AWS::Events::Rule').filter(([, r]) => r.Properties.ScheduleExpression !== undefined);
    expect(schedules).toHaveLength(1);
    const rule = schedules[0]![1].Properties;
    expect(rule.ScheduleExpression).toBe('rate(1 minute)');
    const targets = asList(rule.Targets);
    expect(targets.map((t) => functionName(getAttId(obj(t).Arn)))).toEqual(['scheduled-health']);
  });

  it('delivers CircuitUnloadRequested from the bus to unload, with a dead-letter queue', () => {
    const [busId] = ofType('AWS::Events::EventBus').map(([id]) => id);
    expect(busId).toBeDefined();
    const rules = ofType('AWS::Events::Rule').filter(([, r]) => asList(obj(r.Properties.EventPattern)['detail-type']).includes('CircuitUnloadRequested'));
    expect(rules).toHaveLength(1);
    const rule = rules[0]![1].Properties;
    expect(getAttId(rule.EventBusName, 'Name')).toBe(busId);
    expect(obj(rule.EventPattern).source).toEqual(['circuitry']);
    const targets = asList(rule.Targets).map(obj);
    expect(targets).toHaveLength(1);
    const target = targets[0]!;
    expect(functionName(getAttId(target.Arn))).toBe('unload');
    expect(obj(target.RetryPolicy).MaximumRetryAttempts).toBeTypeOf('number');
    const dlqId = getAttId(obj(target.DeadLetterConfig).Arn);
    expect(dlqId && resources[dlqId]?.Type).toBe('AWS::SQS::Queue');

    // EventBridge may write to the queue (the rule target's dead letters) ...
    const policies = ofType('AWS::SQS::QueuePolicy').filter(([, p]) => asList(p.Properties.Queues).some((q) => obj(q).Ref === dlqId));
    expect(policies).toHaveLength(1);
    const statements = asList(obj(policies[0]![1].Properties.PolicyDocument).Statement).map(obj);
    expect(
      statements.some(
        (s) => s.Effect === 'Allow' && obj(s.Principal).Service === 'events.amazonaws.com' && asList(s.Action).includes('sqs:SendMessage'),
      ),
    ).toBe(true);
    // ... and so may Lambda (handler failures after the async retries).
    const invokeConfigs = ofType('AWS::Lambda::EventInvokeConfig').filter(([, c]) => functionName(obj(c.Properties.FunctionName).Ref as string) === 'unload');
    expect(invokeConfigs).toHaveLength(1);
    expect(getAttId(obj(obj(invokeConfigs[0]![1].Properties.DestinationConfig).OnFailure).Destination)).toBe(dlqId);
  });

  it('grants events:PutEvents on the bus only, and nothing on "*"', () => {
    const [busId] = ofType('AWS::Events::EventBus').map(([id]) => id);
    const role = resources.IamRoleLambdaExecution;
    expect(role?.Type).toBe('AWS::IAM::Role');
    const statements = asList(role!.Properties.Policies).flatMap((p) => asList(obj(obj(p).PolicyDocument).Statement).map(obj));
    const putEvents = statements.filter((s) => asList(s.Action).includes('events:PutEvents'));
    expect(putEvents).toHaveLength(1);
    expect(putEvents[0]!.Resource).toEqual({ 'Fn::GetAtt': [busId, 'Arn'] });
    for (const s of statements) {
      expect(asList(s.Resource), JSON.stringify(s)).not.toContain('*');
      expect(asList(s.Action).some((a) => String(a).endsWith('*')), JSON.stringify(s)).toBe(false);
    }
  });

  it('zips each function under 2 MB with etcd3 proto files next to its bundle', async () => {
    for (const name of FUNCTIONS) {
      const zip = path.join(pkgDir, `${name}.zip`);
      const { size } = await stat(zip);
      expect(size, name).toBeLessThanOrEqual(MAX_ZIP_BYTES);
      const { stdout } = await run('unzip', ['-Z1', zip]);
      const entries = stdout.split('\n').filter((l) => l !== '');
      expect(entries, name).toContain(`functions/${name}.mjs`);
      for (const proto of PROTO_FILES) expect(entries, name).toContain(`functions/etcd3-proto/${proto}`);
      expect(entries.some((e) => e.startsWith('node_modules/')), name).toBe(false);
      console.log(`package: ${name}.zip ${(size / 1024).toFixed(0)} KiB, ${entries.length} entries`);
    }
  });

  it('bundles import cleanly (etcd3 finds its protos) without any network connection', async () => {
    // Counts socket connects during import; etcd3 reads its proto files while being imported.
    const preload = [
      "import net from 'node:net';",
      'const connect = net.Socket.prototype.connect;',
      'globalThis.__connects = [];',
      'net.Socket.prototype.connect = function (...args) { globalThis.__connects.push(JSON.stringify(args[0])); return connect.apply(this, args); };',
    ].join('\n');
    for (const name of FUNCTIONS) {
      const dir = await mkdtemp(path.join(tmpdir(), `circuitry-bundle-${name}-`));
      tmpDirs.push(dir);
      await run('unzip', ['-q', path.join(pkgDir, `${name}.zip`), '-d', dir]);
      await writeFile(path.join(dir, 'preload.mjs'), preload);
      const script = [
        'const t0 = performance.now();',
        `const m = await import('./functions/${name}.mjs');`,
        'const importMs = Math.round(performance.now() - t0);',
        'await new Promise((r) => setTimeout(r, 100));',
        'console.log(JSON.stringify({ handler: typeof m.handler, importMs, connects: globalThis.__connects }));',
        'process.exit(0);',
      ].join('\n');
      const { stdout } = await run(process.execPath, ['--import', './preload.mjs', '--input-type=module', '-e', script], {
        cwd: dir,
        env: { ...process.env, NODE_OPTIONS: undefined },
        timeout: 30_000,
      });
      const result = JSON.parse(stdout.trim().split('\n').at(-1) ?? '{}') as { handler: string; importMs: number; connects: string[] };
      expect(result.handler, name).toBe('function');
      expect(result.connects, name).toEqual([]);
      console.log(`package: ${name} bundle imports in ${result.importMs} ms`);
    }
  });
});
