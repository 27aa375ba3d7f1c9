// Flat etcd keys -> the nested object Traefik's KV provider reads them as: '/' separates
// levels, a level whose segments are all numeric is a list. Used to print a rendered circuit
// and to validate it against Traefik's JSON schema.

type Node = Map<string, Node | string>;

/**
 * Strips `rootPath + '/'` and nests the rest. Throws on a key outside the root, an empty
 * segment, a key that is both a value and a parent, or list indices that are not exactly
 * 0..n-1 (a gap or a leftover index would be a stale backend in Traefik).
 */
export function keysToTree(rootPath: string, kv: ReadonlyMap<string, string>): Record<string, unknown> {
  const prefix = `${rootPath}/`;
  const root: Node = new Map();
  for (const [key, value] of kv) {
    if (!key.startsWith(prefix)) throw new Error(`key "${key}" is not under "${rootPath}"`);
    const segments = key.slice(prefix.length).split('/');
    if (segments.includes('')) throw new Error(`key "${key}" has an empty segment`);
    let node = root;
    segments.forEach((seg, i) => {
      const existing = node.get(seg);
      if (i === segments.length - 1) {
        if (existing !== undefined) throw new Error(`key "${key}" is both a value and a parent`);
        node.set(seg, value);
        return;
      }
      if (typeof existing === 'string') throw new Error(`key "${key}" is both a value and a parent`);
      const child: Node = existing ?? new Map();
      node.set(seg, child);
      node = child;
    });
  }
  const tree = toPlain(root, rootPath);
  if (Array.isArray(tree)) throw new Error(`the level under "${rootPath}" cannot be a list`);
  return tree as Record<string, unknown>;
}

function toPlain(node: Node, path: string): unknown {
  const segs = [...node.keys()];
  const convert = (seg: string): unknown => {
    const v = node.get(seg)!;
    return typeof v === 'string' ? v : toPlain(v, `${path}/${seg}`);
  };
  if (segs.length > 0 && segs.every((s) => /^\d+$/.test(s))) {
    // Segments are distinct, so n canonical indices all below n are exactly 0..n-1.
    for (const s of segs) {
      if (String(Number(s)) !== s || Number(s) >= segs.length) {
        throw new Error(`list at "${path}" has indices [${segs.join(', ')}], not 0..${segs.length - 1}`);
      }
    }
    return segs.map((_, i) => convert(String(i)));
  }
  // Object.fromEntries defines own properties, so a "__proto__" segment cannot touch prototypes.
  return Object.fromEntries([...segs].sort().map((s) => [s, convert(s)]));
}
