// The chaos harness's checkers: pure functions over a recorded etcd history (every event of every
// revision, in order), the database's generation history and the final state. No I/O here, so
// each rule is unit-tested with hand-made histories (test/unit/chaos-check.test.ts).
//
// Vocabulary. A *revision* r is one etcd transaction; all its events carry mod_revision r.
// S_r is the key/value state after r (S_{r-1} the state the transaction saw). For a circuit C:
//   traefik keys(C)  keys under <traefikRoot>/worker_<a>/ that name C (names.ts circuitIdOfKey)
//   meta(C)          <metaPrefix>/circuits/<C>, JSON {generation, deleted, writer, ...}
//   locks(C)         keys under <metaPrefix>/locks/<C>/ (one per contending lease)
//   servers(C, S)    the backend addresses host:port of the servers/N/url|address keys of C in S
//   DB(C, g)         the circuit as the database committed it at generation g (recorded by a
//                    deferred trigger at commit: routes with their health, deletion flag)
//
// I1 No resurrection.
//   I1/put-after-unload   once a revision r_u put meta(C) with deleted:true, no revision r > r_u
//                         puts any traefik key of C, and none puts meta(C) with deleted:false
//                         (meta-revived).
//   I1/generation-regressed  every put of meta(C) carries a generation >= every generation of
//                         meta(C) put before it: etcd never goes back to an older committed state.
//   I1/route-not-in-database  whenever an address X appears in servers(C) at r (X in S_r, not in
//                         S_{r-1}), X is a route of DB(C, g) where g is the generation meta(C) holds
//                         in S_r (route-without-meta when there is none; unknown-generation when the
//                         database never committed g).
//   Together these give "a removed route never comes back unless a later committed update re-added
//   it": if X was removed by generation h (applied before r), then g >= h by monotonicity and X is
//   in DB(C, g), so some committed update between h and g put X back. A write rendered from a stale
//   snapshot shows up either as a generation regression (it carries its snapshot's generation) or
//   as a route that the generation it claims does not have.
// I3 Fencing. Every revision that writes a traefik key of C or meta(C) is attributed to a writer:
//   the `writer` field "<leaseHex>@<lockCreateRevision>" of the meta(C) put in the same revision,
//   or else the lock key of C deleted in the same revision (apply-and-release without meta, e.g.
//   orphan removal), or else the lock key of C rewritten in the same revision (an intermediate
//   step of a staged apply advances its writer's lock key). Then in S_{r-1} the key <metaPrefix>/locks/<C>/<leaseHex> must exist with that
//   create revision and be the lowest create revision under locks(C) (I3/lock-not-held); a write
//   that cannot be attributed is I3/unattributed.
// I4 Atomic, exact view. After a revision that puts meta(C) at generation g, the traefik keys of
//   C equal exactly render(DB(C, g)) (nothing for a tombstone): Traefik never sees half a change or
//   a rendering of something the database did not commit at that generation.
// I2 Convergence (checkConvergence): after activity stopped and one sweep ran, the keys under the
//   Traefik root equal exactly the union of render(live circuits), and every meta(C) agrees with
//   the database (generation, tombstone), with no meta for an unknown circuit.
// R  Honest responses (checkResponses): a request whose database change committed must not be
//   answered "nothing was changed" (DESIGN §3: "say so in the response").
// I5 Only fresh data is written (checkFreshness), dated by the one clock every process shares:
//   I5/stale-render  no etcd write of C (a meta put of generation g, dated by when its transaction
//                    was sent) renders a generation older than one the database had committed for
//                    C before it (a commit of g' > g whose commit time precedes the send);
//   I5/commit-under-superseded-lock  no database change of C commits under a fence f after a
//                    statement of a newer lock holder of C (fence f' > f) has completed: every
//                    holder, reader or writer, supersedes the older ones in the database too.
// I6 Nothing accepted is lost (checkAccepted): after the grace period and one sweep, every
//   accepted DELETE (202) has its circuit deleted and its keys gone, and every accepted create
//   or update (2xx) is in etcd (the meta holds its generation or a later one) unless the circuit
//   was deleted since.
import { circuitIdOfKey, workerRoot } from '../../lib/traefik/index.js';
import { circuitOfMetaKey, decodeMeta, lockPrefix, metaKey, parseLockKey, parseWriter, type CircuitMeta } from '../../lib/etcd/index.js';

