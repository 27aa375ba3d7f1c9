// Current keys vs desired keys -> the minimal puts and deletes. The apply code sends them in
// one etcd transaction, which rejects a put and a delete of the same key, so a key is never
// in both (a changed key is simply put; "delete prefix then put" is never used).

export interface KeyDiff {
  puts: Array<[string, string]>;
  deletes: string[];
}

// Plain code-unit order (not localeCompare): deterministic regardless of the runtime's locale.
const byKey = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

export function diffKeys(current: ReadonlyMap<string, string>, desired: ReadonlyMap<string, string>): KeyDiff {
  const puts: Array<[string, string]> = [];
  for (const [k, v] of desired) if (current.get(k) !== v) puts.push([k, v]);
  const deletes = [...current.keys()].filter((k) => !desired.has(k));
  puts.sort((a, b) => byKey(a[0], b[0]));
  deletes.sort(byKey);
  return { puts, deletes };
}

export function isNoop(d: KeyDiff): boolean {
  return d.puts.length === 0 && d.deletes.length === 0;
}
