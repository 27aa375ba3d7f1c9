// Reading and writing the fencing epoch key (epoch-codec.ts says what it means).
import type { Etcd3 } from 'etcd3';
import { cmp, enc, kvValue, op } from './keys.js';
import { deadline } from './client.js';
import { etcdCall } from './failures.js';
import { decodeEpoch, encodeEpoch, type EpochValue } from './epoch-codec.js';
import { epochKey } from './layout.js';

export interface EtcdHistoryState {
  /** The epoch key's value; null when it is missing or unreadable. */
  epoch: EpochValue | null;
  /** The epoch key's mod revision ('0' when missing): the compare for replacing it. */
  modRevision: string;
  /** The current revision of the etcd history. */
  revision: string;
  clusterId: string;
}

export async function readHistoryState(etcd: Etcd3, metaPrefix: string, timeoutMs: number): Promise<EtcdHistoryState> {
  const r = await etcdCall(etcd.kv.range({ key: enc(epochKey(metaPrefix)) }, deadline(timeoutMs)));
  const kv = r.kvs[0];
  return {
    epoch: kv === undefined ? null : decodeEpoch(kvValue(kv)),
    modRevision: kv?.mod_revision ?? '0',
    revision: r.header.revision,
    clusterId: r.header.cluster_id,
  };
}

/** Puts the epoch if the key is still at `expectModRevision`; false when somebody else changed it first. */
export async function writeEpoch(etcd: Etcd3, metaPrefix: string, value: EpochValue, expectModRevision: string, timeoutMs: number): Promise<boolean> {
  const key = epochKey(metaPrefix);
  const r = await etcdCall(etcd.kv.txn({ compare: [cmp.modRevision(key, expectModRevision)], success: [op.put(key, encodeEpoch(value))], failure: [] }, deadline(timeoutMs)));
  return r.succeeded;
}