export type Invariant = 'I1' | 'I2' | 'I3' | 'I4' | 'I5' | 'I6' | 'R';
export const INVARIANTS: readonly Invariant[] = ['I1', 'I2', 'I3', 'I4', 'I5', 'I6', 'R'];

export interface HistEvent {
  rev: number;
  type: 'put' | 'delete';
  key: string;
  /** '' for deletes. */
  value: string;
  /** Create revision of the key (puts); 0 for deletes. */
  create: number;
  /** Lease id (decimal string) the key is attached to, '0' when none. */
  lease?: string;
}

export interface GenerationRecord {
  circuitId: string;
  generation: number;
  deleted: boolean;
  /** Every route address host:port of the circuit at that generation (healthy or not). */
  addresses: readonly string[];
  /** render(DB(C, g)): the exact traefik keys; omit to skip I4 for this generation. */
  keys?: ReadonlyMap<string, string>;
}

export interface Layout {
  traefikRoot: string;
  metaPrefix: string;
}

export interface Violation {
  invariant: Invariant;
  rule: string;
  message: string;
  circuitId?: string;
  revision?: number;
  key?: string;
  /** Revisions that together show the violation (the slice is cut around them). */
  revisions: number[];
  /** Leases (hex) of the writers involved. */
  leases: string[];
  /** For R: the operation. */
  op?: { worker: number; i: number; kind: string };
}

export interface HistoryStats {
  revisions: number;
  events: number;
  circuitWrites: number;
  tombstones: number;
  lockAcquisitions: number;
}

export interface HistoryReport {
  violations: Violation[];
  /** Violations counted per invariant (including those beyond the stored cap). */
  counts: Record<Invariant, number>;
  byRule: Record<string, number>;
  stats: HistoryStats;
}

interface KvState {
  value: string;
  create: number;
  mod: number;
}

type MetaValue = Pick<CircuitMeta, 'generation' | 'deleted' | 'writer'>;

export { parseWriter };

/** host:port of a servers/N/url (http://h:p/) or servers/N/address (h:p) value. */
export function serverAddress(key: string, value: string): string | null {
  if (/\/servers\/\d+\/url$/.test(key)) {
    try {
      const u = new URL(value);
      return `${u.hostname}:${u.port || (u.protocol === 'https:' ? '443' : '80')}`;
    } catch {
      return value;
    }
  }
  if (/\/servers\/\d+\/address$/.test(key)) return value;
  return null;
}

type KeyClass =
  | { kind: 'traefik'; circuitId: string }
  | { kind: 'meta'; circuitId: string }
  | { kind: 'lock'; circuitId: string; leaseHex: string }
  | { kind: 'other' };

export function classifier(layout: Layout): (key: string) => KeyClass {
  const rootPrefix = `${layout.traefikRoot}/`;
  return (key) => {
    if (key.startsWith(rootPrefix)) {
      const seg = key.slice(rootPrefix.length).split('/')[0] ?? '';
      if (!seg.startsWith('worker_')) return { kind: 'other' };
      const id = circuitIdOfKey(workerRoot(layout.traefikRoot, seg.slice('worker_'.length)), key);
      return id === null ? { kind: 'other' } : { kind: 'traefik', circuitId: id };
    }
    const metaOf = circuitOfMetaKey(layout.metaPrefix, key);
    if (metaOf !== null) return { kind: 'meta', circuitId: metaOf };
    const lock = parseLockKey(layout.metaPrefix, key);
    if (lock !== null) return { kind: 'lock', ...lock };
    return { kind: 'other' };
  };
}

const emptyCounts = (): Record<Invariant, number> => ({ I1: 0, I2: 0, I3: 0, I4: 0, I5: 0, I6: 0, R: 0 });

/** Collects violations, keeping at most `cap` per rule (all are counted). */
class Sink {
  readonly list: Violation[] = [];
  readonly counts = emptyCounts();
  readonly byRule: Record<string, number> = {};
  constructor(private readonly cap: number) {}
  add(v: Violation): void {
    this.counts[v.invariant]++;
    const rule = `${v.invariant}/${v.rule}`;
    const n = (this.byRule[rule] = (this.byRule[rule] ?? 0) + 1);
    if (n <= this.cap) this.list.push(v);
  }
}

