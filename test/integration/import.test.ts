// Adoption: circuitry in front of an existing Traefik fleet. A worker root holds an operator's
// static router, circuits another coordinator wrote (Backend.AI's layout, which circuitry's
// rendering follows) and a tree that cannot be mapped. `circuitry import` takes over the
// mappable circuits so that the next sweep leaves every key byte for byte (and revision for
// revision) as it was, skips the rest with a reason, and never touches the operator's keys.
import { randomUUID } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Invocation } from '../../lib/runtime.js';
import { applyImport, planImport } from '../../lib/circuits/import.js';
import { readCircuit, registerWorker } from '../../lib/db/index.js';
import { decodeMeta, metaKey } from '../../lib/etcd/index.js';
import { render } from '../../lib/traefik/render.js';
import { workerRoot } from '../../lib/traefik/names.js';
import { createCircuitSchema, newCircuit, type Circuit, type Worker } from '../../lib/model.js';
import { runSweep } from '../../lib/health/sweep.js';
import { isolatedRuntime, type IsolatedRuntime } from '../support/fake-backends.js';
import { keysUnder } from '../support/rt.js';

let iso: IsolatedRuntime;
let inv: Invocation;
beforeEach(async () => {
  iso = await isolatedRuntime({ TRAEFIK_EXTRA_MIDDLEWARES: 'compress@file' });
  inv = new Invocation(iso.rt);
});
afterEach(async () => {
  await inv.close();
  await iso.close();
});

const put = (k: string, v: string) => iso.rt.etcd.kv.put({ key: Buffer.from(k), value: Buffer.from(v) });

/** What another coordinator wrote: the keys of a circuit circuitry's database does not know. */
async function foreignCircuit(worker: Worker, spec: { protocol: 'http' | 'tcp'; frontend: Circuit['frontend']; ratios: number[]; allow: string[] }): Promise<{ id: string; keys: Map<string, string> }> {
  const id = randomUUID();
  const input = createCircuitSchema().parse({
    id,
    worker: worker.authority,
    protocol: spec.protocol,
    appMode: 'interactive',
    frontend: spec.frontend,
    allowedClientIps: spec.allow,
    routes: spec.ratios.map((r, i) => ({ routeId: randomUUID(), sessionId: randomUUID(), host: `10.1.${i}.${i + 1}`, port: 30000 + i, trafficRatio: r })),
  });
  const keys = render(newCircuit({ ...input, id }), worker, { traefikRoot: iso.rt.config.traefikRoot, extraMiddlewares: iso.rt.config.traefikExtraMiddlewares });
  for (const [k, v] of keys) await put(k, v);
  return { id, keys };
}

async function snapshot(root: string): Promise<Map<string, { value: string; mod: string }>> {
  const r = await iso.rt.etcd.kv.range({ key: Buffer.from(`${root}/`), range_end: Buffer.from(`${root}0`) });
  return new Map(r.kvs.map((kv) => [kv.key.toString(), { value: kv.value.toString(), mod: kv.mod_revision }]));
}

