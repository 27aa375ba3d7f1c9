// What operators see of the locks (`circuitry locks`): every contender of every circuit lock, in
// queue order, with its lease's remaining TTL.
import type { Etcd3 } from 'etcd3';
import { kvKey, kvValue } from './keys.js';
import { locksPrefix, parseLockKey } from './layout.js';
import { decodeLockValue } from './lock-queue.js';
import { scanPrefix } from './scan.js';
import { etcdCall } from './failures.js';

export interface LockContender {
  circuitId: string;
  leaseHex: string;
  createRevision: string;
  /** First in the queue: holds the lock. */
  owner: boolean;
  /** When the contender queued (from the key's value), null when unknown. */
  since: string | null;
  holder: string;
  /** Seconds the lease has left (null when it could not be read). */
  ttlSeconds: number | null;
}

export async function listLocks(etcd: Etcd3, metaPrefix: string, timeoutMs: number): Promise<LockContender[]> {
  const byCircuit = new Map<string, LockContender[]>();
  await scanPrefix(etcd, locksPrefix(metaPrefix), {
    pageSize: 1000,
    timeoutMs,
    onRestart: () => byCircuit.clear(),
    onKv: (kv) => {
      const k = parseLockKey(metaPrefix, kvKey(kv));
      if (k === null) return;
      const v = decodeLockValue(kvValue(kv));
      const list = byCircuit.get(k.circuitId) ?? [];
      list.push({ ...k, createRevision: kv.create_revision, owner: false, since: v?.since ?? null, holder: v?.holder ?? '', ttlSeconds: null, lease: kv.lease } as LockContender);
      byCircuit.set(k.circuitId, list);
    },
  });
  const out: LockContender[] = [];
  for (const list of byCircuit.values()) {
    list.sort((a, b) => (BigInt(a.createRevision) < BigInt(b.createRevision) ? -1 : 1));
    list[0]!.owner = true;
    out.push(...list);
  }
  await Promise.all(
    out.map(async (c) => {
      const lease = (c as LockContender & { lease?: string }).lease;
      delete (c as LockContender & { lease?: string }).lease;
      if (lease === undefined || lease === '0') return;
      const r = await etcdCall(etcd.leaseClient.leaseTimeToLive({ ID: lease })).catch(() => null);
      c.ttlSeconds = r === null ? null : Number(r.TTL);
    }),
  );
  return out;
}
