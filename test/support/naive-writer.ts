// The reference system's write path, kept as a negative control: the snapshot is taken before
// any lock, and its rendering is written with unconditional puts. Tests (and the chaos harness)
// use it to show that their checks can see the bug circuitry prevents.
import type { Runtime } from '../../lib/runtime.js';
import type { CircuitView } from '../../lib/model.js';
import { render } from '../../lib/traefik/render.js';
import { enc } from '../../lib/etcd/keys.js';

export async function naiveWrite(rt: Runtime, snapshot: CircuitView): Promise<void> {
  const keys = render(snapshot.circuit, snapshot.worker, { traefikRoot: rt.config.traefikRoot });
  for (const [k, v] of keys) await rt.etcd.kv.put({ key: enc(k), value: enc(v) });
}
