// Route changes queued behind a circuit's lock (migrations/0006): the waiter's side (record,
// withdraw, read the outcome), the holder's statement that applies its own change and the queued
// ones in one fenced statement, and their retention.
//
// The row is the one place a waiter and a holder agree on: the holder claims a pending row
// (FOR UPDATE, then pending -> applied in the same statement as the change), a waiter that gives up
// withdraws it (pending -> withdrawn). Whichever comes first wins; the other sees it. So a waiter
// never answers "nothing changed" for a change a holder committed, and a change is never applied
// twice.
import type { CircuitView, RouteInput } from '../model.js';
import type { Queryable } from './store.js';
import { toView, type ViewRow } from './rows.js';
import { ADVANCE_FENCE, FENCE_HOLDS, fenceParams, LOCKED_STATEMENT, replaceRoutesCtes, routesJson, type DbFence } from './locked.js';

export type IntentOutcome = { status: 'pending' } | { status: 'withdrawn' } | { status: 'applied'; generation: number } | { status: 'unknown' };

/** Records a waiter's change (the routes as the holder will apply them). */
export async function recordIntent(q: Queryable, intentId: string, circuitId: string, routes: readonly RouteInput[]): Promise<void> {
  await q.query('INSERT INTO route_intents (intent_id, circuit_id, routes) VALUES ($1, $2, $3::jsonb)', [intentId, circuitId, routesJson(routes)]);
}

export async function intentOutcome(q: Queryable, intentId: string): Promise<IntentOutcome> {
  const r = await q.query<{ status: 'pending' | 'applied' | 'withdrawn'; generation: string | null }>('SELECT status, generation FROM route_intents WHERE intent_id = $1', [intentId]);
  const row = r.rows[0];
  if (row === undefined) return { status: 'unknown' };
  return row.status === 'applied' ? { status: 'applied', generation: Number(row.generation) } : { status: row.status };
}

/**
 * Withdraws a change; when a holder claimed it first, says so with its generation. A holder's
 * statement that is claiming it right now is waited for (its row lock).
 *
 * Also right when the record's own answer was lost, so that nobody knows whether the row exists:
 * a missing row is inserted already withdrawn (a late INSERT of the record then fails on the key,
 * and no holder can claim it), an existing one is withdrawn if still pending, and an applied one
 * reports its generation. Never "not recorded" by guess: the row may exist and be applied.
 */
export async function withdrawIntent(q: Queryable, intentId: string, circuitId: string): Promise<IntentOutcome> {
  const r = await q.query(
    `INSERT INTO route_intents AS ri (intent_id, circuit_id, routes, status, decided_at)
     SELECT $1, $2, '[]'::jsonb, 'withdrawn', now() WHERE EXISTS (SELECT 1 FROM circuits WHERE id = $2)
     ON CONFLICT (intent_id) DO UPDATE SET status = 'withdrawn', decided_at = now() WHERE ri.status = 'pending'`,
    [intentId, circuitId],
  );
  if ((r.rowCount ?? 0) > 0) return { status: 'withdrawn' };
  // Read in a statement of its own: it must see the claim the upsert waited for.
  return intentOutcome(q, intentId);
}

export interface CombinedChange {
  view: CircuitView;
  /** The queued changes applied with ours: intent id and its generation, in queue order. */
  served: Array<{ intentId: string; generation: number }>;
  /** The generation of our own change (the circuit's is that plus the number served). */
  ownGeneration: number;
}

/**
 * The holder's route change with the changes queued behind it, in ONE statement: our routes (or,
 * with `ownIntent`, our recorded change, which must still be pending) at generation g+1, then each
 * pending queued change without If-Match, in `queued` order, at g+2, g+3, …; the routes the circuit
 * ends with are the last change's. Routes keep their health when their id, host and port survive
 * every change of the batch, as they would applied one by one. Applies only where replaceRoutes would (live, not
 * unloading, If-Match, the holder's fence, no generation committed since the statement's
 * snapshot — see replaceRoutes); null when it did not, or when `ownIntent` is no longer pending.
 *
 * Locks the circuit row before the intent rows, as every fenced statement locks the circuit row
 * first, so a superseded holder's statement cannot deadlock with ours.
 */
