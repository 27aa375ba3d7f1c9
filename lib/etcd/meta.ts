// The value of a circuit's meta key: what etcd holds of the circuit (generation, tombstone) and
// who wrote it. Pure.

export interface CircuitMeta {
  generation: number;
  deleted: boolean;
  worker: string | null;
  /** `<lease hex>@<lock create revision>` of the writer: tells a retried apply it already won. */
  writer: string;
  at: string;
  /**
   * Changes this writer applied for contenders queued behind it (their note, the generation it got),
   * whose lock keys it removed in the same transaction: how they learn they were served.
   */
  served?: Array<[string, number]>;
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
    const served = Array.isArray(v.served) ? v.served.filter((x): x is [string, number] => Array.isArray(x) && typeof x[0] === 'string' && typeof x[1] === 'number') : undefined;
    return { generation: v.generation, deleted: v.deleted, worker: v.worker ?? null, writer: v.writer ?? '', at: v.at ?? '', ...(served && served.length > 0 ? { served } : {}) };
  } catch {
    return null;
  }
}

/** "<leaseHex>@<createRevision>" → parts; null when malformed. */
export function parseWriter(writer: string): { leaseHex: string; createRevision: number } | null {
  const m = /^([0-9a-f]+)@(\d+)$/.exec(writer);
  return m ? { leaseHex: m[1]!, createRevision: Number(m[2]) } : null;
}

/** What a meta value says about the contender that queued with `note`: the generation it was served at. */
export function servedGeneration(metaValue: string, note: string): number | undefined {
  return decodeMeta(metaValue)?.served?.find(([n]) => n === note)?.[1];
}