const genKey = (c: string, g: number): string => `${c}#${g}`;

function mapsEqual(a: ReadonlyMap<string, string>, b: ReadonlyMap<string, string>): { missing: string[]; extra: string[]; differs: string[] } {
  const missing: string[] = [];
  const extra: string[] = [];
  const differs: string[] = [];
  for (const [k, v] of b) {
    if (!a.has(k)) missing.push(k);
    else if (a.get(k) !== v) differs.push(k);
  }
  for (const k of a.keys()) if (!b.has(k)) extra.push(k);
  return { missing, extra, differs };
}

/** I1, I3 and I4 over a complete history (events sorted by revision, in transaction order). */
export function checkHistory(
  layout: Layout,
  events: readonly HistEvent[],
  generations: readonly GenerationRecord[],
  opts: { capPerRule?: number } = {},
): HistoryReport {
  const sink = new Sink(opts.capPerRule ?? 50);
  const classify = classifier(layout);
  const gens = new Map(generations.map((g) => [genKey(g.circuitId, g.generation), g]));
  const state = new Map<string, KvState>();
  const traefikKeys = new Map<string, Set<string>>(); // circuit -> its live traefik keys
  const lockKeys = new Map<string, Set<string>>(); // circuit -> live lock keys
  const maxGen = new Map<string, { generation: number; rev: number }>();
  const tombstonedAt = new Map<string, number>();
  const stats: HistoryStats = { revisions: 0, events: events.length, circuitWrites: 0, tombstones: 0, lockAcquisitions: 0 };

  const indexOf = (m: Map<string, Set<string>>, c: string): Set<string> => {
    let s = m.get(c);
    if (s === undefined) m.set(c, (s = new Set()));
    return s;
  };
  const serversOf = (c: string): Set<string> => {
    const out = new Set<string>();
    for (const k of traefikKeys.get(c) ?? []) {
      const a = serverAddress(k, state.get(k)?.value ?? '');
      if (a !== null) out.add(a);
    }
    return out;
  };
  const keysOf = (c: string): Map<string, string> => {
    const out = new Map<string, string>();
    for (const k of traefikKeys.get(c) ?? []) out.set(k, state.get(k)!.value);
    return out;
  };
  const metaKeyOf = (c: string): string => metaKey(layout.metaPrefix, c);
  const lockKeyOf = (c: string, leaseHex: string): string => `${lockPrefix(layout.metaPrefix, c)}${leaseHex}`;

  let i = 0;
  while (i < events.length) {
    const r = events[i]!.rev;
    let j = i;
    while (j < events.length && events[j]!.rev === r) j++;
    const group = events.slice(i, j);
    i = j;
    stats.revisions++;

    // What this revision touches, per circuit.
    interface Touch {
      traefikPuts: HistEvent[];
      traefikEvents: number;
      metaPut: { ev: HistEvent; meta: MetaValue | null } | null;
      lockDeletes: string[];
      /** Lock keys of C that existed before and are rewritten here (a staged apply's step). */
      lockTouches: string[];
      preServers: Set<string>;
    }
    const touched = new Map<string, Touch>();
    const touch = (c: string): Touch => {
      let t = touched.get(c);
      if (t === undefined) {
        t = { traefikPuts: [], traefikEvents: 0, metaPut: null, lockDeletes: [], lockTouches: [], preServers: serversOf(c) };
        touched.set(c, t);
      }
      return t;
    };
    const classes = group.map((ev) => classify(ev.key));
    group.forEach((ev, n) => {
      const k = classes[n]!;
      if (k.kind === 'traefik') {
        const t = touch(k.circuitId);
        t.traefikEvents++;
        if (ev.type === 'put') t.traefikPuts.push(ev);
      } else if (k.kind === 'meta' && ev.type === 'put') {
        touch(k.circuitId).metaPut = { ev, meta: decodeMeta(ev.value) };
      } else if (k.kind === 'lock' && ev.type === 'delete') {
        touch(k.circuitId).lockDeletes.push(k.leaseHex);
      } else if (k.kind === 'lock' && ev.type === 'put' && state.has(ev.key)) {
        touch(k.circuitId).lockTouches.push(k.leaseHex);
      }
    });

    // I3 is judged on the state the transaction saw (S_{r-1}): check before applying.
    for (const [c, t] of touched) {
      if (t.traefikEvents === 0 && t.metaPut === null) continue;
      stats.circuitWrites++;
      let writer: { leaseHex: string; createRevision: number } | null = null;
      if (t.metaPut !== null) {
        writer = t.metaPut.meta ? parseWriter(t.metaPut.meta.writer) : null;
      } else if (t.lockDeletes.length > 0 || t.lockTouches.length > 0) {
        const hex = (t.lockDeletes[0] ?? t.lockTouches[0])!;
        const kv = state.get(lockKeyOf(c, hex));
        if (kv) writer = { leaseHex: hex, createRevision: kv.create };
      }
      if (writer === null) {
        sink.add({
          invariant: 'I3',
          rule: 'unattributed',
          message: `revision ${r} wrote keys of circuit ${c} without a fenced writer (no meta writer "<lease>@<lockRevision>" and no lock release in the same transaction)`,
          circuitId: c,
          revision: r,
          revisions: [r],
          leases: [],
        });
        continue;
      }
      const lockKey = lockKeyOf(c, writer.leaseHex);
      const kv = state.get(lockKey);
      let lowest: { key: string; create: number } | null = null;
      for (const k of lockKeys.get(c) ?? []) {
        const s = state.get(k)!;
        if (lowest === null || s.create < lowest.create) lowest = { key: k, create: s.create };
      }
      if (kv === undefined || kv.create !== writer.createRevision || lowest?.key !== lockKey) {
        const why =
          kv === undefined
            ? `its lock key ${lockKey} did not exist at revision ${r - 1}`
            : kv.create !== writer.createRevision
              ? `its lock key ${lockKey} had create revision ${kv.create}, not ${writer.createRevision}`
              : `its lock key was not the owner (the lowest create revision was ${lowest?.key}@${lowest?.create})`;
        sink.add({
          invariant: 'I3',
          rule: 'lock-not-held',
          message: `revision ${r} wrote circuit ${c} for writer ${writer.leaseHex}@${writer.createRevision}, but ${why}`,
          circuitId: c,
          revision: r,
          revisions: [writer.createRevision, r],
          leases: [writer.leaseHex],
        });
      }
    }

    // Apply the revision.
    group.forEach((ev, n) => {
      const k = classes[n]!;
      if (ev.type === 'put') {
        const prev = state.get(ev.key);
        state.set(ev.key, { value: ev.value, create: prev ? prev.create : ev.create || r, mod: r });
        if (k.kind === 'traefik') indexOf(traefikKeys, k.circuitId).add(ev.key);
        if (k.kind === 'lock') {
          if (!prev) stats.lockAcquisitions++;
          indexOf(lockKeys, k.circuitId).add(ev.key);
        }
      } else {
        state.delete(ev.key);
        if (k.kind === 'traefik') traefikKeys.get(k.circuitId)?.delete(ev.key);
        if (k.kind === 'lock') lockKeys.get(k.circuitId)?.delete(ev.key);
      }
    });

    // I1 and I4, judged on S_r.
    for (const [c, t] of touched) {
      const writerLease = t.metaPut?.meta ? (parseWriter(t.metaPut.meta.writer)?.leaseHex ?? null) : null;
      const leases = writerLease ? [writerLease] : [];
      const tomb = tombstonedAt.get(c);
      if (tomb !== undefined) {
        if (t.traefikPuts.length > 0) {
          sink.add({
            invariant: 'I1',
            rule: 'put-after-unload',
            message: `revision ${r} put ${t.traefikPuts.length} Traefik key(s) of circuit ${c} (e.g. ${t.traefikPuts[0]!.key} = ${t.traefikPuts[0]!.value}) after its unload committed at revision ${tomb}`,
            circuitId: c,
            revision: r,
            key: t.traefikPuts[0]!.key,
            revisions: [tomb, r],
            leases,
          });
        }
        if (t.metaPut?.meta && !t.metaPut.meta.deleted) {
          sink.add({
            invariant: 'I1',
            rule: 'meta-revived',
            message: `revision ${r} rewrote the meta of circuit ${c} as live (generation ${t.metaPut.meta.generation}) after its unload committed at revision ${tomb}`,
            circuitId: c,
            revision: r,
            revisions: [tomb, r],
            leases,
          });
        }
      }
      if (t.metaPut !== null) {
        const m = t.metaPut.meta;
        if (m === null) {
          sink.add({
            invariant: 'I1',
            rule: 'meta-unreadable',
            message: `revision ${r} wrote an unreadable meta for circuit ${c}: ${t.metaPut.ev.value.slice(0, 200)}`,
            circuitId: c,
            revision: r,
            revisions: [r],
            leases,
          });
        } else {
          const prev = maxGen.get(c);
          if (prev !== undefined && m.generation < prev.generation) {
            sink.add({
              invariant: 'I1',
              rule: 'generation-regressed',
              message: `revision ${r} wrote circuit ${c} at generation ${m.generation}, older than generation ${prev.generation} already written at revision ${prev.rev}`,
              circuitId: c,
              revision: r,
              revisions: [prev.rev, r],
              leases,
            });
          }
          if (prev === undefined || m.generation >= prev.generation) maxGen.set(c, { generation: m.generation, rev: r });
          if (m.deleted && tomb === undefined) {
            tombstonedAt.set(c, r);
            stats.tombstones++;
          }
        }
      }
      // Routes that appeared at r must be in the database at the generation etcd now claims.
      const post = serversOf(c);
      const appeared = [...post].filter((x) => !t.preServers.has(x));
      if (appeared.length > 0) {
        const metaKv = state.get(metaKeyOf(c));
        const meta = metaKv ? decodeMeta(metaKv.value) : null;
        if (meta === null) {
          sink.add({
            invariant: 'I1',
            rule: 'route-without-meta',
            message: `revision ${r} listed ${appeared.join(', ')} for circuit ${c}, which has no readable meta (no committed generation vouches for it)`,
            circuitId: c,
            revision: r,
            revisions: [r],
            leases,
          });
        } else {
          const rec = gens.get(genKey(c, meta.generation));
          if (rec === undefined) {
            sink.add({
              invariant: 'I1',
              rule: 'unknown-generation',
              message: `revision ${r} listed ${appeared.join(', ')} for circuit ${c} at generation ${meta.generation}, which the database never committed`,
              circuitId: c,
              revision: r,
              revisions: [metaKv!.mod, r],
              leases,
            });
          } else {
            const stray = appeared.filter((x) => !rec.addresses.includes(x));
            if (stray.length > 0) {
              sink.add({
                invariant: 'I1',
                rule: 'route-not-in-database',
                message: `revision ${r} (re-)added ${stray.join(', ')} to circuit ${c}, but the database's generation ${meta.generation} (the one etcd holds) has only [${rec.addresses.join(', ')}]`,
                circuitId: c,
                revision: r,
                revisions: [metaKv!.mod, r],
                leases,
              });
            }
          }
        }
      }
      // I4: a meta write states "these keys are generation g".
      const m = t.metaPut?.meta;
      if (m) {
        const rec = gens.get(genKey(c, m.generation));
        const expected = m.deleted ? new Map<string, string>() : rec?.keys;
        if (expected !== undefined) {
          const d = mapsEqual(keysOf(c), expected);
          if (d.missing.length + d.extra.length + d.differs.length > 0) {
            const first = d.extra[0] ?? d.missing[0] ?? d.differs[0];
            sink.add({
              invariant: 'I4',
              rule: 'state-differs-from-generation',
              message: `after revision ${r} circuit ${c} claims generation ${m.generation}${m.deleted ? ' (tombstone)' : ''} but its keys differ from that generation's rendering: ${d.extra.length} extra, ${d.missing.length} missing, ${d.differs.length} different (e.g. ${first})`,
              circuitId: c,
              revision: r,
              key: first,
              revisions: [r],
              leases,
            });
          }
        }
      }
    }
  }
  return { violations: sink.list, counts: sink.counts, byRule: sink.byRule, stats };
}

