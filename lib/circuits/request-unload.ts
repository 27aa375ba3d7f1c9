// DELETE /v2/circuits/{id}: the unload itself runs in the `unload` function, driven by the
// CircuitUnloadRequested event (at-least-once; unload is idempotent).
import { NotFoundError, type Queryable } from '../db/circuits.js';
import { CIRCUIT_UNLOAD_REQUESTED, type Publisher } from '../events.js';
import type { Runtime } from '../runtime.js';
import { classifyFailure } from './errors.js';

export async function requestUnload(rt: Runtime, publisher: Publisher, id: string): Promise<{ alreadyDeleted: boolean }> {
  let row;
  try {
    const r = await (rt.db as unknown as Queryable).query<{ deleted: boolean }>(
      'SELECT deleted_at IS NOT NULL AS deleted FROM circuits WHERE id = $1',
      [id],
    );
    row = r.rows[0];
  } catch (err) {
    throw classifyFailure(err, 'database');
  }
  if (row === undefined) throw new NotFoundError(`circuit ${id} does not exist`);
  // Published even when already deleted: a retried DELETE must be able to finish an unload
  // whose first event was lost; the unload function makes duplicates no-ops.
  await publisher.publish([{ detailType: CIRCUIT_UNLOAD_REQUESTED, detail: { circuitId: id } }]);
  return { alreadyDeleted: row.deleted };
}
