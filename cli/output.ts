// How the CLI talks: tables for people, --json for scripts, progress on a terminal only.
import Table from 'cli-table3';
import { SingleBar } from 'cli-progress';

export interface Out {
  json: boolean;
  /** One JSON document (--json) or the human text. */
  print(human: string, data: unknown): void;
  /** Progress on stderr, only when it is a terminal and --json is not set. */
  progress(label: string, total?: number): { update(n: number): void; stop(): void };
}

export function output(json: boolean): Out {
  const tty = process.stderr.isTTY === true && !json;
  return {
    json,
    print(human, data) {
      process.stdout.write(json ? `${JSON.stringify(data, null, 2)}\n` : `${human}\n`);
    },
    progress(label, total) {
      if (!tty) return { update() {}, stop() {} };
      const bar = new SingleBar({ format: total === undefined ? `${label} {value}` : `${label} [{bar}] {value}/{total}`, stream: process.stderr, clearOnComplete: true, hideCursor: true });
      bar.start(total ?? 0, 0);
      return { update: (n) => bar.update(n), stop: () => bar.stop() };
    },
  };
}

export function table(head: string[], rows: Array<Array<string | number | null | undefined>>): string {
  const t = new Table({ head, style: { head: [], border: [] } });
  for (const r of rows) t.push(r.map((c) => (c === null || c === undefined ? '-' : String(c))));
  return t.toString();
}