// ---- I2 ------------------------------------------------------------------------------------------

export interface FinalCircuit {
  id: string;
  generation: number;
  deleted: boolean;
  /** render(circuit) for live circuits; empty for deleted ones. */
  expected: ReadonlyMap<string, string>;
}

export interface ConvergenceReport {
  violations: Violation[];
  counts: Record<Invariant, number>;
  byRule: Record<string, number>;
  /** Circuits (or keys without a circuit) that differ. */
  differing: number;
  expectedKeys: number;
  actualKeys: number;
}

/**
 * I2. `keys`: every key under `<traefikRoot>/`; `metas`: circuit id -> raw meta value, for every
 * key under `<metaPrefix>/circuits/`; `circuits`: every circuit the database knows.
 */
export function checkConvergence(
  layout: Layout,
  keys: ReadonlyMap<string, string>,
  metas: ReadonlyMap<string, string>,
  circuits: readonly FinalCircuit[],
  opts: { capPerRule?: number } = {},
): ConvergenceReport {
  const sink = new Sink(opts.capPerRule ?? 50);
  const classify = classifier(layout);
  const expected = new Map<string, string>();
  const owner = new Map<string, string>();
  for (const c of circuits) {
    if (c.deleted) continue;
    for (const [k, v] of c.expected) {
      expected.set(k, v);
      owner.set(k, c.id);
    }
  }
  const differing = new Set<string>();
  const perCircuit = new Map<string, { extra: string[]; missing: string[]; differs: string[] }>();
  const bucket = (id: string) => {
    let b = perCircuit.get(id);
    if (b === undefined) perCircuit.set(id, (b = { extra: [], missing: [], differs: [] }));
    return b;
  };
  for (const [k, v] of keys) {
    const cls = classify(k);
    const id = owner.get(k) ?? (cls.kind === 'traefik' ? cls.circuitId : `(no circuit) ${k}`);
    if (!expected.has(k)) bucket(id).extra.push(k);
    else if (expected.get(k) !== v) bucket(id).differs.push(k);
  }
  for (const k of expected.keys()) if (!keys.has(k)) bucket(owner.get(k)!).missing.push(k);
  for (const [id, b] of perCircuit) {
    differing.add(id);
    const parts = [
      b.extra.length ? `${b.extra.length} extra (orphan) key(s), e.g. ${b.extra[0]}` : '',
      b.missing.length ? `${b.missing.length} missing, e.g. ${b.missing[0]}` : '',
      b.differs.length ? `${b.differs.length} with another value, e.g. ${b.differs[0]}` : '',
    ].filter(Boolean);
    sink.add({
      invariant: 'I2',
      rule: b.extra.length ? 'orphan-keys' : b.missing.length ? 'missing-keys' : 'value-differs',
      message: `after the final sweep, ${id.startsWith('(no circuit)') ? id : `circuit ${id}`}: ${parts.join('; ')}`,
      ...(id.startsWith('(no circuit)') ? {} : { circuitId: id }),
      key: b.extra[0] ?? b.missing[0] ?? b.differs[0],
      revisions: [],
      leases: [],
    });
  }
  const known = new Map(circuits.map((c) => [c.id, c]));
  for (const c of circuits) {
    const raw = metas.get(c.id);
    const m = raw === undefined ? null : decodeMeta(raw);
    let problem: string | null = null;
    if (!c.deleted) {
      if (m === null) problem = raw === undefined ? 'has no meta' : 'has an unreadable meta';
      else if (m.deleted) problem = `is live but its meta is a tombstone (generation ${m.generation})`;
      else if (m.generation !== c.generation) problem = `is at generation ${c.generation} but its meta says ${m.generation}`;
    } else if (raw !== undefined) {
      if (m === null) problem = 'is deleted and has an unreadable meta';
      else if (!m.deleted) problem = `is deleted but its meta is live (generation ${m.generation})`;
      else if (m.generation !== c.generation) problem = `is deleted at generation ${c.generation} but its tombstone says ${m.generation}`;
    }
    if (problem !== null) {
      differing.add(c.id);
      sink.add({ invariant: 'I2', rule: 'meta-differs', message: `after the final sweep, circuit ${c.id} ${problem}`, circuitId: c.id, revisions: [], leases: [] });
    }
  }
  for (const id of metas.keys()) {
    if (!known.has(id)) {
      differing.add(id);
      sink.add({ invariant: 'I2', rule: 'meta-unknown-circuit', message: `after the final sweep, a meta exists for circuit ${id}, which the database does not know`, circuitId: id, revisions: [], leases: [] });
    }
  }
  return { violations: sink.list, counts: sink.counts, byRule: sink.byRule, differing: differing.size, expectedKeys: expected.size, actualKeys: keys.size };
}

