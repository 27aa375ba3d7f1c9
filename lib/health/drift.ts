// Drift: what etcd holds vs render(database) (DESIGN I2, I7). `computeDrift` only reads (it is
// what `circuitry drift` prints); `repairDrift` converges what circuitry owns, through fenced paths:
//   a live circuit whose keys or meta differ           -> propagate (lock, fresh read, fenced apply)
//   a deleted circuit with keys, a live meta, or a frontend not yet released -> propagate
//   keys of a known circuit under another worker's root -> deleted under the circuit's lock
//   keys or a meta of a circuit purged from the database (its id is retired; e.g. an old etcd
//   snapshot restored)                                 -> deleted under its lock, whatever
//                                                         ORPHAN_POLICY says: our own deleted circuit
//   keys named after a circuit the database does not know -> reported; deleted under its lock
//                                                         only with ORPHAN_POLICY=delete
//   keys under a worker root outside circuitry's naming (an operator's static router, say)
//                                                      -> reported, never touched
//   tombstones older than TOMBSTONE_RETENTION_SECONDS of released deletions -> retired (guarded delete)
// Keys under `<traefikRoot>/` but outside any `worker_<authority>` root are no worker's
// configuration: counted, never touched.
import pLimit from 'p-limit';
import { circuitOfMetaKey, decodeMeta, deleteIfUnchanged, metaCircuitsPrefix, metaKey, scanPrefix, type CircuitMeta } from '../etcd/index.js';
import { circuitStates, deletedAndReleasedBefore, pageLiveCircuits, retiredCircuits, unreleasedDeletions, type Queryable } from '../db/index.js';
import { render } from '../traefik/render.js';
import { circuitIdOfKey, workerRoot } from '../traefik/names.js';
import type { Invocation } from '../runtime.js';
import { propagate } from '../circuits/propagate.js';
import { KeySetDigest } from './digest.js';
import { removeOrphanCircuit, removeRetiredCircuit, type OrphanCircuit, type RetiredCircuit } from './orphans.js';

export type { OrphanCircuit, RetiredCircuit };
import type { SweepLog } from './log.js';
import { addError } from './stats.js';

const AUTHORITY_RE = /^[a-z0-9-]{1,63}$/;
const SAMPLE = 20;

export interface DriftScanOptions {
  /** Database statements go through this (counted by the caller). */
  db: Queryable;
  circuitsPageSize: number;
  keysPageSize: number;
  log: SweepLog;
  /** Called between etcd pages (tests force a compaction here). */
  betweenPages?: () => Promise<void>;
}

export interface DriftPlan {
  /** The etcd revision the scan describes. */
  revision: string;
  circuitsChecked: number;
  /** Circuits the fenced write path must converge: id -> worker and why. */
  repairs: Map<string, { worker: string; reason: string }>;
  orphans: OrphanCircuit[];
  /** Keys or metas of circuits purged from the database (ids retired): removed whatever ORPHAN_POLICY says. */
  retired: RetiredCircuit[];
  /** Keys under worker roots outside circuitry's naming: count and the first few. */
  foreignKeys: { count: number; sample: string[] };
  keysOutsideWorkerRoots: number;
  /** Metas of circuits the database does not know. */
  unknownMetas: Array<{ circuitId: string; deleted: boolean; modRevision: string }>;
  tombstonesToRetire: Array<{ circuitId: string; modRevision: string }>;
  renderErrors: Array<{ circuitId: string; error: string }>;
  etcdRpcs: number;
  /** Scans started over because compaction removed their revision. */
  scanRestarts: number;
}

