// `npm run bench:state`: does state stay bounded? Runs N create → delete cycles of circuits through
// the real write path (createAndPublish, requestUnload, unload) on etcd with auto-compaction, with
// the retention settings shortened to seconds, and at every checkpoint runs one full sweep (drift
// check, tombstone retirement, purges) and records: etcd's database size (allocated and in use),
// the keys under the meta prefix and Traefik's root, the tombstones the drift pass loads, and the
// drift pass's time and heap. Flat means: the last checkpoint is no larger than the first (after
// the warm-up) by more than noise. Prints a table and writes bench/state.json.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import v8 from 'node:v8';
import vm from 'node:vm';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { randomUUID } from 'node:crypto';
import pLimit from 'p-limit';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

const USAGE = `usage: npm run bench:state -- [--cycles 100000] [--concurrency 32] [--checkpoints 10] [--out bench/state.json]
  Creates and deletes circuits (one cycle = create + publish + DELETE + unload) on its own etcd
  (periodic auto-compaction, 20 s) and PostgreSQL, with tombstones retired after 10 s; after every
  cycles/checkpoints cycles, one sweep. Reports etcd's database size, the keys circuitry holds and
  the drift pass's time and heap per checkpoint, and whether they stayed flat.
`;

interface Checkpoint {
  cycles: number;
  elapsedS: number;
  cyclesPerSecond: number;
  etcd: { dbSizeMb: number; dbSizeInUseMb: number; revision: string; metaKeys: number; tombstones: number; traefikKeys: number };
  database: { circuitRows: number; deletedRows: number; intents: number };
  sweep: { ms: number; driftChecked: number; tombstonesRetired: number; errors: number; heapBeforeMb: number; heapPeakMb: number; heapAfterGcMb: number };
}

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;
const mb = (b: number) => Math.round((b / 1024 / 1024) * 100) / 100;

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      cycles: { type: 'string', default: '100000' },
      concurrency: { type: 'string', default: '32' },
      checkpoints: { type: 'string', default: '10' },
      out: { type: 'string', default: 'bench/state.json' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) return void process.stdout.write(USAGE);
  const cycles = Number(values.cycles);
  const concurrency = Number(values.concurrency);
  const checkpoints = Number(values.checkpoints);
  if (![cycles, concurrency, checkpoints].every((n) => Number.isInteger(n) && n > 0) || checkpoints > cycles) {
    process.stderr.write(`bench:state: --cycles, --concurrency and --checkpoints must be whole numbers from 1 (checkpoints at most cycles)\n${USAGE}`);
    process.exitCode = 2;
    return;
  }

  const log = (s: string) => process.stderr.write(`bench:state: ${s}\n`);
  const { startServices } = await import('../devstack/services.js');
  const { migrate, registerWorker } = await import('../../lib/db/index.js');
  const { parseConfig } = await import('../../lib/config.js');
  const { createRuntime, closeRuntime, Invocation } = await import('../../lib/runtime.js');
  const { createAndPublish, requestUnload, unload } = await import('../../lib/circuits/index.js');
  const { runSweep, closeProbers } = await import('../../lib/health/index.js');
  const { createCircuitSchema } = await import('../../lib/model.js');
  const { enc, prefixEnd } = await import('../../lib/etcd/index.js');

  log('starting etcd (auto-compaction: periodic, 20 s) and PostgreSQL ...');
  const services = await startServices({ log: () => {}, etcdAutoCompaction: { mode: 'periodic', retention: '20s' } });
  try {
    await migrate(services.env.DATABASE_URL!, services.env.NEON_WS_PROXY);
    const config = parseConfig({
      ...process.env,
      ...services.env,
      TRAEFIK_ROOT: 'traefik-state',
      META_PREFIX: 'circuitry-state',
      ALLOWED_BACKEND_CIDRS: '127.0.0.0/8',
      // Retention in seconds instead of an hour: a stale writer lives at most 5 + 2 s here.
      FUNCTION_TIMEOUT_SECONDS: '5',
      LOCK_TTL_SECONDS: '2',
      TOMBSTONE_RETENTION_SECONDS: '10',
      DELETED_RETENTION_DAYS: '1',
      UNLOAD_GRACE_SECONDS: '3600',
    });
    const rt = createRuntime(config, { poolMax: concurrency + 2 });
    const dropping = { publish: async () => ({ published: 0 }) };
    const worker = 'state-w';
    await registerWorker(rt.db, { authority: worker, hostname: 'state.example.com', wildcardDomain: 'apps.example.com', tls: false });
    const schema = createCircuitSchema(config.maxRoutesPerCircuit);
    const input = (slot: number) =>
      schema.parse({
        worker,
        protocol: 'http',
        appMode: 'inference',
        frontend: { mode: 'port', port: 20_000 + slot },
        routes: [0, 1, 2].map((i) => ({ routeId: randomUUID(), sessionId: randomUUID(), host: `127.0.0.${i + 1}`, port: 30_000 + i })),
      });

    const count = async (prefix: string, filter?: (v: string) => boolean): Promise<number> => {
      if (!filter) return Number((await rt.etcd.kv.range({ key: enc(prefix), range_end: prefixEnd(enc(prefix)), count_only: true })).count);
      const r = await rt.etcd.kv.range({ key: enc(prefix), range_end: prefixEnd(enc(prefix)) });
      return r.kvs.filter((kv) => filter(kv.value.toString())).length;
    };

    const started = performance.now();
    const results: Checkpoint[] = [];
    let done = 0;
    let failed = 0;
    const errors = new Map<string, number>();
    const perCheckpoint = Math.ceil(cycles / checkpoints);
    // One invocation (lease) per slot, renewed every few hundred cycles as Lambda invocations are.
    const limit = pLimit(concurrency);
    const slots = Array.from({ length: concurrency }, (_, s) => ({ s, inv: new Invocation(rt, `state-${s}`), uses: 0 }));
    const free = [...slots];

    const cycle = async (): Promise<void> => {
      const slot = free.pop()!;
      try {
        if (++slot.uses > 500) {
          await slot.inv.close();
          slot.inv = new Invocation(rt, `state-${slot.s}`);
          slot.uses = 1;
        }
        const created = await createAndPublish(slot.inv, input(slot.s));
        if (!created.sync.applied) throw new Error(`create not applied: ${created.sync.notAppliedReason}`);
        await requestUnload(rt, dropping, created.view.circuit.id);
        const u = await unload(slot.inv, created.view.circuit.id);
        if (!u.applied) throw new Error(`unload not applied: ${u.notAppliedReason}`);
        done++;
      } catch (err) {
        failed++;
        const m = (err as Error).message.slice(0, 120);
        errors.set(m, (errors.get(m) ?? 0) + 1);
      } finally {
        free.push(slot);
      }
    };

    for (let k = 1; k <= checkpoints; k++) {
      const target = Math.min(cycles, k * perCheckpoint);
      const batch = target - (done + failed);
      const t0 = performance.now();
      await Promise.all(Array.from({ length: batch }, () => limit(cycle)));
      const batchS = (performance.now() - t0) / 1000;

      // Let this batch's tombstones age past the retention, as they would in production.
      await new Promise((r) => setTimeout(r, 11_000));
      gc();
      const heapBefore = process.memoryUsage().heapUsed;
      let heapPeak = heapBefore;
      const sampler = setInterval(() => (heapPeak = Math.max(heapPeak, process.memoryUsage().heapUsed)), 10);
      const sweepInv = new Invocation(rt, 'state-sweep');
      const s0 = performance.now();
      const sweep = await runSweep(sweepInv, { publish: async () => {} });
      const sweepMs = Math.round(performance.now() - s0);
      clearInterval(sampler);
      await sweepInv.close();
      gc();
      const heapAfter = process.memoryUsage().heapUsed;

      const status = await rt.etcd.maintenance.status();
      const rows = await rt.db.query<{ total: string; deleted: string; intents: string }>(
        'SELECT count(*) AS total, count(*) FILTER (WHERE deleted_at IS NOT NULL) AS deleted, (SELECT count(*) FROM route_intents) AS intents FROM circuits',
      );
      const cp: Checkpoint = {
        cycles: done + failed,
        elapsedS: Math.round((performance.now() - started) / 1000),
        cyclesPerSecond: Math.round(batch / batchS),
        etcd: {
          dbSizeMb: mb(Number(status.dbSize)),
          dbSizeInUseMb: mb(Number(status.dbSizeInUse)),
          revision: status.header.revision,
          metaKeys: await count(`${config.metaPrefix}/`),
          tombstones: await count(`${config.metaPrefix}/circuits/`, (v) => v.includes('"deleted":true')),
          traefikKeys: await count(`${config.traefikRoot}/`),
        },
        database: { circuitRows: Number(rows.rows[0]!.total), deletedRows: Number(rows.rows[0]!.deleted), intents: Number(rows.rows[0]!.intents) },
        sweep: {
          ms: sweepMs,
          driftChecked: sweep.driftChecked,
          tombstonesRetired: sweep.tombstonesRetired,
          errors: sweep.errors.length,
          heapBeforeMb: mb(heapBefore),
          heapPeakMb: mb(heapPeak),
          heapAfterGcMb: mb(heapAfter),
        },
      };
      results.push(cp);
      log(
        `${cp.cycles} cycles (${cp.cyclesPerSecond}/s): etcd ${cp.etcd.dbSizeInUseMb} MB in use of ${cp.etcd.dbSizeMb} MB, ${cp.etcd.metaKeys} meta keys (${cp.etcd.tombstones} tombstones), ${cp.etcd.traefikKeys} Traefik keys; sweep ${cp.sweep.ms} ms, heap peak ${cp.sweep.heapPeakMb} MB, ${cp.sweep.tombstonesRetired} tombstones retired`,
      );
    }
    for (const s of slots) await s.inv.close();
    // What a maintenance defragmentation gives back of the allocated size (README: daily defrag).
    await rt.etcd.maintenance.defragment();
    const defragmented = await rt.etcd.maintenance.status();
    const afterDefrag = { dbSizeMb: mb(Number(defragmented.dbSize)), dbSizeInUseMb: mb(Number(defragmented.dbSizeInUse)) };
    closeProbers();
    await closeRuntime(rt);

    // Flatness: the last checkpoint against the second (the first includes the warm-up).
    const first = results[Math.min(1, results.length - 1)]!;
    const last = results[results.length - 1]!;
    const ratio = (a: number, b: number) => (a === 0 ? (b === 0 ? 1 : Infinity) : Math.round((b / a) * 100) / 100);
    const flat = {
      from: first.cycles,
      to: last.cycles,
      etcdDbSizeInUse: ratio(first.etcd.dbSizeInUseMb, last.etcd.dbSizeInUseMb),
      etcdDbSize: ratio(first.etcd.dbSizeMb, last.etcd.dbSizeMb),
      metaKeys: ratio(first.etcd.metaKeys, last.etcd.metaKeys),
      driftHeapPeak: ratio(first.sweep.heapPeakMb - first.sweep.heapBeforeMb, last.sweep.heapPeakMb - last.sweep.heapBeforeMb),
      heapAfterGc: ratio(first.sweep.heapAfterGcMb, last.sweep.heapAfterGcMb),
    };
    const cpus = os.cpus();
    const report = {
      date: new Date().toISOString(),
      machine: { cpu: cpus[0]?.model ?? 'unknown', cpus: cpus.length, memoryGb: Math.round(os.totalmem() / 1024 ** 3) },
      node: process.version,
      settings: { cycles, concurrency, checkpoints, tombstoneRetentionSeconds: 10, etcdAutoCompaction: 'periodic, 20 s', routesPerCircuit: 3 },
      completed: done,
      failed,
      errors: Object.fromEntries(errors),
      checkpoints: results,
      etcdAfterDefrag: afterDefrag,
      flatLastOverSecond: flat,
    };
    console.log(`\nstate over ${cycles} create/delete cycles — ${report.machine.cpu} x${report.machine.cpus}, node ${report.node}, ${report.date}`);
    console.log('cycles   cycles/s  etcd in use / allocated MB  meta keys (tombstones)  Traefik keys  deleted rows  sweep ms  drift heap before -> peak -> after GC MB');
    for (const c of results) {
      console.log(
        `${String(c.cycles).padStart(6)}  ${String(c.cyclesPerSecond).padStart(8)}  ${`${c.etcd.dbSizeInUseMb} / ${c.etcd.dbSizeMb}`.padStart(26)}  ${`${c.etcd.metaKeys} (${c.etcd.tombstones})`.padStart(22)}  ${String(c.etcd.traefikKeys).padStart(12)}  ${String(c.database.deletedRows).padStart(12)}  ${String(c.sweep.ms).padStart(8)}  ${c.sweep.heapBeforeMb} -> ${c.sweep.heapPeakMb} -> ${c.sweep.heapAfterGcMb}`,
      );
    }
    console.log(`etcd after a defragmentation: ${afterDefrag.dbSizeInUseMb} MB in use of ${afterDefrag.dbSizeMb} MB`);
    console.log(`flat (last / checkpoint 2): ${JSON.stringify(flat)}; failed cycles: ${failed}`);
    const out = path.resolve(ROOT, values.out!);
    fs.mkdirSync(path.dirname(out), { recursive: true });
    fs.writeFileSync(out, JSON.stringify(report, null, 2) + '\n');
    console.log(`written ${path.relative(process.cwd(), out)}`);
  } finally {
    await services.stop();
  }
}

main().then(
  () => process.exit(process.exitCode ?? 0),
  (err: unknown) => {
    process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  },
);
