// `circuitry`: the operator's tool. Same configuration as the functions (the environment, read and
// validated once, lib/config.ts); every command has --help, and --json for scripts.
//   circuitry status                      circuits by status, sync lag, panic circuits, pending unloads
//   circuitry drift                       what a sweep would change, writing nothing
//   circuitry locks                       held and queued locks, with age and holder
//   circuitry redrive                     complete pending or dead-lettered unloads
//   circuitry import --worker <authority> take over circuits another coordinator wrote (dry run unless --apply)
//   circuitry traefik-config --worker <authority> --ports <from-to>   a worker's Traefik static configuration
// Exit status: 0 done, 1 the command failed (or, with drift --exit-code, drift was found), 2 usage
// or configuration error.
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { getConfig } from '../lib/config.js';
import { closeRuntime, createRuntime, Invocation, type Runtime } from '../lib/runtime.js';
import { CircuitryError, classify, ConfigError } from '../lib/errors.js';
import { applyImport, circuitLocks, fleetStatus, planImport, redrive } from '../lib/circuits/index.js';
import { computeDrift, silentLog } from '../lib/health/index.js';
import { sqsDeadLetters } from '../lib/dead-letters.js';
import { authoritySchema, uuidSchema } from '../lib/model.js';
import { StaticConfigError, traefikStaticConfig } from '../lib/traefik/index.js';
import { stringify } from 'yaml';
import fs from 'node:fs';
import { output, table, type Out } from './output.js';

const uuid = (v: string): string => {
  const r = uuidSchema.safeParse(v);
  if (!r.success) throw new InvalidArgumentError('must be a circuit id (a UUID)');
  return r.data;
};
const authority = (v: string): string => {
  const r = authoritySchema.safeParse(v);
  if (!r.success) throw new InvalidArgumentError(r.error.issues[0]?.message ?? 'not a worker authority');
  return r.data;
};
const port = (v: string): number => {
  if (!/^\d{1,5}$/.test(v) || Number(v) < 1 || Number(v) > 65535) throw new InvalidArgumentError('must be a port (1-65535)');
  return Number(v);
};
const portRange = (v: string): { from: number; to: number } => {
  const m = /^(\d{1,5})(?:-(\d{1,5}))?$/.exec(v);
  const from = Number(m?.[1]);
  const to = Number(m?.[2] ?? m?.[1]);
  if (m === null || from < 1 || to > 65535 || from > to) throw new InvalidArgumentError('must be a port or a range such as 10200-10299');
  return { from, to };
};
const positive = (v: string): number => {
  if (!/^\d{1,6}$/.test(v) || Number(v) < 1) throw new InvalidArgumentError('must be a whole number from 1');
  return Number(v);
};

/** Runs a command with a runtime of this process's configuration, closing it afterwards. */
async function withRuntime<T>(fn: (rt: Runtime) => Promise<T>): Promise<T> {
  const rt = createRuntime(getConfig());
  try {
    return await fn(rt);
  } finally {
    await closeRuntime(rt);
  }
}

const age = (iso: string | null): string => (iso === null ? '-' : `${Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000))} s`);

async function status(out: Out): Promise<void> {
  await withRuntime(async (rt) => {
    const p = out.progress('reading circuits');
    const s = await fleetStatus(rt, (n) => p.update(n)).finally(() => p.stop());
    const lines = [
      table(['status', 'circuits'], Object.entries(s.circuits.byStatus).map(([k, v]) => [k, v]).concat([['total', s.circuits.total]])),
      `sync lag: ${s.syncLag.behind} circuit(s) behind the database (at most ${s.syncLag.maxGenerations} generation(s)); the next sweep converges them`,
      ...(s.syncLag.sample.length ? [table(['circuit', 'generation', 'in etcd'], s.syncLag.sample.map((x) => [x.circuitId, x.generation, x.appliedGeneration]))] : []),
      `panic: ${s.circuits.byStatus.panic} (no route known healthy; all listed, Traefik checks them)`,
      ...(s.panic.length ? [table(['circuit', 'worker'], s.panic.map((x) => [x.circuitId, x.worker]))] : []),
      `pending unloads: ${s.pendingUnloads.count}${s.pendingUnloads.oldestRequestedAt ? ` (oldest requested ${age(s.pendingUnloads.oldestRequestedAt)} ago)` : ''}; deleted, keys not yet confirmed gone: ${s.deletedAwaitingRelease}`,
      `workers: ${s.workers}; fencing epoch: ${s.fencingEpoch ? `${s.fencingEpoch.epoch} (since ${s.fencingEpoch.startedAt}: ${s.fencingEpoch.reason})` : 'none yet (the first sweep starts it)'}`,
    ];
    out.print(lines.join('\n'), s);
  });
}