// ---- R -------------------------------------------------------------------------------------------

export interface OpRecord {
  worker: number;
  i: number;
  kind: string;
  circuitId?: string;
  status: string;
  http?: number;
  detail?: string;
  /** Database changes this operation's statements committed (seen in their results). */
  commits?: Array<{ circuitId: string; generation: number; what: string }>;
  leases?: string[];
}

/** A response that says "nothing was changed" although the operation's database change committed. */
export function checkResponses(ops: readonly OpRecord[], opts: { capPerRule?: number } = {}): { violations: Violation[]; counts: Record<Invariant, number>; byRule: Record<string, number> } {
  const sink = new Sink(opts.capPerRule ?? 50);
  for (const op of ops) {
    if (!op.commits || op.commits.length === 0 || op.detail === undefined) continue;
    const claimsNothing = /nothing was changed/i.test(op.detail) && !/unless the connection broke/i.test(op.detail);
    if (!claimsNothing) continue;
    const c = op.commits[op.commits.length - 1]!;
    sink.add({
      invariant: 'R',
      rule: 'committed-but-reported-unchanged',
      message: `worker ${op.worker} op ${op.i} (${op.kind}) committed ${c.what} of circuit ${c.circuitId} at generation ${c.generation} but was answered ${op.http ?? ''} "${op.detail}"`,
      circuitId: c.circuitId,
      revisions: [],
      leases: op.leases ?? [],
      op: { worker: op.worker, i: op.i, kind: op.kind },
    });
  }
  return { violations: sink.list, counts: sink.counts, byRule: sink.byRule };
}

