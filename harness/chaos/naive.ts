// The negative control: the reference system's write path, driven by the same workload.
//   - a per-process mutex per circuit (nothing across processes),
//   - a snapshot of the circuit read BEFORE the lock, and the health sweep writes that snapshot
//     (with its probe results) after probing,
//   - unconditional etcd puts (and an unconditional delete of the circuit's keys on unload), in
//     separate requests, with no fencing.
// So that the harness's checkers see these writes in the same vocabulary, each write ends with
// an unconditional put of the circuit's meta (generation of what it wrote, tombstone on unload,
// writer "naive": it holds no lock). The reference system had no meta at all; writing one only
// gives the checkers the commit point of the unload and the generation a write claims.
import type { Runtime } from '../../lib/runtime.js';
import { createCircuit, markDeleted, pageLiveCircuits, readCircuit, replaceRoutes, type DbFence, type Queryable } from '../../lib/db/index.js';
import type { CircuitView, CreateCircuitInput, RouteInput } from '../../lib/model.js';
import { circuitKeyPrefixes, render, workerRoot } from '../../lib/traefik/index.js';
import { deadline, enc, metaKey, prefixEnd } from '../../lib/etcd/index.js';
import type { Prober } from '../../lib/health/index.js';

/** The reference system fenced nothing: a fence that wins over every other makes the check a no-op. */
const NO_FENCE: DbFence = { epoch: Number.MAX_SAFE_INTEGER, revision: '0' };

export type NaiveOutcome = { status: 'ok' | 'not-found' | 'noop'; generation?: number; detail?: string };

export class NaiveWriter {
  private readonly locks = new Map<string, Promise<void>>();

  constructor(
    private readonly rt: Runtime,
    /** Called between the snapshot and the write (the harness may pause the process there). */
    private readonly critical: (point: string) => Promise<void>,
  ) {}

  private get db(): Queryable {
    return this.rt.db;
  }

  /** The reference system's in-process mutex: serialises this process only. */
  private async withLocalLock<T>(id: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.locks.get(id) ?? Promise.resolve();
    let done!: () => void;
    const mine = new Promise<void>((r) => (done = r));
    const tail = prev.then(() => mine);
    this.locks.set(id, tail);
    await prev;
    try {
      return await fn();
    } finally {
      done();
      if (this.locks.get(id) === tail) this.locks.delete(id);
    }
  }

  private timeout() {
    return deadline(this.rt.config.etcd.timeoutMs);
  }

  private async putMeta(view: CircuitView, deleted: boolean): Promise<void> {
    const value = JSON.stringify({
      generation: view.circuit.generation,
      deleted,
      worker: view.circuit.worker,
      writer: 'naive',
      at: new Date().toISOString(),
    });
    await this.rt.etcd.kv.put({ key: enc(metaKey(this.rt.config.metaPrefix, view.circuit.id)), value: enc(value) }, this.timeout());
  }

  private async deleteAll(view: CircuitView): Promise<void> {
    for (const p of circuitKeyPrefixes(workerRoot(this.rt.config.traefikRoot, view.circuit.worker), view.circuit.id)) {
      await this.rt.etcd.kv.deleteRange({ key: enc(p), range_end: prefixEnd(enc(p)) }, this.timeout());
    }
  }

  /** Unconditional write of a rendering: optionally clear the circuit's keys first, then put each key. */
  async write(view: CircuitView, clear: boolean): Promise<void> {
    const keys = render(view.circuit, view.worker, { traefikRoot: this.rt.config.traefikRoot });
    if (clear) await this.deleteAll(view);
    for (const [k, v] of keys) await this.rt.etcd.kv.put({ key: enc(k), value: enc(v) }, this.timeout());
    await this.putMeta(view, view.circuit.deletedAt !== null);
  }

  async create(id: string, input: CreateCircuitInput): Promise<NaiveOutcome> {
    const view = await createCircuit(this.db, id, input);
    await this.withLocalLock(id, () => this.write(view, false));
    return { status: 'ok', generation: view.circuit.generation };
  }

  async updateRoutes(id: string, routes: readonly RouteInput[], ifMatch?: number): Promise<NaiveOutcome> {
    const snapshot = await readCircuit(this.db, id);
    if (snapshot === null) return { status: 'not-found' };
    await this.critical('naive:after-snapshot');
    return this.withLocalLock(id, async () => {
      const view = await replaceRoutes(this.db, id, routes, ifMatch, NO_FENCE);
      await this.write(view, true);
      return { status: 'ok', generation: view.circuit.generation };
    });
  }

  async unload(id: string): Promise<NaiveOutcome> {
    const snapshot = await readCircuit(this.db, id);
    if (snapshot === null) return { status: 'not-found' };
    await this.critical('naive:after-snapshot');
    return this.withLocalLock(id, async () => {
      const view = await markDeleted(this.db, id, NO_FENCE);
      if (view === null) return { status: 'not-found' };
      await this.deleteAll(view);
      await this.putMeta(view, true);
      return { status: 'ok', generation: view.circuit.generation };
    });
  }

  /**
   * The reference health checker: snapshot every live circuit, probe the routes (outside any
   * lock), then write each snapshot with the probe results, unconditionally.
   */
  async sweep(prober: Prober): Promise<{ circuits: number; written: number }> {
    const snapshot = await pageLiveCircuits(this.db, null, 1000);
    const probed = await Promise.all(
      snapshot.map(async (view) => {
        const hc = view.circuit.healthCheck;
        if (hc === null) return view;
        const routes = await Promise.all(
          view.circuit.routes.map(async (r) => {
            const p = await prober.probe({ protocol: view.circuit.protocol, host: r.host, port: r.port, path: hc.path, timeoutMs: hc.timeoutMs, expectedStatus: hc.expectedStatus });
            return { ...r, health: { ...r.health, status: p.ok ? ('healthy' as const) : ('unhealthy' as const) } };
          }),
        );
        return { ...view, circuit: { ...view.circuit, routes } };
      }),
    );
    await this.critical('naive:after-snapshot');
    let written = 0;
    for (const view of probed) {
      await this.withLocalLock(view.circuit.id, () => this.write(view, false));
      written++;
    }
    return { circuits: snapshot.length, written };
  }

  /** The reference system's periodic full resync: every live circuit, from a fresh read, unconditionally. */
  async resync(): Promise<number> {
    const live = await pageLiveCircuits(this.db, null, 10_000);
    for (const view of live) await this.withLocalLock(view.circuit.id, () => this.write(view, true));
    return live.length;
  }
}