async function drift(out: Out, o: { exitCode?: boolean }): Promise<number> {
  return withRuntime(async (rt) => {
    const inv = new Invocation(rt, 'cli:drift');
    const p = out.progress('scanning etcd and the database');
    try {
      let pages = 0;
      const plan = await computeDrift(inv, {
        db: rt.db,
        circuitsPageSize: 500,
        keysPageSize: 5000,
        log: silentLog,
        betweenPages: async () => p.update(++pages),
      }).finally(() => p.stop());
      const data = {
        revision: plan.revision,
        circuitsChecked: plan.circuitsChecked,
        repairs: [...plan.repairs].map(([circuitId, r]) => ({ circuitId, ...r })),
        orphans: plan.orphans,
        retired: plan.retired,
        orphanPolicy: rt.config.orphanPolicy,
        foreignKeys: plan.foreignKeys,
        keysOutsideWorkerRoots: plan.keysOutsideWorkerRoots,
        unknownMetas: plan.unknownMetas,
        tombstonesToRetire: plan.tombstonesToRetire.map((t) => t.circuitId),
        renderErrors: plan.renderErrors,
      };
      const human = [
        `checked ${plan.circuitsChecked} circuit(s) against etcd at revision ${plan.revision}`,
        `to repair (the sweep rewrites them through the fenced path): ${data.repairs.length}`,
        ...(data.repairs.length ? [table(['circuit', 'worker', 'why'], data.repairs.map((r) => [r.circuitId, r.worker, r.reason]))] : []),
        `keys of circuits the database does not know: ${plan.orphans.filter((x) => !x.known).length} circuit(s) — ${rt.config.orphanPolicy === 'delete' ? 'the sweep deletes them (ORPHAN_POLICY=delete)' : 'reported only (ORPHAN_POLICY=report; `circuitry import` can take them over)'}`,
        ...(plan.orphans.length ? [table(['circuit', 'root', 'keys', 'known'], plan.orphans.map((x) => [x.circuitId, x.root, x.keys, x.known ? 'yes (wrong root: removed)' : 'no']))] : []),
        `keys or metas of purged circuits (ids retired; the sweep deletes them): ${plan.retired.length} circuit(s)`,
        ...(plan.retired.length ? [table(['circuit', 'roots', 'keys', 'meta'], plan.retired.map((x) => [x.circuitId, x.roots.join(' '), x.keys, x.meta ? 'yes' : 'no']))] : []),
        `keys outside circuitry's naming under worker roots: ${plan.foreignKeys.count} (never touched)${plan.foreignKeys.sample.length ? `, e.g. ${plan.foreignKeys.sample.slice(0, 3).join(', ')}` : ''}`,
        `tombstones past their retention: ${plan.tombstonesToRetire.length}; metas of unknown circuits: ${plan.unknownMetas.length}; render errors: ${plan.renderErrors.length}`,
      ];
      out.print(human.join('\n'), data);
      const drifted = data.repairs.length + plan.orphans.length + plan.retired.length + plan.renderErrors.length > 0;
      return o.exitCode === true && drifted ? 1 : 0;
    } finally {
      await inv.close();
    }
  });
}

