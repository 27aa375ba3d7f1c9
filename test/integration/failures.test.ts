// Dependencies out of reach: propagate fails with a typed error within a bounded time and
// leaves no partial state in etcd or the database.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { closeRuntime, createRuntime, Invocation, type Runtime } from '../../lib/runtime.js';
import { updateRoutes } from '../../lib/circuits/update-routes.js';
import { propagate } from '../../lib/circuits/propagate.js';
import { readCircuit } from '../../lib/db/circuits.js';
import { lockPrefix, metaKey } from '../../lib/etcd/index.js';
import { workerRoot } from '../../lib/traefik/names.js';
import { DependencyError } from '../../lib/errors.js';
import { closedPort } from '../support/fake-backends.js';
import { db, keysUnder, route, seedCircuit, testConfig, testRuntime } from '../support/rt.js';


let rt: Runtime;
beforeAll(() => {
  rt = testRuntime();
});
afterAll(() => closeRuntime(rt));

describe('dependency failures', () => {
  it('etcd unreachable: DependencyError(etcd) within the timeout, database untouched', async () => {
    const c = await seedCircuit(rt);
    const broken = createRuntime(testConfig({ ETCD_ENDPOINTS: `http://127.0.0.1:${await closedPort()}`, ETCD_TIMEOUT_MS: '500' }));
    const inv = new Invocation(broken);
    const started = Date.now();
    const err = await updateRoutes(inv, c.id, [route(5)]).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DependencyError);
    expect((err as DependencyError).dependency).toBe('etcd');
    expect(Date.now() - started).toBeLessThan(5000);
    expect((await readCircuit(db(rt), c.id))!.circuit.generation).toBe(1);
    await inv.close();
    await closeRuntime(broken);
  });

  it('database unreachable: DependencyError(database) within the timeout, etcd untouched and lock released', async () => {
    const c = await seedCircuit(rt);
    const inv0 = new Invocation(rt);
    await propagate(inv0, c.id);
    await inv0.close();
    const root = `${workerRoot(rt.config.traefikRoot, c.worker)}/`;
    const before = await keysUnder(rt.etcd, root);
    const url = new URL(process.env.DATABASE_URL!);
    url.port = String(await closedPort());
    const broken = createRuntime(
      testConfig({ TRAEFIK_ROOT: rt.config.traefikRoot, META_PREFIX: rt.config.metaPrefix, DATABASE_URL: url.toString(), DATABASE_TIMEOUT_MS: '1000' }),
    );
    const inv = new Invocation(broken);
    const started = Date.now();
    const err = await updateRoutes(inv, c.id, [route(5)]).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DependencyError);
    expect((err as DependencyError).dependency).toBe('database');
    expect(Date.now() - started).toBeLessThan(5000);
    expect([...(await keysUnder(rt.etcd, root))].sort()).toEqual([...before].sort());
    expect((await keysUnder(rt.etcd, lockPrefix(rt.config.metaPrefix, c.id))).size).toBe(0);
    expect((await keysUnder(rt.etcd, metaKey(rt.config.metaPrefix, c.id))).size).toBe(1);
    await inv.close();
    await closeRuntime(broken);
  });
});