// ---- I5 ------------------------------------------------------------------------------------------

/** A database change as committed (the recorder's trigger, at commit time). */
export interface DbCommit {
  circuitId: string;
  generation: number;
  recordedMs: number;
  fenceEpoch: number;
  fenceRevision: number;
}

/** A statement a lock holder ran and that returned the circuit (it read or changed it under its fence). */
export interface HolderStatement {
  circuitId: string;
  epoch: number;
  revision: number;
  doneMs: number;
}

const fenceLess = (a: { epoch: number; revision: number }, b: { epoch: number; revision: number }): boolean =>
  a.epoch < b.epoch || (a.epoch === b.epoch && a.revision < b.revision);

export function checkFreshness(
  layout: Layout,
  events: readonly HistEvent[],
  commits: readonly DbCommit[],
  statements: readonly HolderStatement[],
  /** etcd revision -> wall-clock ms its transaction was sent (from the workers' logs). */
  sentAt: ReadonlyMap<number, number>,
  opts: { capPerRule?: number } = {},
): { violations: Violation[]; counts: Record<Invariant, number>; byRule: Record<string, number>; judged: number; unjudged: number } {
  const sink = new Sink(opts.capPerRule ?? 50);
  const classify = classifier(layout);
  const commitsOf = new Map<string, DbCommit[]>();
  for (const c of commits) {
    const list = commitsOf.get(c.circuitId) ?? [];
    list.push(c);
    commitsOf.set(c.circuitId, list);
  }
  let judged = 0;
  let unjudged = 0;
  for (const ev of events) {
    if (ev.type !== 'put') continue;
    const k = classify(ev.key);
    if (k.kind !== 'meta') continue;
    const m = decodeMeta(ev.value);
    if (m === null) continue;
    const sent = sentAt.get(ev.rev);
    if (sent === undefined) {
      unjudged++;
      continue;
    }
    judged++;
    const newer = (commitsOf.get(k.circuitId) ?? []).find((c) => c.generation > m.generation && c.recordedMs < sent);
    if (newer !== undefined) {
      sink.add({
        invariant: 'I5',
        rule: 'stale-render',
        message: `revision ${ev.rev} wrote circuit ${k.circuitId} at generation ${m.generation} (sent at ${sent}), but the database had committed generation ${newer.generation} at ${Math.round(newer.recordedMs)}, ${Math.round(sent - newer.recordedMs)} ms before`,
        circuitId: k.circuitId,
        revision: ev.rev,
        revisions: [ev.rev],
        leases: m.writer ? [m.writer.split('@')[0]!] : [],
      });
    }
  }
  const byCircuit = new Map<string, HolderStatement[]>();
  for (const st of statements) {
    const list = byCircuit.get(st.circuitId) ?? [];
    list.push(st);
    byCircuit.set(st.circuitId, list);
  }
  for (const list of byCircuit.values()) list.sort((a, b) => a.doneMs - b.doneMs);
  for (const c of commits) {
    if (c.fenceEpoch === 0 && c.fenceRevision === 0) continue; // a creation: no lock, nothing to supersede
    const mine = { epoch: c.fenceEpoch, revision: c.fenceRevision };
    const newer = (byCircuit.get(c.circuitId) ?? []).find((st) => st.doneMs < c.recordedMs && fenceLess(mine, st));
    if (newer !== undefined) {
      sink.add({
        invariant: 'I5',
        rule: 'commit-under-superseded-lock',
        message: `circuit ${c.circuitId} committed generation ${c.generation} under fence ${c.fenceEpoch}:${c.fenceRevision} at ${Math.round(c.recordedMs)}, after a holder with the newer fence ${newer.epoch}:${newer.revision} had read or changed it (${Math.round(c.recordedMs - newer.doneMs)} ms before)`,
        circuitId: c.circuitId,
        revisions: [newer.revision, c.fenceRevision],
        leases: [],
      });
    }
  }
  return { violations: sink.list, counts: sink.counts, byRule: sink.byRule, judged, unjudged };
}