async function locks(out: Out, o: { circuit?: string }): Promise<void> {
  await withRuntime(async (rt) => {
    const list = await circuitLocks(rt, o.circuit ? { circuitId: o.circuit } : {});
    out.print(
      list.length === 0
        ? 'no lock is held or queued'
        : table(
            ['circuit', 'position', 'lease', 'holder', 'age', 'lease TTL left'],
            list.map((l) => [l.circuitId, l.position === 0 ? 'holds' : `queued #${l.position}`, l.leaseHex, l.holder || '-', l.ageSeconds === null ? null : `${l.ageSeconds} s`, l.ttlSeconds === null ? null : `${l.ttlSeconds} s`]),
          ),
      { locks: list },
    );
  });
}

async function redriveCmd(out: Out, o: { all?: boolean; dlqUrl?: string; maxMessages?: number }): Promise<number> {
  return withRuntime(async (rt) => {
    const inv = new Invocation(rt, 'cli:redrive');
    const p = out.progress('completing unloads');
    try {
      const queue = o.dlqUrl ?? rt.config.unloadDlqUrl;
      const r = await redrive(inv, {
        olderThanSeconds: o.all === true ? 0 : rt.config.unloadGraceSeconds,
        ...(queue ? { deadLetters: sqsDeadLetters(queue) } : {}),
        ...(o.maxMessages ? { maxMessages: o.maxMessages } : {}),
        onProgress: (n) => p.update(n),
      }).finally(() => p.stop());
      const human = [
        `pending unloads${o.all === true ? '' : ` older than ${rt.config.unloadGraceSeconds} s (UNLOAD_GRACE_SECONDS; --all for every one)`}: ${r.pending.found} found, ${r.pending.completed} completed, ${r.pending.notApplied} committed but not yet in etcd, ${r.pending.failed.length} failed`,
        ...r.pending.failed.map((f) => `  ${f.circuitId}: ${f.error}`),
        queue
          ? `dead-letter queue: ${r.deadLetters.received} message(s), ${r.deadLetters.completed} completed and removed, ${r.deadLetters.unreadable.length} naming no circuit (left in the queue), ${r.deadLetters.failed.length} failed (left in the queue)`
          : 'dead-letter queue: not read (give --dlq-url or UNLOAD_DLQ_URL)',
      ];
      out.print(human.join('\n'), r);
      return r.pending.failed.length + r.deadLetters.failed.length > 0 ? 1 : 0;
    } finally {
      await inv.close();
    }
  });
}

async function importCmd(out: Out, o: { worker: string; apply?: boolean; appMode?: 'inference' | 'interactive' }): Promise<number> {
  return withRuntime(async (rt) => {
    const p = out.progress('reading the worker root (keys)');
    let plan = await planImport(rt, o.worker, { ...(o.appMode ? { appMode: o.appMode } : {}), onProgress: (n) => p.update(n) }).finally(() => p.stop());
    if (o.apply === true) {
      const inv = new Invocation(rt, 'cli:import');
      const importable = plan.candidates.filter((c) => c.status === 'importable').length;
      const bar = out.progress('importing', importable);
      let n = 0;
      try {
        plan = await applyImport(inv, plan, () => bar.update(++n));
      } finally {
        bar.stop();
        await inv.close();
      }
    }
    const rows = plan.candidates.map((c) => [
      c.circuitId,
      c.status,
      c.input ? `${c.input.protocol} ${c.input.frontend.mode === 'port' ? `port ${c.input.frontend.port}` : `${c.input.frontend.subdomain}.*`}` : '-',
      c.input ? c.input.routes.length : '-',
      c.keys,
      c.reason ?? '',
    ]);
    const count = (s: string) => plan.candidates.filter((c) => c.status === s).length;
    const human = [
      `${plan.root}: ${plan.candidates.length} circuit tree(s) the database does not know, ${plan.known} it knows, ${plan.foreignKeys} key(s) outside circuitry's naming (left alone)`,
      ...(rows.length ? [table(['circuit', 'status', 'frontend', 'routes', 'keys', 'reason'], rows)] : []),
      o.apply === true
        ? `imported ${count('imported')}, skipped ${count('skipped')}, failed ${count('failed')}; their keys are unchanged, and the next sweep leaves them so`
        : `dry run: ${count('importable')} importable, ${count('skipped')} skipped; run again with --apply to import`,
    ];
    out.print(human.join('\n'), plan);
    return count('failed') > 0 ? 1 : 0;
  });
}

