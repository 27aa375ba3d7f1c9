// The only code that writes a circuit's keys (DESIGN I3, I4). Every transaction is guarded by
//   - our lock key's create revision (we still own the lock at apply time, not just before), and
//   - the circuit meta key's mod revision (nothing changed the circuit since we read it),
// and the last one writes the meta (generation, tombstone) and can release the lock in the same
// transaction. A failed guard means a write was refused: nothing of that step was applied.
import type { Etcd3, IRequestOp } from 'etcd3';
import { cmp, op } from './keys.js';
import { deadline } from './client.js';
import type { Lock } from './mutex.js';
import { stepOps, type Step } from '../traefik/plan.js';

/** etcd's default --max-txn-ops. */
export const MAX_TXN_OPS = 128;
/** Room kept in every transaction for the meta put and the lock release. */
export const RESERVED_OPS = 2;

export interface CircuitMeta {
  generation: number;
  deleted: boolean;
  worker: string | null;
  /** `<lease hex>@<lock create revision>` of the writer: tells a retried apply it already won. */
  writer: string;
  at: string;
}

export interface SeenMeta {
  /** '0' when the meta key does not exist. */
  modRevision: string;
  value: CircuitMeta | null;
}

export type FenceReason = 'lock-lost' | 'circuit-changed';

/** A guard failed: the write was refused and nothing of the refused step was applied. */
export class FencedWriteError extends Error {
  override name = 'FencedWriteError';
  constructor(
    readonly reason: FenceReason,
    readonly stepsApplied: number,
  ) {
    super(
      reason === 'lock-lost'
        ? 'write refused: this writer no longer owns the circuit lock'
        : "write refused: the circuit's meta changed since it was read",
    );
  }
}

/** A writer tried to re-create keys of a circuit whose tombstone it has seen. */
export class ResurrectionError extends Error {
  override name = 'ResurrectionError';
}

export const writerId = (lock: Lock): string => `${lock.session.leaseHex}@${lock.createRevision}`;

export function encodeMeta(m: CircuitMeta): string {
  return JSON.stringify(m);
}

export function decodeMeta(s: string): CircuitMeta | null {
  try {
    const v = JSON.parse(s) as Partial<CircuitMeta>;
    if (typeof v.generation !== 'number' || typeof v.deleted !== 'boolean') return null;
    return { generation: v.generation, deleted: v.deleted, worker: v.worker ?? null, writer: v.writer ?? '', at: v.at ?? '' };
  } catch {
    return null;
  }
}

export interface ApplyInput {
  lock: Lock;
  metaKey: string;
  seen: SeenMeta;
  steps: Step[];
  meta: Omit<CircuitMeta, 'writer' | 'at'>;
  /** Delete the lock key in the final transaction (saves the release RPC). */
  release: boolean;
  rpcTimeoutMs: number;
}

export interface ApplyResult {
  revision: string;
  txns: number;
}

export async function applyFenced(etcd: Etcd3, input: ApplyInput): Promise<ApplyResult> {
  const { lock, metaKey, seen, steps, meta } = input;
  const putsAny = steps.some((s) => s.puts.length > 0);
  if (seen.value?.deleted === true && putsAny) {
    throw new ResurrectionError(`refusing to write keys for ${metaKey}: its tombstone is in place`);
  }
  for (const s of steps) {
    if (stepOps(s) + RESERVED_OPS > MAX_TXN_OPS) throw new RangeError(`a step has ${stepOps(s)} operations`);
  }
  lock.session.assertAlive();
  const guards = [cmp.createRevision(lock.key, lock.createRevision), cmp.modRevision(metaKey, seen.modRevision)];
  const finalMeta: CircuitMeta = { ...meta, writer: writerId(lock), at: new Date().toISOString() };
  let revision = '0';
  const all = steps.length > 0 ? steps : [{ puts: [], deletes: [], deletePrefixes: [] }];
  for (let i = 0; i < all.length; i++) {
    const s = all[i]!;
    const last = i === all.length - 1;
    const ops: IRequestOp[] = [
      ...s.deletePrefixes.map(op.delPrefix),
      ...s.deletes.map(op.del),
      ...s.puts.map(([k, v]) => op.put(k, v)),
    ];
    if (last) {
      ops.push(op.put(metaKey, encodeMeta(finalMeta)));
      if (input.release) ops.push(op.del(lock.key));
    }
    let res;
    try {
      res = await etcd.kv.txn(
        { compare: guards, success: ops, failure: [op.get(lock.key), op.get(metaKey)] },
        deadline(input.rpcTimeoutMs),
      );
    } catch (err) {
      throw Object.assign(err as Error, { stepsApplied: i });
    }
    if (!res.succeeded) {
      const lockKv = res.responses[0]?.response_range.kvs[0];
      const metaKv = res.responses[1]?.response_range.kvs[0];
      // A transport-level retry of our own final transaction may find it already applied.
      if (last && metaKv !== undefined && decodeMeta(metaKv.value.toString())?.writer === finalMeta.writer) {
        if (input.release) lock.released = true;
        return { revision: metaKv.mod_revision, txns: i + 1 };
      }
      const lockOk = lockKv !== undefined && lockKv.create_revision === lock.createRevision;
      throw new FencedWriteError(lockOk ? 'circuit-changed' : 'lock-lost', i);
    }
    revision = res.header.revision;
  }
  if (input.release) lock.released = true;
  return { revision, txns: all.length };
}

