// Queued route changes in the real database (lib/db/intents.ts): the holder's one statement applies
// its change and the pending ones queued behind it in order, one generation each; withdrawn,
// foreign and unknown ones are left alone; a waiter's withdrawal and a holder's claim exclude each
// other, whichever comes first, including while the claim is in flight.
import { randomUUID } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import { closeRuntime } from '../../lib/runtime.js';
import { intentOutcome, purgeIntents, readCircuit, recordIntent, replaceRoutesCombined, withdrawIntent } from '../../lib/db/index.js';
import { fence, rawConnection, route, seedCircuit, testRuntime } from '../support/rt.js';

const rt = testRuntime();
afterAll(() => closeRuntime(rt));

let rev = 1000;
const nextFence = () => fence(++rev);

describe('replaceRoutesCombined', () => {
  it('applies our change then the pending queued ones in queue order, one generation each; the last routes win', async () => {
    const { id } = await seedCircuit(rt, { routes: [route(1)] });
    const other = await seedCircuit(rt, { routes: [route(1)] });
    const [own, b, c, d] = [[route(10)], [route(20), route(21)], [route(30)], [route(40)]];
    const [ib, ic, iw, iforeign, inone] = [randomUUID(), randomUUID(), randomUUID(), randomUUID(), randomUUID()];
    await recordIntent(rt.db, ib, id, b);
    await recordIntent(rt.db, ic, id, c);
    await recordIntent(rt.db, iw, id, d);
    await recordIntent(rt.db, iforeign, other.id, d);
    expect(await withdrawIntent(rt.db, iw, id)).toEqual({ status: 'withdrawn' });

    const r = await replaceRoutesCombined(rt.db, id, { routes: own, ifMatch: 1, intentId: undefined }, [ic, iw, iforeign, inone, ib], nextFence());
    expect(r).not.toBeNull();
    expect(r!.ownGeneration).toBe(2);
    // queue order, not recording order
    expect(r!.served).toEqual([{ intentId: ic, generation: 3 }, { intentId: ib, generation: 4 }]);
    expect(r!.view.circuit.generation).toBe(4);
    expect(r!.view.circuit.routes.map((x) => x.routeId)).toEqual(b.map((x) => x.routeId));
    expect((await readCircuit(rt.db, id))!.circuit.routes.map((x) => [x.routeId, x.host, x.port])).toEqual(b.map((x) => [x.routeId, x.host, x.port]));
    expect(await intentOutcome(rt.db, ic)).toEqual({ status: 'applied', generation: 3 });
    expect(await intentOutcome(rt.db, ib)).toEqual({ status: 'applied', generation: 4 });
    expect(await intentOutcome(rt.db, iw)).toEqual({ status: 'withdrawn' });
    expect(await intentOutcome(rt.db, iforeign)).toEqual({ status: 'pending' });
    expect(await intentOutcome(rt.db, inone)).toEqual({ status: 'unknown' });
    // a claimed change cannot be withdrawn any more: the waiter learns its generation
    expect(await withdrawIntent(rt.db, ib, id)).toEqual({ status: 'applied', generation: 4 });
  });

  it('with nothing queued, is replaceRoutes: our routes at the next generation, health kept for routes that stay', async () => {
    const keep = route(1);
    const { id } = await seedCircuit(rt, { routes: [keep, route(2)] });
    await rt.db.query(`UPDATE routes SET health_status = 'healthy', consecutive_successes = 3 WHERE route_id = $1`, [keep.routeId]);
    const r = await replaceRoutesCombined(rt.db, id, { routes: [keep, route(3)], ifMatch: undefined, intentId: undefined }, [], nextFence());
    expect(r!.served).toEqual([]);
    expect(r!.view.circuit.generation).toBe(2);
    expect(r!.view.circuit.routes.map((x) => [x.routeId, x.health.status])).toEqual([
      [keep.routeId, 'healthy'],
      [expect.any(String), 'unknown'],
    ]);
  });

  it('a route removed by one change of the batch and re-added by a later one starts over, as it would one by one; one kept throughout keeps its health', async () => {
    const [kept, bounced] = [route(1), route(2)];
    const { id } = await seedCircuit(rt, { routes: [kept, bounced] });
    await rt.db.query(`UPDATE routes SET health_status = 'healthy', consecutive_successes = 3 WHERE circuit_id = $1`, [id]);
    const [removes, readds, moves] = [randomUUID(), randomUUID(), randomUUID()];
    await recordIntent(rt.db, removes, id, [kept]);
    await recordIntent(rt.db, readds, id, [kept, bounced]);
    const r = await replaceRoutesCombined(rt.db, id, { routes: [kept, bounced], ifMatch: undefined, intentId: undefined }, [removes, readds], nextFence());
    expect(r!.served.map((x) => x.intentId)).toEqual([removes, readds]);
    expect(r!.view.circuit.routes.map((x) => [x.routeId, x.health.status, x.health.consecutiveSuccesses])).toEqual([
      [kept.routeId, 'healthy', 3],
      [bounced.routeId, 'unknown', 0],
    ]);
    // moved to another address on the way and back: also a new backend in between
    await rt.db.query(`UPDATE routes SET health_status = 'healthy', consecutive_successes = 3 WHERE circuit_id = $1`, [id]);
    await recordIntent(rt.db, moves, id, [kept, { ...bounced, port: bounced.port + 1 }]);
    const m = await replaceRoutesCombined(rt.db, id, { routes: [kept, bounced], ifMatch: undefined, intentId: undefined }, [moves], nextFence());
    expect(m!.served).toHaveLength(1);
    expect(m!.view.circuit.routes.map((x) => [x.routeId, x.health.status])).toEqual([
      [kept.routeId, 'healthy'],
      [bounced.routeId, 'unknown'],
    ]);
  });

  it('claims our own recorded change only while it is pending: applied by an earlier holder, it is not applied again', async () => {
    const { id } = await seedCircuit(rt, { routes: [route(1)] });
    const mine = randomUUID();
    const routes = [route(50)];
    await recordIntent(rt.db, mine, id, routes);
    // an earlier holder served it
    const earlier = await replaceRoutesCombined(rt.db, id, { routes: [route(60)], ifMatch: undefined, intentId: undefined }, [mine], nextFence());
    expect(earlier!.served).toEqual([{ intentId: mine, generation: 3 }]);
    // now we hold the lock ourselves and try to apply it as our own
    expect(await replaceRoutesCombined(rt.db, id, { routes, ifMatch: undefined, intentId: mine }, [], nextFence())).toBeNull();
    expect((await readCircuit(rt.db, id))!.circuit.generation).toBe(3);

    const pendingOwn = randomUUID();
    await recordIntent(rt.db, pendingOwn, id, [route(70)]);
    const r = await replaceRoutesCombined(rt.db, id, { routes: [route(70)], ifMatch: undefined, intentId: pendingOwn }, [], nextFence());
    expect(r!.ownGeneration).toBe(4);
    expect(await intentOutcome(rt.db, pendingOwn)).toEqual({ status: 'applied', generation: 4 });
  });

  it('a stale holder, an If-Match mismatch or an unloading circuit applies nothing and claims nothing', async () => {
    const { id } = await seedCircuit(rt, { routes: [route(1)] });
    const queued = randomUUID();
    await recordIntent(rt.db, queued, id, [route(2)]);
    const current = nextFence();
    await replaceRoutesCombined(rt.db, id, { routes: [route(3)], ifMatch: undefined, intentId: undefined }, [], current);

    expect(await replaceRoutesCombined(rt.db, id, { routes: [route(4)], ifMatch: undefined, intentId: undefined }, [queued], fence(Number(current.revision) - 1))).toBeNull();
    expect(await replaceRoutesCombined(rt.db, id, { routes: [route(4)], ifMatch: 1, intentId: undefined }, [queued], nextFence())).toBeNull();
    await rt.db.query('UPDATE circuits SET unload_requested_at = now() WHERE id = $1', [id]);
    expect(await replaceRoutesCombined(rt.db, id, { routes: [route(4)], ifMatch: undefined, intentId: undefined }, [queued], nextFence())).toBeNull();

    expect(await intentOutcome(rt.db, queued)).toEqual({ status: 'pending' });
    expect((await readCircuit(rt.db, id))!.circuit.generation).toBe(2);
  });
});