interface TraefikConfigOptions {
  worker: string;
  ports: { from: number; to: number };
  domainPort: number;
  domain: boolean;
  pingPort: number;
  etcdEndpoints?: string;
  traefikRoot?: string;
  etcdUsername?: string;
  etcdCa?: string;
  etcdCert?: string;
  etcdKey?: string;
  output?: string;
}

function traefikConfig(out: Out, o: TraefikConfigOptions): void {
  const endpoints = (o.etcdEndpoints ?? process.env.ETCD_ENDPOINTS ?? '').split(',').map((s) => s.trim()).filter(Boolean);
  if (endpoints.length === 0) throw new ConfigError('no etcd endpoint: pass --etcd-endpoints or set ETCD_ENDPOINTS');
  if (o.etcdCa === undefined && (o.etcdCert !== undefined || o.etcdKey !== undefined)) throw new ConfigError('--etcd-cert and --etcd-key need --etcd-ca');
  let config: Record<string, unknown>;
  try {
    config = traefikStaticConfig({
      traefikRoot: o.traefikRoot ?? (process.env.TRAEFIK_ROOT || 'traefik'),
      authority: o.worker,
      etcdEndpoints: endpoints,
      ports: o.ports,
      ...(o.domain ? { domainPort: o.domainPort } : {}),
      pingPort: o.pingPort,
      ...(o.etcdUsername === undefined ? {} : { etcdUsername: o.etcdUsername }),
      ...(o.etcdCa === undefined ? {} : { etcdTls: { ca: o.etcdCa, ...(o.etcdCert === undefined ? {} : { cert: o.etcdCert }), ...(o.etcdKey === undefined ? {} : { key: o.etcdKey }) } }),
    });
  } catch (err) {
    if (err instanceof StaticConfigError) throw new ConfigError(err.message);
    throw err;
  }
  const text = out.json
    ? `${JSON.stringify(config, null, 2)}\n`
    : `# Traefik static configuration for worker ${o.worker}, written by \`circuitry traefik-config\`.\n# Circuits on this worker may use frontend ports ${o.ports.from}-${o.ports.to}${o.domain ? ` and wildcard subdomains on :${o.domainPort}` : ''}.\n${stringify(config)}`;
  if (o.output === undefined) process.stdout.write(text);
  else {
    fs.writeFileSync(o.output, text);
    process.stderr.write(`circuitry: wrote ${o.output}\n`);
  }
}

