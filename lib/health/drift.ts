// Drift repair and orphan cleanup (DESIGN I2, §3 "The same sweep repairs drift").
//
//   1. etcd first: one range read of the meta prefix and one of `<traefikRoot>/`, at ONE revision
//      (paged when large, so memory stays flat: keys are folded into per-circuit digests as they
//      stream in, never kept). Reading etcd before the database matters: every key in etcd was
//      written after its circuit's row committed, so the database read that follows sees every
//      circuit that owns a key we saw, and a circuit being created is never taken for an orphan.
//   2. the database: all live circuits with their routes, in id-ordered pages, each rendered
//      and compared with etcd (meta generation, tombstone flag, digest of the keys).
//   3. everything that differs goes through a fenced path:
//        live circuit with a wrong generation, a live meta of a deleted circuit, a missing or
//        altered key, an extra key  -> propagate (lock, fresh read, diff, fenced apply)
//        keys of a deleted circuit under its worker                  -> propagate (deletes, tombstone)
//        keys named after an unknown circuit, or under a foreign worker -> removeOrphanKeys (lock)
//        keys under a worker root that name no circuit               -> removeOrphanKeys (mod_revision)
//      Keys under `<traefikRoot>/` but outside any `worker_<authority>` root are no worker's
//      configuration and are left alone (counted).
import type { Etcd3, IKeyValue } from 'etcd3';
import pLimit from 'p-limit';
import { metaCircuitsPrefix } from '../circuits/layout.js';
import { propagate } from '../circuits/propagate.js';
import { generationsOf, type Queryable } from '../db/circuits.js';
import { readLiveCircuitsPage } from '../db/health.js';
import { decodeMeta, type CircuitMeta } from '../etcd/fenced-apply.js';
import { enc, kvKey, kvValue, prefixEnd } from '../etcd/keys.js';
import { deadline } from '../etcd/client.js';
import { render } from '../traefik/render.js';
import { circuitIdOfKey, isCircuitId, workerRoot } from '../traefik/names.js';
import type { Invocation } from '../runtime.js';
import { KeySetDigest } from './digest.js';
import { removeOrphanKeys, type OrphanTarget } from './orphans.js';
import type { SweepLog } from './log.js';

export interface DriftOptions {
  /** Database statements go through this (counted by the caller). */
  db: Queryable;
  propagateConcurrency: number;
  /** Live circuits read per database round trip. */
  circuitsPageSize: number;
  /** Keys read per etcd range request. */
  keysPageSize: number;
  log: SweepLog;
  /**
   * Circuits another part of the sweep still owns (claimed for probing and not finished): a drift
   * found in one of them is returned in `deferred` instead of being repaired now, so that the
   * caller repairs it only if its own propagate did not already converge the circuit.
   */
  owned?: (circuitId: string) => boolean;
}

export interface DriftStats {
  circuitsChecked: number;
  driftDetected: number;
  /** Circuits whose keys or meta a propagate actually rewrote. */
  driftRepaired: number;
  /** Circuits whose database state could not be applied to etcd (next sweep retries). */
  notApplied: number;
  orphanCircuits: number;
  /** Keys deleted by orphan cleanup (circuit-named and foreign). */
  orphansRemoved: number;
  keysOutsideWorkerRoots: number;
  unknownMeta: number;
  renderErrors: number;
  etcdTxns: number;
  etcdRpcs: number;
  lockAcquisitions: number;
  errors: string[];
  /** Drifted circuits left to the caller (see DriftOptions.owned): id -> worker. */
  deferred: Map<string, string>;
}

const MAX_ERRORS = 100;
const pushError = (stats: Pick<DriftStats, 'errors'>, message: string): void => {
  if (stats.errors.length < MAX_ERRORS) stats.errors.push(message);
};

const AUTHORITY_RE = /^[a-z0-9-]{1,63}$/;

/** Streams every kv under prefix in pages, all at one revision; returns that revision. */
async function scanPrefix(
  etcd: Etcd3,
  prefix: string,
  pageSize: number,
  timeoutMs: number,
  revision: string | undefined,
  onKv: (kv: IKeyValue) => void,
): Promise<{ revision: string; rpcs: number }> {
  const end = prefixEnd(enc(prefix));
  let from = enc(prefix);
  let rev = revision;
  let rpcs = 0;
  for (;;) {
    const r = await etcd.kv.range(
      { key: from, range_end: end, limit: pageSize, ...(rev !== undefined ? { revision: rev } : {}) },
      deadline(timeoutMs),
    );
    rpcs++;
    rev ??= r.header.revision;
    for (const kv of r.kvs) onKv(kv);
    const last = r.kvs[r.kvs.length - 1];
    if (!r.more || last === undefined) break;
    from = Buffer.concat([last.key, Buffer.from([0])]);
  }
  return { revision: rev!, rpcs };
}

