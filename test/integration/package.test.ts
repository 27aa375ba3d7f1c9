// `npx osls package` works offline and produces what DESIGN §5 and serverless.yml promise: the
// four functions, the HTTP API routes (and the catch-all), the schedule, the unload rule with its dead-letter
// queue and the alarm on it, PutEvents limited to the bus, and per-function zips that stay within
// their size budgets, ship etcd3's proto files, import without touching the network and emit a
// ColdStart metric. A stage without its required parameters fails naming each of them. Needs no
// services (etcd/Postgres) and no AWS access: packaging runs with dummy credentials and resolves
// SSM only at deploy time.
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm, rmdir, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const run = promisify(execFile);
const root = fileURLToPath(new URL('../..', import.meta.url));

const FUNCTIONS = ['circuits-api', 'health-sweeper', 'scheduled-health', 'unload', 'update-routes'] as const;
const ROUTES = [
  'ANY /{proxy+}',
  'DELETE /v2/circuits/{id}',
  'GET /v2/circuits',
  'GET /v2/circuits/{id}',
  'GET /v2/health',
  'GET /v2/locks',
  'GET /v2/status',
  'GET /v2/transitions',
  'GET /v2/ui',
  'POST /v2/circuits',
  'PUT /v2/circuits/{id}/routes',
  'PUT /v2/workers/{authority}',
];
const PROTO_FILES = ['auth.proto', 'kv.proto', 'rpc.proto'];
// Zip budgets: the sizes of 2026-12 (deterministic bytes: esbuild output, deflate level 9) plus
// ~5 %. A dependency upgrade or a new import that breaks a budget should be a decision, not an
// accident: `npm run bundle:report` shows what is in each bundle.
const KIB = 1024;
const ZIP_BUDGET: Record<(typeof FUNCTIONS)[number], number> = {
  'circuits-api': 393 * KIB, // 374 KiB; publishes events (AWS SDK) and serves the status page (10 KiB)
  'scheduled-health': 383 * KIB, // 365 KiB; publishes RouteHealthChanged and HealthSweepRequested (AWS SDK)
  'health-sweeper': 382 * KIB, // 364 KiB; publishes RouteHealthChanged
  unload: 287 * KIB, // 273 KiB
  'update-routes': 293 * KIB, // 279 KiB
};
const DUMMY_AWS = { AWS_ACCESS_KEY_ID: 'x', AWS_SECRET_ACCESS_KEY: 'x', AWS_SESSION_TOKEN: undefined, AWS_PROFILE: undefined };
/** Runs `npx osls <args>` offline; resolves with its output whether it fails or not. */
async function osls(args: string[], timeout = 150_000): Promise<{ ok: boolean; out: string }> {
  try {
    const r = await run('npx', ['--no', 'osls', ...args], { cwd: root, env: { ...process.env, ...DUMMY_AWS }, timeout, maxBuffer: 16 * 1024 * 1024 });
    return { ok: true, out: `${r.stdout}\n${r.stderr}` };
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string; message: string };
    return { ok: false, out: `${e.message}\n${e.stdout ?? ''}\n${e.stderr ?? ''}` };
  }
}

type Json = Record<string, unknown>;
interface Resource {
  Type: string;
  Properties: Json;
}

