// Binds the database's fences to etcd's history (DESIGN I3). Fences are (epoch, lock create
// revision); the epoch is recorded in the database (etcd_epochs) and published in etcd (the epoch
// key, read by every lock acquisition). When etcd's history is not the one the fences were taken
// in — restored from a snapshot (revisions rolled back), rebuilt (keys and revisions gone), another
// cluster — a new epoch is started, so fences taken from now on win over every recorded one:
// nothing stalls behind revisions that no longer exist, and the next sweep re-propagates every
// circuit from the database through the fenced path (drift repair).
import { randomUUID } from 'node:crypto';
import { readHistoryState, writeEpoch, type EtcdHistoryState, type Fence } from '../etcd/index.js';
import { latestEpoch, maxFenceRevision, startEpoch, type EpochRecord } from '../db/index.js';
import { failpoint } from '../failpoints.js';
import { logger } from '../observability.js';
import type { Invocation } from '../runtime.js';

export type HistoryCheck =
  | { status: 'ok'; epoch: number }
  | { status: 'new-epoch'; epoch: number; reason: string };

/**
 * Why etcd's history is not the recorded one, or null when it is. `maxFence` must have been read
 * from the database BEFORE `state` from etcd: every fence recorded by then was taken at a
 * revision etcd had already reached, so in one continuous history it cannot exceed etcd's.
 */
export function historyMismatch(state: EtcdHistoryState, latest: EpochRecord | null, maxFence: bigint): string | null {
  if (latest === null) return 'no fencing epoch recorded yet';
  if (state.epoch === null) return `etcd has no fencing epoch key (rebuilt, or restored from before epoch ${latest.epoch})`;
  if (state.epoch.epoch !== latest.epoch || state.epoch.marker !== latest.marker) {
    return `etcd's fencing epoch ${state.epoch.epoch} is not the recorded epoch ${latest.epoch} (restored from a snapshot?)`;
  }
  if (state.clusterId !== latest.clusterId) return `etcd cluster ${state.clusterId} is not cluster ${latest.clusterId} of epoch ${latest.epoch}`;
  if (BigInt(state.revision) < maxFence) {
    return `etcd's revision ${state.revision} is below fence revision ${maxFence} recorded in epoch ${latest.epoch} (history rolled back)`;
  }
  return null;
}

/** The sweep's check at the start of every pass: starts a new epoch when the history changed. */
export async function checkEtcdHistory(inv: Invocation): Promise<HistoryCheck> {
  const { config } = inv.rt;
  const latest = await latestEpoch(inv.rt.db);
  const maxFence = latest === null ? 0n : await maxFenceRevision(inv.rt.db, latest.epoch);
  await failpoint('history.betweenReads');
  const state = await readHistoryState(inv.rt.etcd, config.metaPrefix, config.etcd.timeoutMs);
  const reason = historyMismatch(state, latest, maxFence);
  if (reason === null) return { status: 'ok', epoch: latest!.epoch };
  const started = await startNewEpoch(inv, { reason });
  return { status: 'new-epoch', epoch: started.epoch, reason };
}

/**
 * A holder found its fence stale while still owning its lock. If the epoch moved on since it took
 * the lock, it simply retries; otherwise the history under the database changed: new epoch.
 */
export async function onRolledBackHistory(inv: Invocation, fence: Fence): Promise<{ epoch: number } | null> {
  const { config } = inv.rt;
  const state = await readHistoryState(inv.rt.etcd, config.metaPrefix, config.etcd.timeoutMs);
  if ((state.epoch?.epoch ?? 0) !== fence.epoch) return null;
  return startNewEpoch(inv, { reason: `a lock holder (fence ${fence.epoch}:${fence.revision}) still owns its lock but the database has a newer fence` });
}

/** Records a new epoch (greater than any in the database or in etcd) and publishes it in etcd. */
export async function startNewEpoch(inv: Invocation, o: { reason: string }): Promise<{ epoch: number }> {
  const { config, etcd, db } = inv.rt;
  const t = config.etcd.timeoutMs;
  const state = await readHistoryState(etcd, config.metaPrefix, t);
  const latest = await latestEpoch(db);
  const next = Math.max(latest?.epoch ?? 0, state.epoch?.epoch ?? 0) + 1;
  const started = await startEpoch(db, { next, clusterId: state.clusterId, marker: randomUUID(), revision: state.revision, reason: o.reason });
  // Whoever won, etcd must end up publishing the database's latest epoch.
  for (let attempt = 1; attempt <= 5; attempt++) {
    const want = await latestEpoch(db);
    const now = attempt === 1 ? state : await readHistoryState(etcd, config.metaPrefix, t);
    if (want === null) break;
    if (now.epoch?.epoch === want.epoch && now.epoch.marker === want.marker) break;
    if ((now.epoch?.epoch ?? 0) > want.epoch) break; // a newer epoch exists in etcd: its starter records it
    if (await writeEpoch(etcd, config.metaPrefix, { epoch: want.epoch, marker: want.marker }, now.modRevision, t)) break;
  }
  const result = (await latestEpoch(db))?.epoch ?? next;
  if (started) logger.warn('fencing epoch started', { epoch: next, reason: o.reason, etcdRevision: state.revision, clusterId: state.clusterId });
  return { epoch: result };
}
