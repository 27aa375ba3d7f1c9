// A structural scan of a JSON text that JSON.parse has already accepted, for what JSON.parse
// silently allows:
//   - duplicated object keys (JSON.parse keeps the last one; a proxy, WAF or audit log that
//     reads the first would see a different request than we execute), compared after escape
//     decoding, so {"a":1,"\u0061":2} is a duplicate too;
//   - nesting deeper than any body our schemas accept (no schema of ours goes past depth 5).
// Iterative (an explicit stack, no recursion), linear in the text, no allocation per value
// except object keys: a 1 MiB body of `[[[[...` cannot overflow the call stack.

/** Deeper than any body our schemas accept (circuit > routes > route > field is depth 4). */
export const MAX_JSON_DEPTH = 16;

export interface JsonScanProblem {
  kind: 'duplicate-key' | 'too-deep';
  /** Dotted path of the offending member ("routes.0.host"), "body" at the top. */
  field: string;
  message: string;
}

interface ObjectFrame {
  kind: 'object';
  keys: Set<string>;
  /** The member key being read (its value comes next), or null between members. */
  key: string | null;
  expectKey: boolean;
}
interface ArrayFrame {
  kind: 'array';
  index: number;
}
type Frame = ObjectFrame | ArrayFrame;

function pathOf(stack: readonly Frame[], extra?: string): string {
  const parts: string[] = [];
  for (const f of stack) {
    if (f.kind === 'array') parts.push(String(f.index));
    else if (f.key !== null) parts.push(f.key);
  }
  if (extra !== undefined) parts.push(extra);
  return parts.length === 0 ? 'body' : parts.join('.');
}

/** End index (exclusive) of the string token starting at the quote at `start`. */
function stringEnd(text: string, start: number): number {
  let i = start + 1;
  for (;;) {
    const q = text.indexOf('"', i);
    if (q < 0) return text.length; // unreachable for text JSON.parse accepted
    let backslashes = 0;
    for (let j = q - 1; j > start && text.charCodeAt(j) === 0x5c; j--) backslashes++;
    if (backslashes % 2 === 0) return q + 1;
    i = q + 1;
  }
}

/**
 * Scans `text`, which must be valid JSON (call it after JSON.parse succeeded). Returns the first
 * problem found, or null.
 */
export function scanJson(text: string, opts: { maxDepth: number }): JsonScanProblem | null {
  const stack: Frame[] = [];
  const n = text.length;
  for (let i = 0; i < n; i++) {
    const c = text.charCodeAt(i);
    switch (c) {
      case 0x7b: // {
      case 0x5b: {
        // [
        if (stack.length >= opts.maxDepth) {
          return { kind: 'too-deep', field: pathOf(stack), message: `nested deeper than ${opts.maxDepth} levels` };
        }
        stack.push(c === 0x7b ? { kind: 'object', keys: new Set(), key: null, expectKey: true } : { kind: 'array', index: 0 });
        break;
      }
      case 0x7d: // }
      case 0x5d: // ]
        stack.pop();
        break;
      case 0x2c: {
        // ,
        const top = stack[stack.length - 1];
        if (top?.kind === 'array') top.index++;
        else if (top?.kind === 'object') {
          top.key = null;
          top.expectKey = true;
        }
        break;
      }
      case 0x22: {
        // "
        const end = stringEnd(text, i);
        const top = stack[stack.length - 1];
        if (top?.kind === 'object' && top.expectKey) {
          const key = JSON.parse(text.slice(i, end)) as string;
          if (top.keys.has(key)) {
            return { kind: 'duplicate-key', field: pathOf(stack, key), message: `duplicate key ${JSON.stringify(key)}` };
          }
          top.keys.add(key);
          top.key = key;
          top.expectKey = false;
        }
        i = end - 1;
        break;
      }
      default:
        // ':' , whitespace, numbers, true/false/null: nothing to track.
        break;
    }
  }
  return null;
}
