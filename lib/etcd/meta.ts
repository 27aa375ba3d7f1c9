// The value of a circuit's meta key: what etcd holds of the circuit (generation, tombstone) and
// who wrote it. Pure.

export interface CircuitMeta {
  generation: number;
  deleted: boolean;
  worker: string | null;
  /** `<lease hex>@<lock create revision>` of the writer: tells a retried apply it already won. */
  writer: string;
  at: string;
}

export interface SeenMeta {
  /** '0' when the meta key does not exist. */
  modRevision: string;
  value: CircuitMeta | null;
}

export function encodeMeta(m: CircuitMeta): string {
  return JSON.stringify(m);
}

export function decodeMeta(s: string): CircuitMeta | null {
  try {
    const v = JSON.parse(s) as Partial<CircuitMeta>;
    if (typeof v.generation !== 'number' || typeof v.deleted !== 'boolean') return null;
    return { generation: v.generation, deleted: v.deleted, worker: v.worker ?? null, writer: v.writer ?? '', at: v.at ?? '' };
  } catch {
    return null;
  }
}

/** "<leaseHex>@<createRevision>" → parts; null when malformed. */
export function parseWriter(writer: string): { leaseHex: string; createRevision: number } | null {
  const m = /^([0-9a-f]+)@(\d+)$/.exec(writer);
  return m ? { leaseHex: m[1]!, createRevision: Number(m[2]) } : null;
}
