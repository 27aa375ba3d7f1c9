// Paged reads of a prefix, all pages at one revision, so a scan describes one consistent state.
// If compaction removes that revision between two pages, the scan starts over at the current
// revision (the caller's onKv must then forget what it saw: `onRestart`).
import type { Etcd3, IKeyValue } from 'etcd3';
import { enc, prefixEnd } from './keys.js';
import { deadline } from './client.js';
import { etcdFailure, isCompacted } from './failures.js';

export interface ScanOptions {
  pageSize: number;
  timeoutMs: number;
  /** Read at this revision (default: the first page's). */
  revision?: string;
  onKv: (kv: IKeyValue) => void;
  /** The scan restarts from scratch at a newer revision: drop what onKv collected. */
  onRestart?: () => void;
  /** Called between pages (tests force a compaction here). */
  betweenPages?: () => Promise<void>;
  /** How many restarts before giving up. Default 3. */
  maxRestarts?: number;
}

export interface ScanResult {
  revision: string;
  rpcs: number;
  restarts: number;
}

export async function scanPrefix(etcd: Etcd3, prefix: string, o: ScanOptions): Promise<ScanResult> {
  const end = prefixEnd(enc(prefix));
  let rpcs = 0;
  let restarts = 0;
  let rev = o.revision;
  for (;;) {
    let from = enc(prefix);
    try {
      for (let page = 0; ; page++) {
        if (page > 0 && o.betweenPages) await o.betweenPages();
        const r = await etcd.kv.range(
          { key: from, range_end: end, limit: o.pageSize, ...(rev !== undefined ? { revision: rev } : {}) },
          deadline(o.timeoutMs),
        );
        rpcs++;
        rev ??= r.header.revision;
        for (const kv of r.kvs) o.onKv(kv);
        const last = r.kvs[r.kvs.length - 1];
        if (!r.more || last === undefined) return { revision: rev, rpcs, restarts };
        from = Buffer.concat([last.key, Buffer.from([0])]);
      }
    } catch (err) {
      if (!isCompacted(err) || restarts >= (o.maxRestarts ?? 3)) throw etcdFailure(err);
      restarts++;
      rev = undefined;
      o.onRestart?.();
    }
  }
}
