// Byte-level helpers for etcd keys and the raw transaction API.
import type { ICompare, IKeyValue, IRequestOp } from 'etcd3';

export const enc = (s: string): Buffer => Buffer.from(s, 'utf8');

/** The range_end that makes a range cover every key starting with prefix. */
export function prefixEnd(prefix: Buffer): Buffer {
  const end = Buffer.from(prefix);
  for (let i = end.length - 1; i >= 0; i--) {
    if (end[i]! < 0xff) {
      end[i]! += 1;
      return end.subarray(0, i + 1);
    }
  }
  return Buffer.from([0]);
}

export const op = {
  get: (key: string): IRequestOp => ({ request_range: { key: enc(key) } }),
  getPrefix: (prefix: string, extra: Record<string, unknown> = {}): IRequestOp => ({
    request_range: { key: enc(prefix), range_end: prefixEnd(enc(prefix)), ...extra },
  }),
  put: (key: string, value: string, lease?: string): IRequestOp => ({
    request_put: { key: enc(key), value: enc(value), ...(lease !== undefined ? { lease } : {}) },
  }),
  /** Rewrites a key with its own value and lease: only its version and mod revision advance. */
  touch: (key: string): IRequestOp => ({ request_put: { key: enc(key), ignore_value: true, ignore_lease: true } }),
  del: (key: string): IRequestOp => ({ request_delete_range: { key: enc(key) } }),
  delPrefix: (prefix: string): IRequestOp => ({
    request_delete_range: { key: enc(prefix), range_end: prefixEnd(enc(prefix)) },
  }),
};

export const cmp = {
  createRevision: (key: string, rev: string | number): ICompare => ({
    key: enc(key),
    target: 'Create',
    result: 'Equal',
    create_revision: rev,
  }),
  version: (key: string, version: string | number): ICompare => ({
    key: enc(key),
    target: 'Version',
    result: 'Equal',
    version,
  }),
  modRevision: (key: string, rev: string | number): ICompare => ({
    key: enc(key),
    target: 'Mod',
    result: 'Equal',
    mod_revision: rev,
  }),
};

export const kvKey = (kv: IKeyValue): string => kv.key.toString('utf8');
export const kvValue = (kv: IKeyValue): string => kv.value.toString('utf8');