describe('circuitry import', () => {
  it('round-trips http/tcp × port/wildcard × weights × allow-lists byte for byte, skips what it cannot map, and leaves foreign keys alone', async () => {
    const worker: Worker = { authority: `w-${randomUUID().slice(0, 8)}`, hostname: 'gpu-7.example.com', wildcardDomain: 'apps.example.com', tls: true };
    await registerWorker(iso.rt.db, worker);
    const root = workerRoot(iso.rt.config.traefikRoot, worker.authority);
    const specs = [
      { protocol: 'http' as const, frontend: { mode: 'port' as const, port: 10201 }, ratios: [1], allow: [] },
      { protocol: 'http' as const, frontend: { mode: 'port' as const, port: 10202 }, ratios: [1, 0.5, 0.25], allow: ['10.0.0.0/8'] },
      { protocol: 'http' as const, frontend: { mode: 'wildcard' as const, subdomain: 'llama' }, ratios: [0.3, 0.7], allow: ['10.0.0.0/8', '192.168.1.0/24'] },
      { protocol: 'tcp' as const, frontend: { mode: 'port' as const, port: 10203 }, ratios: [1, 1], allow: [] },
      { protocol: 'tcp' as const, frontend: { mode: 'wildcard' as const, subdomain: 'ssh' }, ratios: [1], allow: ['172.16.0.0/12'] },
    ];
    const circuits = [];
    for (const s of specs) circuits.push({ ...(await foreignCircuit(worker, s)), spec: s });
    // An operator's own static router, and a tree circuitry would write differently (weights 2:2).
    await put(`${root}/http/routers/ops-dashboard/rule`, 'Host(`ops.example.com`)');
    await put(`${root}/http/routers/ops-dashboard/service`, 'dashboard@file');
    const odd = randomUUID();
    await put(`${root}/http/routers/bai_router_${odd}/rule`, 'Host(`gpu-7.example.com`)');
    await put(`${root}/http/routers/bai_router_${odd}/service`, `bai_service_${odd}`);
    await put(`${root}/http/routers/bai_router_${odd}/entryPoints/0`, 'portproxy_10299');
    await put(`${root}/http/routers/bai_router_${odd}/tls`, 'true');
    await put(`${root}/http/routers/bai_router_${odd}/middlewares/0`, 'compress@file');
    await put(`${root}/http/services/bai_service_${odd}/loadBalancer/servers/0/url`, 'http://10.9.0.1:1/');
    await put(`${root}/http/services/bai_service_${odd}/loadBalancer/servers/0/weight`, '2');
    await put(`${root}/http/services/bai_service_${odd}/loadBalancer/servers/1/url`, 'http://10.9.0.2:1/');
    await put(`${root}/http/services/bai_service_${odd}/loadBalancer/servers/1/weight`, '2');

    const dry = await planImport(iso.rt, worker.authority);
    expect(dry.foreignKeys).toBe(2);
    expect(dry.candidates.filter((c) => c.status === 'importable').map((c) => c.circuitId).sort()).toEqual(circuits.map((c) => c.id).sort());
    const skipped = dry.candidates.find((c) => c.circuitId === odd)!;
    expect(skipped.status).toBe('skipped');
    expect(skipped.reason).toMatch(/weights \[2, 2\]/);
    // A dry run changes nothing.
    const before = await snapshot(root);
    for (const c of circuits) expect(await readCircuit(iso.rt.db, c.id)).toBeNull();

    const applied = await applyImport(inv, dry);
    expect(applied.candidates.filter((c) => c.status === 'imported')).toHaveLength(circuits.length);
    const s = await runSweep(inv, { publish: async () => {} });
    expect(s.errors).toEqual([]);
    expect(s.orphanKeys).toBe(skipped.keys); // the unmapped tree stays, reported
    expect(s.foreignKeys).toBe(2);

    // Byte for byte and revision for revision: nothing under the root was rewritten.
    expect(await snapshot(root)).toEqual(before);
    for (const c of circuits) {
      const v = (await readCircuit(iso.rt.db, c.id))!;
      expect(v.circuit.protocol).toBe(c.spec.protocol);
      expect(v.circuit.frontend).toEqual(c.spec.frontend);
      expect(v.circuit.allowedClientIps).toEqual(c.spec.allow);
      expect(v.circuit.routes.map((r) => [r.host, r.port])).toEqual(c.spec.ratios.map((_, i) => [`10.1.${i}.${i + 1}`, 30000 + i]));
      const m = (await keysUnder(iso.rt.etcd, metaKey(iso.rt.config.metaPrefix, c.id))).get(metaKey(iso.rt.config.metaPrefix, c.id));
      expect(decodeMeta(m!)).toMatchObject({ generation: 1, deleted: false });
    }
    // From now on they are circuitry's: the next plan finds nothing new to import.
    const again = await planImport(iso.rt, worker.authority);
    expect(again.candidates.map((c) => c.circuitId)).toEqual([odd]);
  });

  it('refuses a worker that is not registered, naming the fix', async () => {
    await expect(planImport(iso.rt, 'w-unknown')).rejects.toThrow(/register it first \(PUT \/v2\/workers\/w-unknown\)/);
  });

  it('skips a tree whose frontend is already taken in the database', async () => {
    const worker: Worker = { authority: `w-${randomUUID().slice(0, 8)}`, hostname: 'gpu-8.example.com', wildcardDomain: null, tls: false };
    await registerWorker(iso.rt.db, worker);
    const first = await foreignCircuit(worker, { protocol: 'http', frontend: { mode: 'port', port: 10400 }, ratios: [1], allow: [] });
    const twin = await foreignCircuit(worker, { protocol: 'http', frontend: { mode: 'port', port: 10400 }, ratios: [1, 1], allow: [] });
    const plan = await applyImport(inv, await planImport(iso.rt, worker.authority));
    const statuses = new Map(plan.candidates.map((c) => [c.circuitId, c]));
    expect([statuses.get(first.id)!.status, statuses.get(twin.id)!.status].sort()).toEqual(['imported', 'skipped']);
    expect([statuses.get(first.id)!.reason ?? '', statuses.get(twin.id)!.reason ?? ''].join(' ')).toMatch(/port 10400 is already in use/);
  });
});
