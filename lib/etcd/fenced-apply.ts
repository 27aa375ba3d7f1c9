// The only code that writes a circuit's keys (DESIGN I3, I4). Every transaction is guarded by
//   - our lock (Lock.txn: our lock key still has our create revision — we own the lock at apply
//     time, not just before), and
//   - the circuit meta key's mod revision (nothing changed the circuit since we read it),
// and the last one writes the meta (generation, tombstone) and releases the lock in the same
// transaction. A failed guard means a write was refused: nothing of that step was applied —
// unless the step is our own, applied by an earlier attempt whose answer was lost (etcd3 retries
// on another member): the others advance our lock key's version, the last writes our writer id,
// and both are recognised.
import { op } from './keys.js';
import { cmp } from './keys.js';
import type { Lock } from './mutex.js';
import { decodeMeta, encodeMeta, type CircuitMeta, type SeenMeta } from './meta.js';
import { FencedWriteError, ResurrectionError } from '../errors.js';
import { stepOps, type Step } from '../traefik/plan.js';

/** etcd's default --max-txn-ops. */
export const MAX_TXN_OPS = 128;
/** Room kept in every transaction for the meta put and the lock release. */
export const RESERVED_OPS = 2;

export const writerId = (lock: Lock): string => `${lock.session.leaseHex}@${lock.createRevision}`;

export interface ApplyInput {
  lock: Lock;
  metaKey: string;
  seen: SeenMeta;
  steps: Step[];
  meta: Omit<CircuitMeta, 'writer' | 'at'>;
  /** Lock keys of the contenders whose changes we applied (meta.served): removed with the release. */
  servedKeys?: readonly string[];
  rpcTimeoutMs: number;
}

export interface ApplyResult {
  revision: string;
  txns: number;
}

/** Applies the steps, the meta and the release; throws FencedWriteError when a guard fails. */
export async function applyFenced(input: ApplyInput): Promise<ApplyResult> {
  const { lock, metaKey, seen, steps, meta } = input;
  const putsAny = steps.some((s) => s.puts.length > 0);
  if (seen.value?.deleted === true && putsAny) {
    throw new ResurrectionError(`refusing to write keys for ${metaKey}: its tombstone is in place`);
  }
  const served = input.servedKeys?.length ?? 0;
  for (const [i, s] of steps.entries()) {
    const room = MAX_TXN_OPS - RESERVED_OPS - (i === steps.length - 1 ? served : 0);
    if (stepOps(s) > room) throw new RangeError(`a step has ${stepOps(s)} operations, more than the ${room} it may have`);
  }
  const finalMeta: CircuitMeta = { ...meta, writer: writerId(lock), at: new Date().toISOString() };
  let revision = '0';
  const all = steps.length > 0 ? steps : [{ puts: [], deletes: [], deletePrefixes: [] }];
  for (let i = 0; i < all.length; i++) {
    const s = all[i]!;
    const last = i === all.length - 1;
    const ops = [...s.deletePrefixes.map(op.delPrefix), ...s.deletes.map(op.del), ...s.puts.map(([k, v]) => op.put(k, v))];
    if (last) ops.push(op.put(metaKey, encodeMeta(finalMeta)), ...(input.servedKeys ?? []).map(op.del));
    // Every step but the last advances our lock key's version (Lock.txn `mark`), so a retried
    // step that had applied is recognised instead of applied a second time.
    const res = await lock.txn(
      { compare: [cmp.modRevision(metaKey, seen.modRevision)], success: ops, failure: [op.get(metaKey)], release: last, mark: !last },
      input.rpcTimeoutMs,
    );
    if (!res.succeeded) {
      if (res.applied) continue;
      const metaKv = res.responses[1]?.response_range.kvs[0];
      // A retry of our own final transaction may find it already applied: it wrote our writer.
      if (last && metaKv !== undefined && decodeMeta(metaKv.value.toString())?.writer === finalMeta.writer) {
        lock.confirmReleased();
        return { revision: metaKv.mod_revision, txns: i + 1 };
      }
      throw new FencedWriteError(lock.heldAfter(res) ? 'circuit-changed' : 'lock-lost', i);
    }
    revision = res.header.revision;
  }
  return { revision, txns: all.length };
}