let pkgDir: string;
let workFolder: string;
let resources: Record<string, Resource>;
let template: { Resources: Record<string, Resource>; Conditions?: Record<string, unknown> };
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
const readFileSyncUtf8 = (f: string): string => readFileSync(f, 'utf8');

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
  template = JSON.parse(await readFile(path.join(pkgDir, 'cloudformation-template-update-stack.json'), 'utf8')) as typeof template;
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
  it('declares the five functions on nodejs22.x / arm64 with SSM-backed configuration', () => {
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
    expect(timeouts['health-sweeper']).toBe(60);
    expect(timeouts.unload).toBe(30);
  });

  it('routes exactly the HTTP API routes to their functions, and everything else to circuits-api', () => {
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

  it('delivers HealthSweepRequested from the bus to health-sweeper, never retried or replayed late', () => {
    const [busId] = ofType('AWS::Events::EventBus').map(([id]) => id);
    const rules = ofType('AWS::Events::Rule').filter(([, r]) => asList(obj(r.Properties.EventPattern)['detail-type']).includes('HealthSweepRequested'));
    expect(rules).toHaveLength(1);
    const rule = rules[0]![1].Properties;
    expect(getAttId(rule.EventBusName, 'Name')).toBe(busId);
    expect(obj(rule.EventPattern).source).toEqual(['circuitry']);
    const targets = asList(rule.Targets).map(obj);
    expect(targets.map((t) => functionName(getAttId(t.Arn)))).toEqual(['health-sweeper']);
    expect(obj(targets[0]!.RetryPolicy)).toEqual({ MaximumEventAgeInSeconds: 60, MaximumRetryAttempts: 0 });
    const invokeConfigs = ofType('AWS::Lambda::EventInvokeConfig').filter(([, c]) => functionName(obj(c.Properties.FunctionName).Ref as string) === 'health-sweeper');
    expect(invokeConfigs).toHaveLength(1);
    expect(invokeConfigs[0]![1].Properties.MaximumRetryAttempts).toBe(0);
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

  it('zips each function within its budget, with etcd3 proto files next to its bundle', async () => {
    for (const name of FUNCTIONS) {
      const zip = path.join(pkgDir, `${name}.zip`);
      const { size } = await stat(zip);
      const { stdout } = await run('unzip', ['-Z1', zip]);
      const entries = stdout.split('\n').filter((l) => l !== '');
      console.log(`package: ${name}.zip ${(size / 1024).toFixed(0)} KiB (budget ${ZIP_BUDGET[name] / 1024} KiB), ${entries.length} entries`);
      expect(size, name).toBeLessThanOrEqual(ZIP_BUDGET[name]);
      expect(entries, name).toContain(`functions/${name}.mjs`);
      for (const proto of PROTO_FILES) expect(entries, name).toContain(`functions/etcd3-proto/${proto}`);
      expect(entries.some((e) => e.startsWith('node_modules/')), name).toBe(false);
      // Every entry intact (the zips are re-deflated at level 9 by deploy/serverless-circuitry.cjs).
      await run('unzip', ['-tq', zip]);
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
  it('alarms on any message in the unload dead-letter queue, notifying an optional SNS topic', async () => {
    const rules = ofType('AWS::Events::Rule').filter(([, r]) => asList(obj(r.Properties.EventPattern)['detail-type']).includes('CircuitUnloadRequested'));
    const dlqId = getAttId(obj(asList(rules[0]![1].Properties.Targets).map(obj)[0]!.DeadLetterConfig).Arn);
    const alarms = ofType('AWS::CloudWatch::Alarm');
    expect(alarms).toHaveLength(1);
    const a = alarms[0]![1].Properties;
    expect(a).toMatchObject({
      Namespace: 'AWS/SQS',
      MetricName: 'ApproximateNumberOfMessagesVisible',
      Statistic: 'Maximum',
      Threshold: 0,
      ComparisonOperator: 'GreaterThanThreshold',
      TreatMissingData: 'notBreaching',
    });
    expect(Number(a.Period) * Number(a.EvaluationPeriods)).toBeLessThanOrEqual(300);
    expect(asList(a.Dimensions)).toEqual([{ Name: 'QueueName', Value: { 'Fn::GetAtt': [dlqId, 'QueueName'] } }]);
    // Without alarmTopicArn the actions are left out (the condition is false) ...
    expect(template.Conditions?.HasAlarmTopic).toEqual({ 'Fn::Not': [{ 'Fn::Equals': ['', ''] }] });
    expect(a.AlarmActions).toEqual({ 'Fn::If': ['HasAlarmTopic', [''], { Ref: 'AWS::NoValue' }] });
    // ... and with it, the topic is notified when the alarm fires and when it clears.
    const topic = 'arn:aws:sns:eu-west-1:123456789012:circuitry-ops';
    const printed = await osls(['print', '--stage', 'ci', `--param=alarmTopicArn=${topic}`, '--format', 'json'], 60_000);
    expect(printed.ok, printed.out).toBe(true);
    const config = JSON.parse(printed.out.slice(printed.out.indexOf('{'), printed.out.lastIndexOf('}') + 1)) as { resources: { Conditions: Json; Resources: Record<string, Resource> } };
    expect(config.resources.Conditions.HasAlarmTopic).toEqual({ 'Fn::Not': [{ 'Fn::Equals': [topic, ''] }] });
    const props = config.resources.Resources.UnloadDeadLetterQueueAlarm!.Properties;
    for (const k of ['AlarmActions', 'OKActions']) expect(props[k], k).toEqual({ 'Fn::If': ['HasAlarmTopic', [topic], { Ref: 'AWS::NoValue' }] });
  });

  it('leaves metrics (and so the ColdStart metric) enabled in every function', () => {
    for (const [id, fn] of ofType('AWS::Lambda::Function')) {
      const vars = obj(obj(fn.Properties.Environment).Variables);
      expect(vars.POWERTOOLS_METRICS_DISABLED, id).toBeUndefined();
      expect(vars.POWERTOOLS_DEV, id).toBeUndefined();
    }
  });

  it('packaged handlers emit a ColdStart metric on their first invocation only', async () => {
    // circuits-api: a request without a token is answered 401 before any dependency is touched;
    // unload: a malformed event is dropped before any etcd or database call.
    const cases: Array<[string, unknown]> = [
      ['circuits-api', { version: '2.0', routeKey: 'GET /v2/circuits', rawPath: '/v2/circuits', headers: {}, requestContext: { http: { method: 'GET', path: '/v2/circuits' } } }],
      ['unload', { 'detail-type': 'CircuitUnloadRequested', source: 'circuitry', detail: { circuitId: 'not-a-uuid' } }],
    ];
    for (const [name, event] of cases) {
      const dir = await mkdtemp(path.join(tmpdir(), `circuitry-invoke-${name}-`));
      tmpDirs.push(dir);
      await run('unzip', ['-q', path.join(pkgDir, `${name}.zip`), '-d', dir]);
      const script = [
        "import net from 'node:net';",
        'const connect = net.Socket.prototype.connect;',
        'const connects = [];',
        'net.Socket.prototype.connect = function (...args) { connects.push(JSON.stringify(args[0])); return connect.apply(this, args); };',
        `const { handler } = await import('./functions/${name}.mjs');`,
        `const event = ${JSON.stringify(event)};`,
        `const context = () => ({ functionName: 'circuitry-ci-${name}', functionVersion: '$LATEST', awsRequestId: crypto.randomUUID(), memoryLimitInMB: '512', invokedFunctionArn: 'arn:aws:lambda:eu-west-1:123456789012:function:circuitry-ci-${name}', getRemainingTimeInMillis: () => 10000 });`,
        'const results = [];',
        "for (let i = 0; i < 2; i++) { console.log('--- invocation ' + i); results.push(await handler(event, context())); }",
        "console.log('--- done ' + JSON.stringify({ results, connects }));",
        'process.exit(0);',
      ].join('\n');
      const { stdout } = await run(process.execPath, ['--input-type=module', '-e', script], {
        cwd: dir,
        env: {
          PATH: process.env.PATH ?? '',
          AWS_REGION: 'eu-west-1',
          AWS_LAMBDA_FUNCTION_NAME: `circuitry-ci-${name}`,
          AWS_LAMBDA_INITIALIZATION_TYPE: 'on-demand', // as Lambda sets it; Powertools counts cold starts only then
          ETCD_ENDPOINTS: 'http://127.0.0.1:1',
          DATABASE_URL: 'postgres://circuitry:secret@127.0.0.1:1/circuitry',
          API_TOKENS: 'package-test-token-0123456789',
          POWERTOOLS_LOG_LEVEL: 'ERROR',
        },
        timeout: 30_000,
      });
      const [, first = '', second = ''] = stdout.split(/^--- invocation \d$/m);
      const coldStarts = (chunk: string) =>
        chunk
          .split('\n')
          .filter((l) => l.startsWith('{'))
          .map((l) => JSON.parse(l) as Json)
          .filter((o) => asList(obj(o._aws).CloudWatchMetrics).some((m) => asList(obj(m).Metrics).some((x) => obj(x).Name === 'ColdStart')));
      const firstCold = coldStarts(first);
      expect(firstCold, `${name}: ${stdout}`).toHaveLength(1);
      expect(firstCold[0]).toMatchObject({ ColdStart: 1, function_name: `circuitry-ci-${name}`, service: 'circuitry' });
      expect(obj(asList(obj(firstCold[0]!._aws).CloudWatchMetrics)[0]).Namespace).toBe('circuitry');
      expect(coldStarts(second.split(/^--- done /m)[0] ?? ''), name).toHaveLength(0);
      const done = JSON.parse(stdout.split(/^--- done /m)[1]!.split('\n')[0]!) as { results: Json[]; connects: string[] };
      expect(done.connects, name).toEqual([]);
      if (name === 'circuits-api') expect(done.results.map((r) => r.statusCode)).toEqual([401, 401]);
      else expect(done.results.map((r) => r.status)).toEqual(['malformed', 'malformed']);
    }
  });

  it('the proto-loader patch computes the same definitions for etcd3, lazily', async () => {
    const esbuild = await import('esbuild');
    const req = createRequire(import.meta.url);
    const plugins = req(path.join(root, 'deploy/esbuild-plugins.cjs')) as import('esbuild').Plugin[];
    const dir = await mkdtemp(path.join(tmpdir(), 'circuitry-proto-loader-'));
    tmpDirs.push(dir);
    const etcd3Dir = path.dirname(req.resolve('etcd3/package.json'));
    const loaderPath = req.resolve('@grpc/proto-loader', { paths: [etcd3Dir] });
    await writeFile(path.join(dir, 'entry.cjs'), `module.exports = require(${JSON.stringify(loaderPath)});`);
    await esbuild.build({
      entryPoints: [path.join(dir, 'entry.cjs')],
      outfile: path.join(dir, 'out.cjs'),
      bundle: true,
      platform: 'node',
      format: 'cjs',
      absWorkingDir: root,
      plugins: plugins.filter((p) => p.name === 'proto-loader-lazy-descriptors'),
      logLevel: 'error',
    });
    type Loader = { loadSync: (f: string, o: object) => Record<string, Record<string, unknown>> };
    const patched = req(path.join(dir, 'out.cjs')) as Loader;
    const original = req(loaderPath) as Loader;
    expect(readFileSyncUtf8(path.join(dir, 'out.cjs'))).toContain('lazyTypeDefinition');
    const proto = path.join(etcd3Dir, 'proto/rpc.proto');
    const opts = { keepCase: true, longs: String, enums: String, defaults: true, oneofs: true };
    const a = patched.loadSync(proto, opts);
    const b = original.loadSync(proto, opts);
    expect(Object.keys(a)).toEqual(Object.keys(b));
    let methods = 0;
    for (const [k, def] of Object.entries(b)) {
      if ('format' in def) {
        expect({ ...a[k] }, k).toEqual({ ...def });
        continue;
      }
      for (const [m, md] of Object.entries(def)) {
        const x = a[k]![m] as Json;
        const y = md as Json;
        for (const f of ['path', 'requestStream', 'responseStream', 'originalName', 'options']) expect(x[f], `${k}.${m}.${f}`).toEqual(y[f]);
        for (const f of ['requestType', 'responseType']) expect({ ...obj(x[f]) }, `${k}.${m}.${f}`).toEqual({ ...obj(y[f]) });
        const msg = { key: Buffer.from('k'), range_end: Buffer.from('l'), limit: '5' };
        if (m === 'Range') expect((x.requestSerialize as (v: unknown) => Buffer)(msg)).toEqual((y.requestSerialize as (v: unknown) => Buffer)(msg));
        methods++;
      }
    }
    expect(methods).toBeGreaterThan(30);
  });

  it('request and event validation bundled with zod-slim behaves exactly like the source', async () => {
    // The bundles drop parts of zod (deploy/esbuild-plugins.cjs); lib/'s schemas must not notice.
    const esbuild = await import('esbuild');
    const req = createRequire(import.meta.url);
    const plugins = (req(path.join(root, 'deploy/esbuild-plugins.cjs')) as import('esbuild').Plugin[]).filter((p) => p.name !== 'metafile-report');
    const dir = await mkdtemp(path.join(tmpdir(), 'circuitry-zod-'));
    tmpDirs.push(dir);
    const lib = (f: string) => JSON.stringify(path.join(root, 'lib', f));
    await writeFile(
      path.join(dir, 'entry.ts'),
      `export { createCircuitBody, updateRoutesBody, workerBody, listQuery } from ${lib('http/requests.ts')};\nexport { parseUnloadEvent } from ${lib('circuits/unload-event.ts')};\n`,
    );
    await esbuild.build({ entryPoints: [path.join(dir, 'entry.ts')], outfile: path.join(dir, 'entry.mjs'), bundle: true, minify: true, keepNames: true, platform: 'node', format: 'esm', target: 'node22', mainFields: ['module', 'main'], absWorkingDir: root, plugins, logLevel: 'error' });
    expect(readFileSyncUtf8(path.join(dir, 'entry.mjs'))).toContain('zod-slim');
    type Api = typeof import('../../lib/http/requests.js') & typeof import('../../lib/circuits/unload-event.js');
    const bundled = (await import(path.join(dir, 'entry.mjs'))) as Api;
    const source = { ...(await import('../../lib/http/requests.js')), ...(await import('../../lib/circuits/unload-event.js')) } as Api;
    const policy = { maxRoutesPerCircuit: 4, allowedBackendCidrs: ['10.0.0.0/8'] } as never;
    const route = { routeId: '5d0f6c0e-58a5-4d9a-8b1e-6a8f1f6b1c11', sessionId: '5d0f6c0e-58a5-4d9a-8b1e-6a8f1f6b1c12', host: '10.0.0.5', port: 30001, trafficRatio: 1 };
    const bodies: unknown[] = [
      { worker: 'w-1', protocol: 'http', appMode: 'inference', frontend: { mode: 'port', port: 10205 }, routes: [route] },
      { worker: 'W!', protocol: 'udp', appMode: 'x', frontend: { mode: 'port', port: 0 }, routes: [{ ...route, host: '169.254.169.254', extra: 1 }] },
      { worker: 'w-1', protocol: 'tcp', appMode: 'interactive', frontend: { mode: 'wildcard', subdomain: 'Bad_Sub' }, routes: [], healthCheck: { path: 'x' } },
      { worker: 'w-1', protocol: 'http', appMode: 'inference', frontend: { mode: 'port', port: 1 }, routes: Array.from({ length: 5 }, () => route), __proto__: { x: 1 } },
      'not an object',
    ];
    const outcome = (f: () => unknown) => {
      try {
        return { ok: f() };
      } catch (e) {
        return { error: (e as Error).name, message: (e as Error).message, errors: (e as { errors?: unknown }).errors };
      }
    };
    const run = (api: Api) => ({
      create: bodies.map((b) => outcome(() => api.createCircuitBody({ json: b } as never, policy))),
      routes: bodies.map((b) => outcome(() => api.updateRoutesBody({ json: b } as never, policy))),
      worker: [{ hostname: 'proxy.example.com', tls: true }, { hostname: 'a b' }, {}].map((b) => outcome(() => api.workerBody({ json: b } as never))),
      list: [{ limit: '5' }, { limit: '-1', x: '1' }, {}].map((q) => outcome(() => api.listQuery({ queryStringParameters: q } as never))),
      unload: [{ detail: { circuitId: route.routeId.toUpperCase() } }, { detail: { circuitId: 'nope' } }, null, { detail: {} }].map((e) => outcome(() => api.parseUnloadEvent(e))),
    });
    const b = run(bundled);
    expect(b).toEqual(run(source));
    expect(b.create[0]).toHaveProperty('ok');
    expect(b.create[1]).toMatchObject({ error: 'HttpProblem' });
  });

  it('a stage without its required parameters fails, naming each of them and how to pass it', async () => {
    const r = await osls(['package', '--stage', 'staging', '--package', path.join(pkgDir, 'staging')], 60_000);
    expect(r.ok).toBe(false);
    for (const name of ['securityGroupIds', 'subnetIds']) {
      expect(r.out).toContain(`missing required parameter "${name}" for stage "staging"`);
      expect(r.out).toContain(`--param="${name}=`);
    }
    expect(r.out).not.toContain('Value not found at "param" source');
    // A malformed id is named too.
    const bad = await osls(['print', '--stage', 'staging', '--param=securityGroupIds=sg-1', '--param=subnetIds=subnet-0a1b2c3d4e5f60718'], 60_000);
    expect(bad.ok).toBe(false);
    expect(bad.out).toContain('parameter "securityGroupIds" for stage "staging" has invalid id(s) "sg-1"');
    expect(bad.out).not.toContain('"subnetIds"');
  });
});