export async function computeDrift(inv: Invocation, o: DriftScanOptions): Promise<DriftPlan> {
  const { etcd, config } = inv.rt;
  const timeoutMs = config.etcd.timeoutMs;
  const plan: DriftPlan = {
    revision: '0',
    circuitsChecked: 0,
    repairs: new Map(),
    orphans: [],
    retired: [],
    foreignKeys: { count: 0, sample: [] },
    keysOutsideWorkerRoots: 0,
    unknownMetas: [],
    tombstonesToRetire: [],
    renderErrors: [],
    etcdRpcs: 0,
    scanRestarts: 0,
  };

  // ---- 1. etcd, both prefixes at one revision --------------------------------------------------
  const metas = new Map<string, { meta: CircuitMeta | null; modRevision: string }>();
  const found = new Map<string, { authority: string; circuitId: string; digest: KeySetDigest }>(); // `${authority}/${id}`
  const foreign = { count: 0, sample: [] as string[] };
  let outside = 0;
  const rootPrefix = `${config.traefikRoot}/`;
  for (let attempt = 0; ; attempt++) {
    metas.clear();
    found.clear();
    foreign.count = 0;
    foreign.sample = [];
    outside = 0;
    const m = await scanPrefix(etcd, metaCircuitsPrefix(config.metaPrefix), {
      pageSize: o.keysPageSize,
      timeoutMs,
      ...(o.betweenPages ? { betweenPages: o.betweenPages } : {}),
      onRestart: () => metas.clear(),
      onKv: (kv) => {
        const id = circuitOfMetaKey(config.metaPrefix, kv.key.toString('utf8'));
        if (id !== null) metas.set(id, { meta: decodeMeta(kv.value.toString('utf8')), modRevision: kv.mod_revision });
      },
    });
    plan.etcdRpcs += m.rpcs;
    plan.scanRestarts += m.restarts;
    try {
      const t = await scanPrefix(etcd, rootPrefix, {
        pageSize: o.keysPageSize,
        timeoutMs,
        revision: m.revision,
        maxRestarts: 0,
        ...(o.betweenPages ? { betweenPages: o.betweenPages } : {}),
        onKv: (kv) => {
          const key = kv.key.toString('utf8');
          const rest = key.slice(rootPrefix.length);
          const slash = rest.indexOf('/');
          const seg = slash < 0 ? rest : rest.slice(0, slash);
          const authority = seg.startsWith('worker_') ? seg.slice('worker_'.length) : '';
          if (slash < 0 || !AUTHORITY_RE.test(authority)) {
            outside++;
            return;
          }
          const circuitId = circuitIdOfKey(workerRoot(config.traefikRoot, authority), key);
          if (circuitId === null) {
            foreign.count++;
            if (foreign.sample.length < SAMPLE) foreign.sample.push(key);
            return;
          }
          const k = `${authority}/${circuitId}`;
          let f = found.get(k);
          if (f === undefined) found.set(k, (f = { authority, circuitId, digest: new KeySetDigest() }));
          f.digest.add(key, kv.value.toString('utf8'));
        },
      });
      plan.etcdRpcs += t.rpcs;
      plan.revision = m.revision;
      break;
    } catch (err) {
      // The meta scan's revision was compacted before the key scan finished: both start over at
      // a newer revision (they must describe one state).
      if (attempt >= 3 || !/compacted/i.test((err as Error).message)) throw err;
      plan.scanRestarts++;
    }
  }
  plan.foreignKeys = foreign;
  plan.keysOutsideWorkerRoots = outside;

  // ---- 2. live circuits, page by page ----------------------------------------------------------
  const renderOpts = { traefikRoot: config.traefikRoot, extraMiddlewares: config.traefikExtraMiddlewares };
  for (let after: string | null = null; ; ) {
    const page = await pageLiveCircuits(o.db, after, o.circuitsPageSize);
    for (const { circuit, worker } of page) {
      plan.circuitsChecked++;
      const id = circuit.id;
      const k = `${circuit.worker}/${id}`;
      const f = found.get(k);
      found.delete(k);
      const m = metas.get(id);
      metas.delete(id);
      let desired: KeySetDigest;
      try {
        desired = KeySetDigest.of(render(circuit, worker, renderOpts));
      } catch (err) {
        plan.renderErrors.push({ circuitId: id, error: (err as Error).message });
        continue;
      }
      const keysMatch = f === undefined ? desired.count === 0 : f.digest.equals(desired);
      const meta = m?.meta ?? null;
      const metaMatches = meta !== null && meta.generation === circuit.generation && !meta.deleted;
      if (!keysMatch || !metaMatches) {
        const reason = !metaMatches ? (meta === null ? 'no meta' : `meta generation ${meta.generation}${meta.deleted ? ' (tombstone)' : ''}, database ${circuit.generation}`) : 'keys differ';
        plan.repairs.set(id, { worker: circuit.worker, reason });
      }
    }
    if (page.length < o.circuitsPageSize) break;
    after = page[page.length - 1]!.circuit.id;
  }

  // ---- 3. deleted circuits whose frontend is not released yet -----------------------------------
  for (let after: string | null = null; ; ) {
    const page = await unreleasedDeletions(o.db, after, o.circuitsPageSize);
    for (const d of page) plan.repairs.set(d.id, { worker: d.worker, reason: 'deleted; keys not yet confirmed gone' });
    if (page.length < o.circuitsPageSize) break;
    after = page[page.length - 1]!.id;
  }

  // ---- 4. what etcd has and no live circuit renders -------------------------------------------
  const leftIds = [...new Set([...[...found.values()].map((f) => f.circuitId), ...metas.keys()])];
  const known = await circuitStates(o.db, leftIds);
  const retiredIds = await retiredCircuits(o.db, leftIds.filter((id) => !known.has(id)));
  const retired = new Map<string, RetiredCircuit>();
  const retiredEntry = (circuitId: string): RetiredCircuit => {
    let r = retired.get(circuitId);
    if (r === undefined) retired.set(circuitId, (r = { circuitId, roots: [], keys: 0, meta: false }));
    return r;
  };
  for (const f of found.values()) {
    if (retiredIds.has(f.circuitId)) {
      const r = retiredEntry(f.circuitId);
      r.roots.push(workerRoot(config.traefikRoot, f.authority));
      r.keys += f.digest.count;
      continue;
    }
    const k = known.get(f.circuitId);
    if (k !== undefined && k.worker === f.authority) {
      if (!plan.repairs.has(f.circuitId)) plan.repairs.set(f.circuitId, { worker: k.worker, reason: 'deleted circuit still has keys' });
      continue;
    }
    plan.orphans.push({ circuitId: f.circuitId, root: workerRoot(config.traefikRoot, f.authority), keys: f.digest.count, known: k !== undefined });
  }
  const tombstones: Array<{ circuitId: string; modRevision: string }> = [];
  for (const [id, m] of metas) {
    const k = known.get(id);
    if (retiredIds.has(id)) {
      retiredEntry(id).meta = true;
    } else if (k === undefined) {
      plan.unknownMetas.push({ circuitId: id, deleted: m.meta?.deleted === true, modRevision: m.modRevision });
    } else if (m.meta === null || !m.meta.deleted || m.meta.generation !== k.generation) {
      // A live (or unreadable, or outdated) meta of a deleted circuit: converge it.
      if (!plan.repairs.has(id)) plan.repairs.set(id, { worker: k.worker, reason: 'deleted circuit without a current tombstone' });
    } else if (!plan.repairs.has(id) && !plan.orphans.some((x) => x.circuitId === id)) {
      tombstones.push({ circuitId: id, modRevision: m.modRevision });
    }
  }
  const expired = await deletedAndReleasedBefore(o.db, tombstones.map((t) => t.circuitId), config.tombstoneRetentionSeconds);
  plan.tombstonesToRetire = tombstones.filter((t) => expired.has(t.circuitId));
  plan.retired = [...retired.values()];
  return plan;
}

