// Where circuitry keeps its own keys in etcd, in one place (DESIGN §4: never under Traefik's root,
// which Traefik re-reads on every change). Pure: the writers, the sweep, the CLI and the chaos
// checker all read the layout from here.
//
//   <metaPrefix>/circuits/<circuitId>          the circuit's meta: generation applied, tombstone
//   <metaPrefix>/locks/<circuitId>/<leaseHex>  one key per contender for the circuit's lock
//   <metaPrefix>/epoch                         the fencing epoch of this etcd history

export const metaCircuitsPrefix = (metaPrefix: string): string => `${metaPrefix}/circuits/`;
export const metaKey = (metaPrefix: string, circuitId: string): string => `${metaCircuitsPrefix(metaPrefix)}${circuitId}`;
export const locksPrefix = (metaPrefix: string): string => `${metaPrefix}/locks/`;
export const lockPrefix = (metaPrefix: string, circuitId: string): string => `${locksPrefix(metaPrefix)}${circuitId}/`;
export const epochKey = (metaPrefix: string): string => `${metaPrefix}/epoch`;

/** The circuit a meta key belongs to, or null when `key` is not a meta key. */
export function circuitOfMetaKey(metaPrefix: string, key: string): string | null {
  const p = metaCircuitsPrefix(metaPrefix);
  if (!key.startsWith(p)) return null;
  const id = key.slice(p.length);
  return id === '' || id.includes('/') ? null : id;
}

/** Circuit and holder of a lock key, or null when `key` is not one. */
export function parseLockKey(metaPrefix: string, key: string): { circuitId: string; leaseHex: string } | null {
  const p = locksPrefix(metaPrefix);
  if (!key.startsWith(p)) return null;
  const [circuitId, leaseHex, ...rest] = key.slice(p.length).split('/');
  return circuitId && leaseHex && rest.length === 0 ? { circuitId, leaseHex } : null;
}