describe('withdrawIntent against a claim in flight', () => {
  it('settles a change whose record\'s answer was lost: absent, it is recorded withdrawn, so a late record fails and no holder claims it', async () => {
    const { id } = await seedCircuit(rt, { routes: [route(1)] });
    const lost = randomUUID();
    expect(await withdrawIntent(rt.db, lost, id)).toEqual({ status: 'withdrawn' });
    await expect(recordIntent(rt.db, lost, id, [route(2)])).rejects.toThrow(/duplicate key/);
    const own = [route(3)];
    const r = await replaceRoutesCombined(rt.db, id, { routes: own, ifMatch: undefined, intentId: undefined }, [lost], nextFence());
    expect(r!.served).toEqual([]);
    expect(r!.view.circuit.routes.map((x) => x.routeId)).toEqual(own.map((x) => x.routeId));
    // present and claimed, it reports the claim
    const applied = randomUUID();
    await recordIntent(rt.db, applied, id, [route(4)]);
    const h = await replaceRoutesCombined(rt.db, id, { routes: own, ifMatch: undefined, intentId: undefined }, [applied], nextFence());
    expect(h!.served).toEqual([{ intentId: applied, generation: 4 }]);
    expect(await withdrawIntent(rt.db, applied, id)).toEqual({ status: 'applied', generation: 4 });
  });

  it('waits for the holder and reports its claim: never "withdrawn" for an applied change', async () => {
    const { id } = await seedCircuit(rt, { routes: [route(1)] });
    const queued = randomUUID();
    await recordIntent(rt.db, queued, id, [route(2)]);
    // A holder's statement in flight, frozen between claiming and committing.
    const holder = await rawConnection(rt);
    try {
      await holder.query('BEGIN');
      const claimed = await holder.query(`SELECT 1 FROM route_intents WHERE intent_id = $1 AND status = 'pending' FOR UPDATE`, [queued]);
      expect(claimed.rowCount).toBe(1);
      await holder.query(`UPDATE route_intents SET status = 'applied', generation = 7, decided_at = now() WHERE intent_id = $1`, [queued]);
      let settled = false;
      const withdrawal = withdrawIntent(rt.db, queued, id).finally(() => (settled = true));
      await new Promise((r) => setTimeout(r, 300));
      expect(settled).toBe(false); // blocked on the holder's row lock
      await holder.query('COMMIT');
      expect(await withdrawal).toEqual({ status: 'applied', generation: 7 });
    } finally {
      holder.release();
    }
  });

  it('a withdrawal that commits first keeps the holder from claiming the change', async () => {
    const { id } = await seedCircuit(rt, { routes: [route(1)] });
    const queued = randomUUID();
    await recordIntent(rt.db, queued, id, [route(2)]);
    const waiter = await rawConnection(rt);
    try {
      await waiter.query('BEGIN');
      await waiter.query(`UPDATE route_intents SET status = 'withdrawn', decided_at = now() WHERE intent_id = $1 AND status = 'pending'`, [queued]);
      // the holder's statement runs now and waits for the waiter's row lock
      const own = [route(3)];
      const holder = replaceRoutesCombined(rt.db, id, { routes: own, ifMatch: undefined, intentId: undefined }, [queued], nextFence());
      await new Promise((r) => setTimeout(r, 300));
      await waiter.query('COMMIT');
      const r = await holder;
      expect(r!.served).toEqual([]);
      expect(r!.view.circuit.generation).toBe(2);
      expect(r!.view.circuit.routes.map((x) => x.routeId)).toEqual(own.map((x) => x.routeId));
      expect(await intentOutcome(rt.db, queued)).toEqual({ status: 'withdrawn' });
    } finally {
      waiter.release();
    }
  });
});

describe('purgeIntents', () => {
  it('forgets queued changes older than the retention, whatever their state, and keeps younger ones', async () => {
    const { id } = await seedCircuit(rt, { routes: [route(1)] });
    const [old, oldApplied, young] = [randomUUID(), randomUUID(), randomUUID()];
    for (const i of [old, oldApplied, young]) await recordIntent(rt.db, i, id, [route(2)]);
    await replaceRoutesCombined(rt.db, id, { routes: [route(3)], ifMatch: undefined, intentId: undefined }, [oldApplied], nextFence());
    await rt.db.query(`UPDATE route_intents SET created_at = now() - interval '2 hours' WHERE intent_id = ANY($1::uuid[])`, [[old, oldApplied]]);
    expect(await purgeIntents(rt.db, 3600, 1000)).toBeGreaterThanOrEqual(2);
    expect(await intentOutcome(rt.db, old)).toEqual({ status: 'unknown' });
    expect(await intentOutcome(rt.db, oldApplied)).toEqual({ status: 'unknown' });
    expect(await intentOutcome(rt.db, young)).toEqual({ status: 'pending' });
  });
});