export async function replaceRoutesCombined(
  q: Queryable,
  id: string,
  own: { routes: readonly RouteInput[]; ifMatch: number | undefined; intentId: string | undefined },
  queued: readonly string[],
  f: DbFence,
): Promise<CombinedChange | null> {
  const r = await q.query<ViewRow & { served: Array<[string, string | number]> | null; own_generation: string | number }>(
    `${LOCKED_STATEMENT}
     WITH snap AS (
       SELECT generation FROM circuits WHERE id = $1),
     lockc AS (
       SELECT id FROM circuits WHERE id = $1 FOR UPDATE),
     own AS (
       SELECT intent_id FROM route_intents
        WHERE intent_id = $6::uuid AND circuit_id = $1 AND status = 'pending' AND EXISTS (SELECT 1 FROM lockc)
        FOR UPDATE),
     locked AS (
       SELECT intent_id, routes FROM route_intents
        WHERE intent_id = ANY($7::uuid[]) AND circuit_id = $1 AND status = 'pending' AND EXISTS (SELECT 1 FROM lockc)
        FOR UPDATE),
     cand AS (
       SELECT l.intent_id, l.routes, row_number() OVER (ORDER BY array_position($7::uuid[], l.intent_id)) AS k FROM locked l),
     n AS (SELECT count(*)::bigint AS n FROM cand),
     final AS (
       SELECT coalesce((SELECT routes FROM cand ORDER BY k DESC LIMIT 1), $4::jsonb) AS routes),
     c AS (
       UPDATE circuits AS c SET generation = c.generation + 1 + (SELECT n FROM n), updated_at = now(), ${ADVANCE_FENCE}
        WHERE c.id = $1 AND c.deleted_at IS NULL AND c.unload_requested_at IS NULL
          AND ($5::bigint IS NULL OR c.generation = $5::bigint)
          AND ${FENCE_HOLDS}
          AND c.generation = (SELECT generation FROM snap)
          AND ($6::uuid IS NULL OR EXISTS (SELECT 1 FROM own))
       RETURNING c.*),
     claimed_own AS (
       UPDATE route_intents ri SET status = 'applied', generation = c.generation - (SELECT n FROM n), decided_at = now()
         FROM c WHERE ri.intent_id = $6::uuid
       RETURNING ri.intent_id),
     claimed AS (
       UPDATE route_intents ri SET status = 'applied', generation = c.generation - (SELECT n FROM n) + cand.k, decided_at = now()
         FROM c, cand WHERE ri.intent_id = cand.intent_id
       RETURNING ri.intent_id, ri.generation, cand.k),
     ${replaceRoutesCtes(
       '(SELECT routes FROM final)',
       // in every change of the batch, with the same address: else it was removed (or moved) on the way
       `NOT EXISTS (SELECT 1 FROM (SELECT $4::jsonb AS routes UNION ALL SELECT routes FROM cand) batch
                     WHERE NOT EXISTS (SELECT 1 FROM jsonb_array_elements(batch.routes) x
                                        WHERE (x->>'routeId')::uuid = routes.route_id AND x->>'host' = routes.host AND (x->>'port')::int = routes.port))`,
     )}
     SELECT row_to_json(c) AS circuit,
            (SELECT json_agg(row_to_json(up) ORDER BY up.position) FROM up) AS routes,
            (SELECT row_to_json(w) FROM workers w WHERE w.authority = c.worker) AS worker,
            (SELECT json_agg(json_build_array(claimed.intent_id, claimed.generation) ORDER BY claimed.k) FROM claimed) AS served,
            c.generation - (SELECT n FROM n) AS own_generation
       FROM c`,
    [...fenceParams(id, f), routesJson(own.routes), own.ifMatch ?? null, own.intentId ?? null, [...queued]],
  );
  const row = r.rows[0];
  if (row === undefined) return null;
  return {
    view: toView(row),
    served: (row.served ?? []).map(([intentId, g]) => ({ intentId, generation: Number(g) })),
    ownGeneration: Number(row.own_generation),
  };
}

/** Deletes up to `limit` intents older than `seconds` (longer than any writer lives). */
export async function purgeIntents(q: Queryable, seconds: number, limit: number): Promise<number> {
  const r = await q.query(
    `DELETE FROM route_intents WHERE intent_id IN (
       SELECT intent_id FROM route_intents WHERE created_at <= now() - make_interval(secs => $1) ORDER BY created_at LIMIT $2)`,
    [seconds, limit],
  );
  return r.rowCount ?? 0;
}
