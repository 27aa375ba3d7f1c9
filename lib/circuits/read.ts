// Read a circuit with its sync state: the database generation and the one applied in etcd.
import { readCircuit, type CircuitView } from '../db/circuits.js';
import { decodeMeta } from '../etcd/fenced-apply.js';
import { deadline } from '../etcd/client.js';
import { enc, kvValue } from '../etcd/keys.js';
import type { Runtime } from '../runtime.js';
import { metaKey } from './layout.js';
import { classifyFailure } from './errors.js';

export async function readWithSync(rt: Runtime, id: string): Promise<{ view: CircuitView; appliedGeneration: number | null } | null> {
  const [view, meta] = await Promise.all([
    readCircuit(rt.db as unknown as Parameters<typeof readCircuit>[0], id).catch((e: unknown) => {
      throw classifyFailure(e, 'database');
    }),
    rt.etcd.kv.range({ key: enc(metaKey(rt.config.metaPrefix, id)) }, deadline(rt.config.etcd.timeoutMs)).catch((e: unknown) => {
      throw classifyFailure(e, 'etcd');
    }),
  ]);
  if (view === null) return null;
  const kv = meta.kvs[0];
  return { view, appliedGeneration: kv ? (decodeMeta(kvValue(kv))?.generation ?? null) : null };
}
