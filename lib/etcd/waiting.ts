// What a queued contender waits on (mutex.ts): its predecessor's delete, watched and also polled
// (a watch stream can sit on an unreachable member), and, when a holder may serve it, the note
// that says so.
import type { Etcd3 } from 'etcd3';
import { enc, kvValue } from './keys.js';
import { deadline } from './client.js';
import { isCompacted } from './failures.js';
import { LockTimeoutError } from '../errors.js';

/** Watches `key` from `fromRevision` for a value that `find` reads as serving us. */
export function watchServed(etcd: Etcd3, served: { key: string; find(value: string): unknown }, fromRevision: bigint): { found: Promise<{ outcome: unknown }>; cancel(): void } {
  let cancelled = false;
  let resolveFound!: (v: { outcome: unknown }) => void;
  const found = new Promise<{ outcome: unknown }>((r) => (resolveFound = r));
  const watcherP = etcd.watch().key(served.key).startRevision(fromRevision.toString()).only('put').create();
  watcherP.then(
    (w) => {
      if (cancelled) return void w.cancel().catch(() => {});
      w.on('put', (kv) => {
        const outcome = served.find(kvValue(kv));
        if (outcome !== undefined) resolveFound({ outcome });
      });
      // A compacted or failed watch only loses the fast path: the waiter's own check still reads the key.
      w.on('error', () => {});
    },
    () => {},
  );
  return {
    found,
    cancel() {
      cancelled = true;
      void watcherP.then((w) => w.cancel()).catch(() => {});
    },
  };
}

/**
 * How often a waiter also reads whether its predecessor is gone. Its watch alone is not enough:
 * all watches of a client share one stream on one member, and when that member becomes
 * unreachable without closing the connection (a partition, a frozen process) the stream stays
 * silent until gRPC's keepalive declares the connection dead (client.ts: ~7.5 s), longer than a
 * waiter waits. The read goes to any member that answers.
 */
export const WAITER_POLL_MS = 1000;

export function waitForDelete(etcd: Etcd3, key: string, createRevision: string, fromRevision: bigint, until: number, rpcTimeoutMs: number, signal?: AbortSignal): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    let settled = false;
    let pollTimer: NodeJS.Timeout | undefined;
    const finish = (err?: Error) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      clearTimeout(pollTimer);
      void watcherP.then((w) => w.cancel()).catch(() => {});
      if (err) reject(err);
      else resolve();
    };
    const timer = setTimeout(
      () => finish(new LockTimeoutError(`lock not acquired within the wait limit (queued behind ${key})`)),
      Math.max(0, until - performance.now()),
    );
    signal?.addEventListener('abort', () => finish(), { once: true });
    const poll = (): void => {
      pollTimer = setTimeout(() => {
        // Gone, or gone and put again by its session (a later create revision: not ahead of us).
        etcd.kv.range({ key: enc(key), keys_only: true }, deadline(rpcTimeoutMs)).then(
          (r) => (r.kvs[0]?.create_revision !== createRevision ? finish() : settled || poll()),
          () => settled || poll(),
        );
      }, WAITER_POLL_MS);
    };
    poll();
    // A watch from a revision that compaction removed is cancelled by etcd: the predecessor may
    // be gone by now, so settle and let the caller re-check instead of failing.
    const onError = (e: Error) => (isCompacted(e) ? finish() : finish(e));
    const watcherP = etcd.watch().key(key).startRevision(fromRevision.toString()).only('delete').create();
    watcherP.then(
      (w) => {
        w.on('delete', () => finish());
        w.on('error', onError);
      },
      onError,
    );
  });
}
