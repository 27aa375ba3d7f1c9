// The value of the fencing epoch key (layout.epochKey). Pure.
//
// The database's fences are (epoch, lock create revision) pairs, compared in that order. Create
// revisions only grow within one etcd history; a restore from a snapshot or a rebuilt cluster
// starts another history whose revisions may be lower than fences already recorded. A new epoch
// (greater than every earlier one) makes every fence taken in the new history win over the old
// ones, so writers never stall behind revisions that no longer exist (DESIGN I3).

export interface EpochValue {
  epoch: number;
  /** Random id of this epoch's start: a snapshot restored from before it carries another one. */
  marker: string;
}

export const encodeEpoch = (v: EpochValue): string => JSON.stringify(v);

export function decodeEpoch(s: string): EpochValue | null {
  try {
    const v = JSON.parse(s) as Partial<EpochValue>;
    if (typeof v.epoch !== 'number' || !Number.isSafeInteger(v.epoch) || v.epoch < 1 || typeof v.marker !== 'string') return null;
    return { epoch: v.epoch, marker: v.marker };
  } catch {
    return null;
  }
}
