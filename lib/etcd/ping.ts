// Reachability of etcd for GET /v2/health: one linearizable range of a single key.
import type { Etcd3 } from 'etcd3';
import { enc } from './keys.js';
import { deadline } from './client.js';

export async function pingEtcd(etcd: Etcd3, key: string, timeoutMs: number): Promise<{ ok: boolean; latencyMs: number }> {
  const t0 = performance.now();
  try {
    await etcd.kv.range({ key: enc(key), count_only: true }, deadline(timeoutMs));
    return { ok: true, latencyMs: Math.round((performance.now() - t0) * 10) / 10 };
  } catch {
    return { ok: false, latencyMs: Math.round((performance.now() - t0) * 10) / 10 };
  }
}