export function program(): Command {
  const cmd = new Command('circuitry')
    .description('Operate circuitry: the same configuration as the functions (DATABASE_URL, ETCD_ENDPOINTS, ... from the environment; see README "Configuration").')
    .option('--json', 'machine-readable output (one JSON document on stdout)')
    .showHelpAfterError()
    .exitOverride();
  const jsonOf = (c: Command) => output(c.optsWithGlobals<{ json?: boolean }>().json === true);
  let code = 0;
  cmd
    .command('status')
    .description('circuits by status, sync lag (etcd behind the database), panic circuits, pending unloads, the fencing epoch')
    .action(async (_o, c: Command) => status(jsonOf(c)));
  cmd
    .command('drift')
    .description('what the next sweep would change, and what it leaves alone (writes nothing)')
    .option('--exit-code', 'exit 1 when something would be repaired, a circuit tree the database does not know is found, or a circuit cannot be rendered (keys outside circuitry\'s names never count)')
    .action(async (o: { exitCode?: boolean }, c: Command) => void (code = await drift(jsonOf(c), o)));
  cmd
    .command('locks')
    .description('held and queued circuit locks, with their holder, age and lease')
    .option('--circuit <id>', 'only this circuit', uuid)
    .action(async (o: { circuit?: string }, c: Command) => locks(jsonOf(c), o));
  cmd
    .command('redrive')
    .description('complete unloads that did not happen: those pending past UNLOAD_GRACE_SECONDS (or all with --all), and the messages of the unload dead-letter queue')
    .option('--all', 'complete every pending unload now, not only those past the grace period')
    .option('--dlq-url <url>', 'the unload dead-letter queue (default: UNLOAD_DLQ_URL)')
    .option('--max-messages <n>', 'read at most this many dead-letter messages (default 1000)', positive)
    .action(async (o: { all?: boolean; dlqUrl?: string; maxMessages?: number }, c: Command) => void (code = await redriveCmd(jsonOf(c), o)));
  cmd
    .command('import')
    .description("take over circuits another coordinator wrote under a worker's Traefik root (Backend.AI's layout): dry run unless --apply")
    .requiredOption('--worker <authority>', 'the worker whose root to read (register it first: PUT /v2/workers/{authority})', authority)
    .option('--apply', 'create the importable circuits (their keys stay byte for byte as they are)')
    .addOption(new Option('--app-mode <mode>', 'appMode of imported circuits without a health check').choices(['interactive', 'inference']))
    .action(async (o: { worker: string; apply?: boolean; appMode?: 'inference' | 'interactive' }, c: Command) => void (code = await importCmd(jsonOf(c), o)));
  cmd
    .command('traefik-config')
    .description("print the static configuration of one worker's Traefik: the etcd provider on the worker's root, an entry point per frontend port, the wildcard entry point, ping (needs no database)")
    .requiredOption('--worker <authority>', 'the worker this Traefik serves', authority)
    .requiredOption('--ports <from-to>', 'the frontend ports circuits on this worker may use (one entry point each)', portRange)
    .option('--domain-port <port>', 'the port of wildcard-subdomain circuits (entry point domainproxy)', port, 443)
    .option('--no-domain', 'no wildcard entry point (the worker serves port frontends only)')
    .option('--ping-port <port>', 'the port of Traefik\'s ping endpoint (GET /ping), for the load balancer in front', port, 8082)
    .option('--etcd-endpoints <urls>', 'comma-separated http(s)://host:port (default: ETCD_ENDPOINTS)')
    .option('--traefik-root <key>', 'default: TRAEFIK_ROOT, else traefik')
    .option('--etcd-username <name>', "Traefik's own etcd user (read-only on its root); give the password as TRAEFIK_PROVIDERS_ETCD_PASSWORD to Traefik")
    .option('--etcd-ca <file>', 'CA of the etcd server certificates, as Traefik sees it')
    .option('--etcd-cert <file>', "Traefik's etcd client certificate")
    .option('--etcd-key <file>', "Traefik's etcd client key")
    .option('-o, --output <file>', 'write the YAML there instead of stdout')
    .action(async (o: TraefikConfigOptions, c: Command) => traefikConfig(jsonOf(c), o));
  cmd.hook('postAction', () => {
    process.exitCode = code;
  });
  return cmd;
}

export async function main(argv: readonly string[]): Promise<number> {
  try {
    await program().parseAsync([...argv], { from: 'user' });
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode === 0 ? 0 : 2; // --help, --version, usage errors (already printed)
    if (err instanceof ConfigError) {
      process.stderr.write(`circuitry: ${err.message}\n`);
      return 2;
    }
    const c = classify(err);
    process.stderr.write(`circuitry: ${err instanceof CircuitryError ? err.message : `unexpected error: ${(err as Error)?.stack ?? String(err)}`}${c.retryable ? ' (retry later)' : ''}\n`);
    return 1;
  }
}
