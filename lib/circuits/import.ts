// `circuitry import`: take over the circuits another coordinator (or an earlier circuitry) wrote
// under a worker's root that the database does not know. Each tree is read back into the create
// request that renders it byte for byte (lib/traefik/parse.ts); a tree that does not map is
// skipped with its reason, the rest are created in the database and published — which writes
// only their meta: their keys are already exactly what circuitry renders.
import { circuitStates, createCircuit, readWorker } from '../db/index.js';
import { scanPrefix } from '../etcd/index.js';
import { circuitIdOfKey, parseCircuitTree, workerRoot } from '../traefik/index.js';
import { ConflictError, NotFoundError } from '../errors.js';
import type { CreateCircuitInput } from '../model.js';
import type { Invocation, Runtime } from '../runtime.js';
import { propagate } from './propagate.js';
import { creationDigest } from './same.js';

export interface ImportCandidate {
  circuitId: string;
  keys: number;
  status: 'importable' | 'skipped' | 'imported' | 'failed';
  reason?: string;
  input?: CreateCircuitInput;
  /** After --apply: whether etcd holds its meta now. */
  applied?: boolean;
}

export interface ImportPlan {
  worker: string;
  root: string;
  candidates: ImportCandidate[];
  /** Keys under the root that name no circuit (an operator's own routers): left alone. */
  foreignKeys: number;
  /** Circuits under the root that the database already knows. */
  known: number;
}

export async function planImport(rt: Runtime, authority: string, opts: { appMode?: 'inference' | 'interactive'; onProgress?: (keys: number) => void } = {}): Promise<ImportPlan> {
  const worker = await readWorker(rt.db, authority);
  if (worker === null) throw new NotFoundError(`worker ${authority} is not registered: register it first (PUT /v2/workers/${authority}) with the hostname and wildcard domain its routers use`);
  const root = workerRoot(rt.config.traefikRoot, authority);
  const trees = new Map<string, Map<string, string>>();
  let foreignKeys = 0;
  let seen = 0;
  await scanPrefix(rt.etcd, `${root}/`, {
    pageSize: 5000,
    timeoutMs: rt.config.etcd.timeoutMs,
    onRestart: () => {
      trees.clear();
      foreignKeys = 0;
    },
    onKv: (kv) => {
      const key = kv.key.toString('utf8');
      const id = circuitIdOfKey(root, key);
      if (++seen % 5000 === 0) opts.onProgress?.(seen);
      if (id === null) {
        foreignKeys++;
        return;
      }
      const t = trees.get(id) ?? new Map<string, string>();
      t.set(key, kv.value.toString('utf8'));
      trees.set(id, t);
    },
  });
  const states = await circuitStates(rt.db, [...trees.keys()]);
  const candidates: ImportCandidate[] = [];
  for (const [id, keys] of trees) {
    const state = states.get(id);
    if (state !== undefined) continue; // circuitry's own (or a deleted one's leftovers: the sweep's business)
    const parsed = parseCircuitTree(root, id, keys, worker, {
      traefikRoot: rt.config.traefikRoot,
      extraMiddlewares: rt.config.traefikExtraMiddlewares,
      ...(opts.appMode ? { appMode: opts.appMode } : {}),
    });
    candidates.push('reason' in parsed ? { circuitId: id, keys: keys.size, status: 'skipped', reason: parsed.reason } : { circuitId: id, keys: keys.size, status: 'importable', input: parsed.input });
  }
  candidates.sort((a, b) => (a.circuitId < b.circuitId ? -1 : 1));
  return { worker: authority, root, candidates, foreignKeys, known: trees.size - candidates.length };
}

/** Creates the importable circuits and publishes their meta; a conflict (a taken frontend) skips one. */
export async function applyImport(inv: Invocation, plan: ImportPlan, onEach: (c: ImportCandidate) => void = () => {}): Promise<ImportPlan> {
  for (const c of plan.candidates) {
    if (c.status !== 'importable' || c.input === undefined) continue;
    try {
      await createCircuit(inv.rt.db, c.circuitId, c.input, creationDigest(c.input));
      const r = await propagate(inv, c.circuitId, { workerHint: plan.worker });
      c.status = 'imported';
      c.applied = r.applied;
      if (!r.applied) c.reason = `created; its meta is not written yet (${r.notAppliedReason ?? 'unknown'}); the next sweep writes it`;
    } catch (err) {
      c.status = err instanceof ConflictError ? 'skipped' : 'failed';
      c.reason = (err as Error).message;
    }
    onEach(c);
  }
  return plan;
}
