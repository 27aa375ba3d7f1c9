// The recorder's I/O. etcd keeps its whole MVCC history (no compaction is configured and the data
// directory survives restarts), so after the run the complete history is read back with ONE
// watch from revision 1 over the whole keyspace: every put and delete of every revision,
// including lease expiries, in order. That is what a live watch resumed at last-seen+1 after
// every etcd restart would have recorded, without its gaps and races.
//
// The database side: a deferred trigger (harness-owned, installed in the chaos database only)
// records every committed generation of every circuit together with its routes and worker, so
// the checkers know exactly what the database said at generation g.
import type { Etcd3 } from 'etcd3';
import { circuitFromRows, type Queryable } from '../../lib/db/index.js';
import type { CircuitView } from '../../lib/model.js';
import { enc, kvKey, kvValue, prefixEnd } from '../../lib/etcd/index.js';
import type { HistEvent } from './check.js';

export const SENTINEL_KEY = 'chaos/history-end';

/** Puts a sentinel and returns its revision: the history is complete once it is seen. */
export async function markEnd(etcd: Etcd3): Promise<number> {
  const r = await etcd.kv.put({ key: enc(SENTINEL_KEY), value: enc(new Date().toISOString()) });
  return Number(r.header.revision);
}

export async function readHistory(etcd: Etcd3, untilRevision: number, timeoutMs = 120_000): Promise<HistEvent[]> {
  const events: HistEvent[] = [];
  const watcher = await etcd.watch().inRange({ start: Buffer.from([0]), end: Buffer.from([0]) }).startRevision('1').create();
  return new Promise<HistEvent[]>((resolve, reject) => {
    let done = false;
    const finish = (err?: Error) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      void watcher.cancel().catch(() => {});
      if (err) reject(err);
      else resolve(events);
    };
    const timer = setTimeout(() => finish(new Error(`reading the etcd history timed out after ${timeoutMs} ms (${events.length} events read)`)), timeoutMs);
    watcher.on('data', (res) => {
      for (const e of res.events) {
        const rev = Number(e.kv.mod_revision);
        events.push({
          rev,
          type: e.type === 'Put' ? 'put' : 'delete',
          key: kvKey(e.kv),
          value: e.type === 'Put' ? kvValue(e.kv) : '',
          create: e.type === 'Put' ? Number(e.kv.create_revision) : 0,
          lease: e.kv.lease,
        });
      }
      const last = events[events.length - 1];
      if (last !== undefined && last.rev >= untilRevision) finish();
    });
    watcher.on('error', (err) => finish(err));
  });
}

/** Every key under prefix, now. */
export async function readPrefix(etcd: Etcd3, prefix: string): Promise<Map<string, string>> {
  const r = await etcd.kv.range({ key: enc(prefix), range_end: prefixEnd(enc(prefix)) });
  return new Map(r.kvs.map((kv) => [kvKey(kv), kvValue(kv)]));
}

export async function currentRevision(etcd: Etcd3): Promise<number> {
  const r = await etcd.kv.range({ key: enc(SENTINEL_KEY) });
  return Number(r.header.revision);
}

export const HISTORY_TRIGGER_SQL = `
CREATE TABLE IF NOT EXISTS chaos_generations (
  circuit_id    uuid NOT NULL,
  generation    bigint NOT NULL,
  deleted       boolean NOT NULL,
  view          jsonb NOT NULL,
  -- The fence the change committed under (0:0 for a creation, which takes no lock).
  lock_epoch    bigint NOT NULL,
  lock_revision bigint NOT NULL,
  recorded_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
  PRIMARY KEY (circuit_id, generation)
);
CREATE OR REPLACE FUNCTION chaos_record_generation() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  -- Deferred to commit time: sees everything the transaction wrote (routes included).
  INSERT INTO chaos_generations (circuit_id, generation, deleted, view, lock_epoch, lock_revision)
  SELECT c.id, c.generation, c.deleted_at IS NOT NULL,
         jsonb_build_object(
           'circuit', row_to_json(c),
           'routes', (SELECT json_agg(row_to_json(r) ORDER BY r.position) FROM routes r WHERE r.circuit_id = c.id),
           'worker', (SELECT row_to_json(w) FROM workers w WHERE w.authority = c.worker)),
         c.lock_epoch, c.lock_revision
    FROM circuits c WHERE c.id = NEW.id
  ON CONFLICT DO NOTHING;
  RETURN NULL;
END $$;
DROP TRIGGER IF EXISTS chaos_generation_insert ON circuits;
DROP TRIGGER IF EXISTS chaos_generation_update ON circuits;
CREATE CONSTRAINT TRIGGER chaos_generation_insert AFTER INSERT ON circuits
  DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION chaos_record_generation();
CREATE CONSTRAINT TRIGGER chaos_generation_update AFTER UPDATE OF generation ON circuits
  DEFERRABLE INITIALLY DEFERRED FOR EACH ROW
  WHEN (OLD.generation IS DISTINCT FROM NEW.generation) EXECUTE FUNCTION chaos_record_generation();
`;

interface StoredView {
  circuit: Parameters<typeof circuitFromRows>[0];
  routes: Parameters<typeof circuitFromRows>[1] | null;
  worker: { authority: string; hostname: string; wildcard_domain: string | null; tls: boolean };
}

export function viewFromStored(v: StoredView): CircuitView {
  return {
    circuit: circuitFromRows(v.circuit, v.routes ?? []),
    worker: { authority: v.worker.authority, hostname: v.worker.hostname, wildcardDomain: v.worker.wildcard_domain, tls: v.worker.tls },
  };
}

export interface StoredGeneration {
  circuitId: string;
  generation: number;
  deleted: boolean;
  view: CircuitView;
  recordedAt: string;
  /** Wall-clock ms of the commit (its deferred trigger): comparable with the workers' Date.now(). */
  recordedMs: number;
  fenceEpoch: number;
  fenceRevision: number;
}

export async function readGenerations(db: Queryable): Promise<StoredGeneration[]> {
  const r = await db.query<{ circuit_id: string; generation: string; deleted: boolean; view: StoredView; recorded_at: string; recorded_ms: string; lock_epoch: string; lock_revision: string }>(
    `SELECT circuit_id, generation, deleted, view, recorded_at, extract(epoch FROM recorded_at) * 1000 AS recorded_ms, lock_epoch, lock_revision
       FROM chaos_generations ORDER BY circuit_id, generation`,
  );
  return r.rows.map((x) => ({
    circuitId: x.circuit_id,
    generation: Number(x.generation),
    deleted: x.deleted,
    view: viewFromStored(x.view),
    recordedAt: new Date(x.recorded_at).toISOString(),
    recordedMs: Number(x.recorded_ms),
    fenceEpoch: Number(x.lock_epoch),
    fenceRevision: Number(x.lock_revision),
  }));
}
