// The queue of a circuit lock, as etcd holds it (mutex.ts): what a contender writes in its lock
// key, and the ranges that read the owner, a contender's predecessor and the queue behind it.
import type { IRequestOp, IResponseOp } from 'etcd3';
import { enc, kvKey, kvValue, prefixEnd } from './keys.js';

/** A contender queued behind the holder, with what it wrote in its lock key. */
export interface QueuedContender {
  key: string;
  createRevision: string;
  value: LockKeyValue;
}

/** The value of a lock key: when the contender queued, who it is and what it queued with. */
export interface LockKeyValue {
  since: string;
  holder: string;
  note?: string;
}

export function decodeLockValue(s: string): LockKeyValue | null {
  try {
    const v = JSON.parse(s) as Partial<LockKeyValue>;
    if (typeof v.since !== 'string') return null;
    return { since: v.since, holder: typeof v.holder === 'string' ? v.holder : '', ...(typeof v.note === 'string' ? { note: v.note } : {}) };
  } catch {
    return null;
  }
}

export const ownerRangeRequest = (prefix: string) => ({
  key: enc(prefix),
  range_end: prefixEnd(enc(prefix)),
  sort_order: 'Ascend' as const,
  sort_target: 'Create' as const,
  limit: 1,
  keys_only: true,
});
export const ownerRange = (prefix: string): IRequestOp => ({ request_range: ownerRangeRequest(prefix) });

export const predecessorsRange = (prefix: string, below?: string, limit = 1): IRequestOp => ({
  request_range: {
    key: enc(prefix),
    range_end: prefixEnd(enc(prefix)),
    ...(below === undefined ? {} : { max_create_revision: (BigInt(below) - 1n).toString() }),
    sort_order: 'Descend',
    sort_target: 'Create',
    limit,
    keys_only: true,
  },
});

export const queueRange = (prefix: string, after: string, limit: number): IRequestOp => ({
  request_range: {
    key: enc(prefix),
    range_end: prefixEnd(enc(prefix)),
    min_create_revision: (BigInt(after) + 1n).toString(),
    sort_order: 'Ascend',
    sort_target: 'Create',
    limit,
  },
});

export function queueOf(r: IResponseOp | undefined): QueuedContender[] {
  return (r?.response_range.kvs ?? []).flatMap((kv) => {
    const value = decodeLockValue(kvValue(kv));
    return value === null ? [] : [{ key: kvKey(kv), createRevision: kv.create_revision, value }];
  });
}