// ---- I6 ------------------------------------------------------------------------------------------

/** A request the API accepted (2xx). */
export interface AcceptedRequest {
  worker: number;
  i: number;
  kind: 'delete' | 'write';
  circuitId: string;
  /** write: the generation the answer reported. */
  generation?: number;
}

export function checkAccepted(
  layout: Layout,
  accepted: readonly AcceptedRequest[],
  final: { keys: ReadonlyMap<string, string>; metas: ReadonlyMap<string, string>; circuits: readonly FinalCircuit[] },
  opts: { capPerRule?: number } = {},
): { violations: Violation[]; counts: Record<Invariant, number>; byRule: Record<string, number> } {
  const sink = new Sink(opts.capPerRule ?? 50);
  const classify = classifier(layout);
  const keysOf = new Map<string, number>();
  for (const k of final.keys.keys()) {
    const cls = classify(k);
    if (cls.kind === 'traefik') keysOf.set(cls.circuitId, (keysOf.get(cls.circuitId) ?? 0) + 1);
  }
  const db = new Map(final.circuits.map((c) => [c.id, c]));
  for (const a of accepted) {
    const c = db.get(a.circuitId);
    const op = { worker: a.worker, i: a.i, kind: a.kind };
    if (a.kind === 'delete') {
      if (c !== undefined && !c.deleted) {
        sink.add({ invariant: 'I6', rule: 'accepted-delete-not-done', message: `worker ${a.worker} op ${a.i}: DELETE of circuit ${a.circuitId} was accepted (202) but the circuit is still live after the grace period and a sweep`, circuitId: a.circuitId, revisions: [], leases: [], op });
      } else if ((keysOf.get(a.circuitId) ?? 0) > 0) {
        sink.add({ invariant: 'I6', rule: 'accepted-delete-keys-left', message: `worker ${a.worker} op ${a.i}: circuit ${a.circuitId} was deleted but ${keysOf.get(a.circuitId)} of its keys are still in etcd`, circuitId: a.circuitId, revisions: [], leases: [], op });
      }
      continue;
    }
    if (c === undefined || c.deleted) continue; // deleted since: the deletion is what etcd must show
    const raw = final.metas.get(a.circuitId);
    const m = raw === undefined ? null : decodeMeta(raw);
    if (m === null || m.generation < (a.generation ?? 0)) {
      sink.add({ invariant: 'I6', rule: 'accepted-write-not-applied', message: `worker ${a.worker} op ${a.i}: a write of circuit ${a.circuitId} at generation ${a.generation} was accepted, but etcd holds ${m === null ? 'no meta' : `generation ${m.generation}`} after a sweep`, circuitId: a.circuitId, revisions: [], leases: [], op });
    }
  }
  return { violations: sink.list, counts: sink.counts, byRule: sink.byRule };
}