export interface DriftRepair {
  driftRepaired: number;
  notApplied: number;
  frontendsReleased: number;
  orphansRemoved: number;
  tombstonesRetired: number;
  etcdTxns: number;
  etcdRpcs: number;
  lockAcquisitions: number;
  errors: string[];
  errorCount: number;
  /** Repairs left to the caller (circuits it still owns): id -> worker. */
  deferred: Map<string, string>;
  /**
   * Every circuit this repair had to converge (repairs, deferred ones included, orphans, purged
   * circuits' keys), whether or not it succeeded: its etcd state is not known to be settled.
   */
  circuits: Set<string>;
}

export interface RepairOptions {
  propagateConcurrency: number;
  log: SweepLog;
  /**
   * Circuits another part of the sweep still owns (claimed for probing): their repair is returned
   * in `deferred`, so the caller repairs them only if its own propagate did not converge them.
   */
  owned?: (circuitId: string) => boolean;
}

export const emptyRepair = (): DriftRepair => ({
  driftRepaired: 0,
  notApplied: 0,
  frontendsReleased: 0,
  orphansRemoved: 0,
  tombstonesRetired: 0,
  etcdTxns: 0,
  etcdRpcs: 0,
  lockAcquisitions: 0,
  errors: [],
  errorCount: 0,
  deferred: new Map(),
  circuits: new Set(),
});

