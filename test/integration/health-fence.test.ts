// applyHealthChanges (the locked half of a health update) must return the routes as committed
// and must be fenced like every change under a circuit lock.
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { closeRuntime, type Runtime } from '../../lib/runtime.js';
import { applyHealthChanges, readCircuit, replaceRoutes } from '../../lib/db/index.js';
import { StaleFenceError } from '../../lib/errors.js';
import { db, fence, rawConnection, route, seedCircuit, testRuntime } from '../support/rt.js';

let rt: Runtime;
beforeAll(() => {
  rt = testRuntime();
});
afterAll(() => closeRuntime(rt));

describe('applyHealthChanges', () => {
  it('returns the committed routes when another generation commits while it waits for the row', async () => {
    const r1 = route(1);
    const r2 = route(2);
    const c = await seedCircuit(rt, { routes: [r1, r2] });
    // Another writer removes r1 in an open transaction that holds the circuit row.
    const other = await rawConnection(rt);
    try {
      await other.query('BEGIN');
      await other.query('UPDATE circuits SET generation = generation + 1 WHERE id = $1', [c.id]);
      await other.query('DELETE FROM routes WHERE circuit_id = $1 AND route_id = $2', [c.id, r1.routeId]);
      const pending = applyHealthChanges(db(rt), c.id, [], fence(1));
      await sleep(300); // the statement has taken its snapshot and waits for the row lock
      await other.query('COMMIT');
      const view = await pending;
      expect(view!.circuit.generation).toBe(2);
      expect(view!.circuit.routes.map((r) => r.routeId)).toEqual([r2.routeId]);
    } finally {
      other.release();
    }
  });

  it('refuses a writer whose lock is older than the last locked change', async () => {
    const c = await seedCircuit(rt);
    await replaceRoutes(db(rt), c.id, [route(5)], undefined, fence(1000));
    await expect(applyHealthChanges(db(rt), c.id, [], fence(999))).rejects.toBeInstanceOf(StaleFenceError);
    expect((await readCircuit(db(rt), c.id))!.circuit.generation).toBe(2);
  });
});
