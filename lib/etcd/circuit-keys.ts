// The plain reads and the guarded deletes the services need besides the write path.
import type { Etcd3, IResponseOp } from 'etcd3';
import { cmp, enc, kvKey, kvValue, op } from './keys.js';
import { deadline } from './client.js';
import { etcdCall } from './failures.js';
import { decodeMeta, type CircuitMeta } from './meta.js';
import type { Lock } from './mutex.js';
import { metaKey } from './layout.js';

/** Every key under each prefix, in one transaction (one consistent state). */
export async function readPrefixes(etcd: Etcd3, prefixes: readonly string[], timeoutMs: number): Promise<Map<string, string>> {
  const r = await etcdCall(etcd.kv.txn({ compare: [], success: prefixes.map((p) => op.getPrefix(p)), failure: [] }, deadline(timeoutMs)));
  return keysOf(r.responses);
}

/** The key/values of range responses. */
export function keysOf(responses: readonly IResponseOp[]): Map<string, string> {
  const m = new Map<string, string>();
  for (const r of responses) for (const kv of r.response_range.kvs) m.set(kvKey(kv), kvValue(kv));
  return m;
}

export const getOp = op.get;
export const getPrefixOp = (prefix: string) => op.getPrefix(prefix);

/** A circuit's meta (null when it has none or it is unreadable). */
export async function readMeta(etcd: Etcd3, key: string, timeoutMs: number): Promise<{ meta: CircuitMeta | null; modRevision: string }> {
  const r = await etcdCall(etcd.kv.range({ key: enc(key) }, deadline(timeoutMs)));
  const kv = r.kvs[0];
  return { meta: kv ? decodeMeta(kvValue(kv)) : null, modRevision: kv?.mod_revision ?? '0' };
}

/** Deletes `key` only if it still has `modRevision` (a key rewritten since is left alone). */
export async function deleteIfUnchanged(etcd: Etcd3, key: string, modRevision: string, timeoutMs: number): Promise<boolean> {
  const r = await etcdCall(etcd.kv.txn({ compare: [cmp.modRevision(key, modRevision)], success: [op.del(key)], failure: [] }, deadline(timeoutMs)));
  return r.succeeded && Number(r.responses[0]?.response_delete_range.deleted ?? 0) > 0;
}

/**
 * Deletes whole subtrees under the lock, releasing it in the same transaction; returns the keys
 * deleted, in all and per prefix.
 */
export async function deletePrefixesLocked(
  lock: Lock,
  prefixes: readonly string[],
  timeoutMs: number,
): Promise<{ applied: boolean; deleted: number; perPrefix: number[] }> {
  const r = await lock.txn({ success: prefixes.map(op.delPrefix), release: true }, timeoutMs);
  if (!r.succeeded) return { applied: false, deleted: 0, perPrefix: prefixes.map(() => 0) };
  const perPrefix = r.responses.slice(0, prefixes.length).map((x) => Number(x.response_delete_range?.deleted ?? 0));
  return { applied: true, deleted: perPrefix.reduce((n, x) => n + x, 0), perPrefix };
}

/** The generation each circuit's meta holds (absent: no meta), read in transactions of 100 gets. */
export async function readAppliedGenerations(etcd: Etcd3, metaPrefix: string, ids: readonly string[], timeoutMs: number): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  const chunks: string[][] = [];
  for (let i = 0; i < ids.length; i += 100) chunks.push(ids.slice(i, i + 100));
  await Promise.all(
    chunks.map(async (chunk) => {
      const r = await etcdCall(etcd.kv.txn({ compare: [], success: chunk.map((id) => op.get(metaKey(metaPrefix, id))), failure: [] }, deadline(timeoutMs)));
      r.responses.forEach((x, i) => {
        const kv = x.response_range.kvs[0];
        const m = kv ? decodeMeta(kvValue(kv)) : null;
        if (m !== null) out.set(chunk[i]!, m.generation);
      });
    }),
  );
  return out;
}