export async function repairDrift(inv: Invocation, plan: DriftPlan, o: RepairOptions): Promise<DriftRepair> {
  const { config, etcd } = inv.rt;
  const out = emptyRepair();
  const limit = pLimit(o.propagateConcurrency);
  const policy = config.orphanPolicy;
  for (const [id, r] of plan.repairs) o.log.info('drift: circuit differs from the database', { circuitId: id, reason: r.reason });
  for (const e of plan.renderErrors) o.log.error('drift: cannot render circuit', { circuitId: e.circuitId, error: e.error });
  if (plan.foreignKeys.count > 0 || plan.keysOutsideWorkerRoots > 0) {
    o.log.info('drift: keys outside circuitry naming left alone', { foreignKeys: plan.foreignKeys.count, sample: plan.foreignKeys.sample.slice(0, 5), keysOutsideWorkerRoots: plan.keysOutsideWorkerRoots });
  }
  const tasks: Array<Promise<void>> = [];
  for (const id of plan.repairs.keys()) out.circuits.add(id);
  for (const x of [...plan.orphans, ...plan.retired]) out.circuits.add(x.circuitId);
  for (const [id, r] of plan.repairs) {
    if (o.owned?.(id) === true) {
      out.deferred.set(id, r.worker);
      continue;
    }
    tasks.push(limit(() => repairCircuit(inv, id, r.worker, out, o.log)));
  }
  for (const orphan of plan.orphans) {
    if (!orphan.known && policy !== 'delete') {
      o.log.warn('orphan keys: named after a circuit the database does not know (ORPHAN_POLICY=report)', { circuitId: orphan.circuitId, root: orphan.root, keys: orphan.keys });
      continue;
    }
    tasks.push(
      limit(async () => {
        try {
          const r = await removeOrphanCircuit(inv, orphan, inv.rt.db);
          out.etcdRpcs += r.etcdRpcs;
          out.etcdTxns += r.txns;
          out.lockAcquisitions++;
          out.orphansRemoved += r.removed;
          o.log.info('orphan keys removed', { circuitId: orphan.circuitId, root: orphan.root, removed: r.removed, skipped: r.skipped });
        } catch (err) {
          addError(out, `orphan cleanup ${orphan.root} ${orphan.circuitId}: ${(err as Error).message}`);
          o.log.error('orphan cleanup failed', { circuitId: orphan.circuitId, root: orphan.root, error: (err as Error).message });
        }
      }),
    );
  }
  for (const r of plan.retired) {
    tasks.push(
      limit(async () => {
        try {
          const x = await removeRetiredCircuit(inv, r);
          out.etcdRpcs += x.etcdRpcs;
          out.etcdTxns += x.txns;
          out.lockAcquisitions++;
          out.orphansRemoved += x.removed;
          if (x.metaRemoved) out.tombstonesRetired++;
          o.log.warn('keys of a purged circuit removed (its id is retired)', { circuitId: r.circuitId, roots: r.roots, removed: x.removed, metaRemoved: x.metaRemoved });
        } catch (err) {
          addError(out, `purged circuit cleanup ${r.circuitId}: ${(err as Error).message}`);
          o.log.error('removing the keys of a purged circuit failed', { circuitId: r.circuitId, error: (err as Error).message });
        }
      }),
    );
  }
  const retire = async (circuitId: string, modRevision: string, why: string) => {
    try {
      out.etcdTxns++;
      out.etcdRpcs++;
      if (await deleteIfUnchanged(etcd, metaKey(config.metaPrefix, circuitId), modRevision, config.etcd.timeoutMs)) {
        out.tombstonesRetired++;
        o.log.info('tombstone retired', { circuitId, why });
      }
    } catch (err) {
      addError(out, `retiring meta of ${circuitId}: ${(err as Error).message}`);
    }
  };
  for (const t of plan.tombstonesToRetire) tasks.push(limit(() => retire(t.circuitId, t.modRevision, 'retention')));
  for (const m of plan.unknownMetas) {
    // Our own namespace: a tombstone of a purged circuit is retired; a live meta of an unknown
    // circuit goes with its keys under ORPHAN_POLICY=delete only.
    if (m.deleted) tasks.push(limit(() => retire(m.circuitId, m.modRevision, 'circuit purged from the database')));
    else if (policy === 'delete') {
      tasks.push(limit(() => retire(m.circuitId, m.modRevision, 'ORPHAN_POLICY=delete: unknown circuit')));
    } else o.log.warn('meta of a circuit the database does not know', { circuitId: m.circuitId });
  }
  await Promise.all(tasks);
  return out;
}

/** Converges one circuit through propagate (lock, fresh read, fenced apply), counting into `into`. */
export async function repairCircuit(inv: Invocation, id: string, worker: string, into: DriftRepair, log: SweepLog): Promise<void> {
  try {
    const r = await propagate(inv, id, { workerHint: worker });
    into.etcdRpcs += r.etcdRpcs;
    into.etcdTxns += r.txns;
    into.lockAcquisitions++;
    if (r.applied && !r.unchanged) into.driftRepaired++;
    if (r.frontendReleased === true) into.frontendsReleased++;
    if (!r.applied && r.found) {
      into.notApplied++;
      log.warn('drift: not applied', { circuitId: id, reason: r.notAppliedReason });
    }
  } catch (err) {
    addError(into, `propagate ${id}: ${(err as Error).message}`);
    log.error('drift: propagate failed', { circuitId: id, error: (err as Error).message });
  }
}