interface Found {
  authority: string;
  circuitId: string;
  digest: KeySetDigest;
}

export async function repairDrift(inv: Invocation, opts: DriftOptions): Promise<DriftStats> {
  const { etcd, config } = inv.rt;
  const stats: DriftStats = {
    circuitsChecked: 0,
    driftDetected: 0,
    driftRepaired: 0,
    notApplied: 0,
    orphanCircuits: 0,
    orphansRemoved: 0,
    keysOutsideWorkerRoots: 0,
    unknownMeta: 0,
    renderErrors: 0,
    etcdTxns: 0,
    etcdRpcs: 0,
    lockAcquisitions: 0,
    errors: [],
    deferred: new Map(),
  };
  const timeoutMs = config.etcd.timeoutMs;

  // ---- 1. etcd, at one revision -------------------------------------------------------------
  const metaPrefix = metaCircuitsPrefix(config.metaPrefix);
  const metas = new Map<string, CircuitMeta | null>();
  const m = await scanPrefix(etcd, metaPrefix, opts.keysPageSize, timeoutMs, undefined, (kv) => {
    const id = kvKey(kv).slice(metaPrefix.length);
    if (isCircuitId(id)) metas.set(id, decodeMeta(kvValue(kv)));
  });
  stats.etcdRpcs += m.rpcs;

  const rootPrefix = `${config.traefikRoot}/`;
  const found = new Map<string, Found>(); // `${authority}/${circuitId}`
  const foreign: Array<{ key: string; modRevision: string }> = [];
  const t = await scanPrefix(etcd, rootPrefix, opts.keysPageSize, timeoutMs, m.revision, (kv) => {
    const key = kvKey(kv);
    const rest = key.slice(rootPrefix.length);
    const slash = rest.indexOf('/');
    const seg = slash < 0 ? rest : rest.slice(0, slash);
    const authority = seg.startsWith('worker_') ? seg.slice('worker_'.length) : '';
    if (slash < 0 || !AUTHORITY_RE.test(authority)) {
      stats.keysOutsideWorkerRoots++;
      return;
    }
    const circuitId = circuitIdOfKey(workerRoot(config.traefikRoot, authority), key);
    if (circuitId === null) {
      foreign.push({ key, modRevision: kv.mod_revision });
      return;
    }
    const id = `${authority}/${circuitId}`;
    let f = found.get(id);
    if (f === undefined) {
      f = { authority, circuitId, digest: new KeySetDigest() };
      found.set(id, f);
    }
    f.digest.add(key, kvValue(kv));
  });
  stats.etcdRpcs += t.rpcs;

  // ---- 2. the database, page by page --------------------------------------------------------
  const toPropagate = new Map<string, string>(); // circuit id -> worker
  const renderOpts = { traefikRoot: config.traefikRoot, extraMiddlewares: config.traefikExtraMiddlewares };
  let after: string | null = null;
  for (;;) {
    const page = await readLiveCircuitsPage(opts.db, after, opts.circuitsPageSize);
    for (const { circuit, worker } of page) {
      stats.circuitsChecked++;
      const id = circuit.id;
      const f = found.get(`${circuit.worker}/${id}`);
      found.delete(`${circuit.worker}/${id}`);
      const meta = metas.get(id);
      metas.delete(id);
      let desired: KeySetDigest;
      try {
        desired = KeySetDigest.of(render(circuit, worker, renderOpts));
      } catch (err) {
        stats.renderErrors++;
        opts.log.error('drift: cannot render circuit', { circuitId: id, error: (err as Error).message });
        continue;
      }
      const keysMatch = f === undefined ? desired.count === 0 : f.digest.equals(desired);
      const metaMatches = meta != null && meta.generation === circuit.generation && !meta.deleted;
      if (!keysMatch || !metaMatches) {
        toPropagate.set(id, circuit.worker);
        opts.log.info('drift: circuit differs from the database', {
          circuitId: id,
          reason: !metaMatches ? (meta == null ? 'no meta' : `meta generation ${meta.generation}${meta.deleted ? ' (tombstone)' : ''}`) : 'keys differ',
          generation: circuit.generation,
        });
      }
    }
    if (page.length < opts.circuitsPageSize) break;
    after = page[page.length - 1]!.circuit.id;
  }

  // ---- 3. what etcd has and no live circuit renders -----------------------------------------
  const liveMetaLeft = [...metas].filter(([, v]) => v === null || !v.deleted).map(([id]) => id);
  const leftIds = [...new Set([...[...found.values()].map((f) => f.circuitId), ...liveMetaLeft])];
  const known = leftIds.length > 0 ? await generationsOf(opts.db, leftIds) : new Map<string, { worker: string; deleted: boolean }>();
  const orphans: OrphanTarget[] = [];
  for (const f of found.values()) {
    const k = known.get(f.circuitId);
    if (k !== undefined && k.worker === f.authority) {
      toPropagate.set(f.circuitId, k.worker);
      continue;
    }
    const root = workerRoot(config.traefikRoot, f.authority);
    orphans.push({
      kind: 'circuit',
      circuitId: f.circuitId,
      root,
      // An unknown id is re-checked under the lock; a known circuit's worker never changes.
      ...(k === undefined
        ? { stillOrphan: async () => (await generationsOf(opts.db, [f.circuitId])).get(f.circuitId)?.worker !== f.authority }
        : {}),
    });
  }
  for (const id of liveMetaLeft) {
    const k = known.get(id);
    if (k !== undefined) toPropagate.set(id, k.worker);
    else stats.unknownMeta++;
  }
  for (const fk of foreign) orphans.push({ kind: 'foreign', ...fk });
  stats.driftDetected = toPropagate.size;
  stats.orphanCircuits = orphans.filter((o) => o.kind === 'circuit').length;
  for (const [id, worker] of toPropagate) {
    if (opts.owned?.(id) === true) {
      stats.deferred.set(id, worker);
      toPropagate.delete(id);
    }
  }

  // ---- 4. repair, all through fenced paths --------------------------------------------------
  const limit = pLimit(opts.propagateConcurrency);
  await Promise.all([
    ...[...toPropagate].map(([id, worker]) => limit(() => repairCircuit(inv, id, worker, stats, opts.log))),
    ...orphans.map((o) =>
      limit(async () => {
        try {
          const r = await removeOrphanKeys(inv, o);
          stats.etcdRpcs += r.etcdRpcs;
          stats.etcdTxns += r.txns;
          if (o.kind === 'circuit') stats.lockAcquisitions++;
          stats.orphansRemoved += r.removed;
          opts.log.info('orphan keys', { ...(o.kind === 'circuit' ? { circuitId: o.circuitId, root: o.root } : { key: o.key }), removed: r.removed, skipped: r.skipped });
        } catch (err) {
          stats.etcdRpcs += (err as { etcdRpcs?: number }).etcdRpcs ?? 0;
          const what = o.kind === 'circuit' ? `${o.root} ${o.circuitId}` : o.key;
          pushError(stats, `orphan cleanup ${what}: ${(err as Error).message}`);
          opts.log.error('orphan cleanup failed', { target: what, error: (err as Error).message });
        }
      }),
    ),
  ]);
  return stats;
}

/** Converges one circuit through propagate (lock, fresh read, fenced apply), counting into stats. */
export async function repairCircuit(
  inv: Invocation,
  id: string,
  worker: string,
  stats: Pick<DriftStats, 'etcdRpcs' | 'etcdTxns' | 'lockAcquisitions' | 'driftRepaired' | 'notApplied' | 'errors'>,
  log: SweepLog,
): Promise<void> {
  try {
    const r = await propagate(inv, id, { workerHint: worker });
    stats.etcdRpcs += r.etcdRpcs;
    stats.etcdTxns += r.txns;
    stats.lockAcquisitions++;
    if (r.applied && !r.unchanged) stats.driftRepaired++;
    if (!r.applied && r.found) {
      stats.notApplied++;
      log.warn('drift: not applied', { circuitId: id, reason: r.notAppliedReason });
    }
  } catch (err) {
    pushError(stats, `propagate ${id}: ${(err as Error).message}`);
    log.error('drift: propagate failed', { circuitId: id, error: (err as Error).message });
  }
}
