// The chaos harness in CI: the real CLI (harness/chaos/run.ts) as a child process, with its own
// etcd + PostgreSQL, worker processes and faults.
//   - a small positive run: the real write path must show no violation and converge;
//   - the same workload with --strategy naive (the reference system's write path) must be caught,
//     and with --strategy unfenced-reads (lock holders that only read do not advance the database
//     fence) it must be caught by I5: if not, the harness cannot see the bugs it exists to find;
//   - a small positive run on a 3-member etcd cluster with each cluster fault (leader kill,
//     partition) and PostgreSQL restarts: clean, converged, every member holding the same history.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

interface Summary {
  ok: boolean;
  verdict: string;
  complete: boolean;
  replay: string;
  ops: { total: number; byKind: Record<string, Record<string, number>> };
  faults: { executed: Record<string, number>; byHow: Record<string, Record<string, number>> };
  etcd: { members: number; historyPerMember: Array<{ member: string; events: number; sameAsFirst: boolean }> };
  freshness: { writesJudged: number; acceptedRequests: number };
  fencing: { refusedByDatabase: number };
  violations: { total: number; byInvariant: Record<string, number>; byRule: Record<string, number>; files: string[] };
  convergence: { converged: boolean };
  history: { revisions: number; tombstones: number };
  harnessErrors: string[];
}

async function chaos(args: string[]): Promise<{ code: number | null; output: string; summary: Summary; dir: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'circuitry-chaos-test-'));
  dirs.push(dir);
  const child = spawn(process.execPath, ['--import', 'tsx', 'harness/chaos/run.ts', ...args, '--out', dir, '--quiet'], {
    cwd: ROOT,
    env: { ...process.env, POWERTOOLS_LOG_LEVEL: 'ERROR' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr.on('data', (d: Buffer) => (output += d.toString()));
  const code = await new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
  let summary: Summary;
  try {
    summary = JSON.parse(readFileSync(join(dir, 'summary.json'), 'utf8')) as Summary;
  } catch {
    throw new Error(`chaos run wrote no summary.json (exit ${code}):\n${output.slice(-4000)}`);
  }
  return { code, output, summary, dir };
}

const WORKLOAD = ['--ops', '360', '--procs', '3', '--faults', 'pause,kill,etcd-restart,db-drop,drop-unload', '--pauses', '12', '--kills', '3', '--etcd-restarts', '1', '--db-drops', '2', '--dropped-unloads', '2'];

describe('chaos harness (CLI)', () => {
  it('positive: the fenced write path under pauses, kills, an etcd restart and dropped connections has no violation', async () => {
    const { code, output, summary } = await chaos([...WORKLOAD, '--seed', 'ci-positive']);
    expect(summary.harnessErrors, output.slice(-3000)).toEqual([]);
    expect(summary.violations.byRule, `${summary.replay}\n${output.slice(-3000)}`).toEqual({});
    expect(summary.violations.total).toBe(0);
    expect(summary.convergence.converged).toBe(true);
    expect(summary.complete).toBe(true);
    expect(summary.ops.total).toBe(360);
    expect(summary.faults.executed.pause).toBeGreaterThanOrEqual(4);
    expect(summary.faults.executed.kill).toBeGreaterThanOrEqual(2);
    expect(summary.faults.executed['etcd-restart']).toBe(1);
    expect(summary.faults.executed['db-drop']).toBe(2);
    expect(summary.faults.executed['drop-unload']).toBeGreaterThanOrEqual(1);
    // I5 dated the writes and I6 had accepted requests to follow.
    expect(summary.freshness.writesJudged).toBeGreaterThan(50);
    expect(summary.freshness.acceptedRequests).toBeGreaterThan(50);
    // The workload really exercised the interesting paths.
    expect(summary.history.tombstones).toBeGreaterThan(3);
    expect(summary.ops.byKind.sweep?.ok ?? 0).toBeGreaterThan(10);
    expect(code).toBe(0);
  }, 150_000);

  it('positive, on a 3-member etcd cluster: leader kills, partitions and PostgreSQL restarts on top of pauses, kills and dropped connections; no violation', async () => {
    const started = Date.now();
    const { code, output, summary } = await chaos([
      '--ops', '360', '--procs', '3', '--etcd-members', '3', '--seed', 'ci-cluster',
      '--faults', 'pause,kill,leader-kill,partition,pg-restart,db-drop,drop-unload',
      '--pauses', '8', '--kills', '2', '--leader-kills', '2', '--partitions', '3', '--pg-restarts', '2', '--db-drops', '2', '--dropped-unloads', '2',
    ]);
    console.info(`chaos cluster run: ${Date.now() - started} ms`);
    expect(summary.harnessErrors, output.slice(-3000)).toEqual([]);
    expect(summary.violations.byRule, `${summary.replay}\n${output.slice(-3000)}`).toEqual({});
    expect(summary.convergence.converged).toBe(true);
    expect(summary.complete).toBe(true);
    expect(summary.ops.total).toBe(360);
    expect(summary.faults.executed['leader-kill']).toBe(2);
    expect(summary.faults.executed.partition).toBe(3);
    expect(summary.faults.executed['pg-restart']).toBe(2);
    expect(summary.faults.executed.pause).toBeGreaterThanOrEqual(3);
    // The history every checker ran on is the one every member holds.
    expect(summary.etcd.members).toBe(3);
    expect(summary.etcd.historyPerMember.map((m) => m.sameAsFirst)).toEqual([true, true, true]);
    expect(summary.freshness.writesJudged).toBeGreaterThan(50);
    expect(summary.history.tombstones).toBeGreaterThan(3);
    expect(code).toBe(0);
  }, 150_000);

  it('negative control: the reference write path on the same workload is caught resurrecting', async () => {
    const { code, output, summary, dir } = await chaos([...WORKLOAD, '--seed', 'ci-negative', '--strategy', 'naive']);
    expect(summary.violations.byInvariant.I1, output.slice(-3000)).toBeGreaterThan(0);
    expect(summary.violations.byRule['I1/put-after-unload'] ?? 0).toBeGreaterThan(0);
    expect(summary.verdict).toMatch(/negative control \(naive\): the harness sees/);
    // Each violation comes with the slice of history that shows it and the command to replay it.
    const slice = JSON.parse(readFileSync(join(dir, summary.violations.files.find((f) => f.includes('put-after-unload'))!), 'utf8')) as {
      replay: string;
      events: Array<{ rev: number; key: string; value: string }>;
      violation: { revisions: number[] };
    };
    expect(slice.replay).toContain('--seed ci-negative');
    expect(slice.replay).toContain('--strategy naive');
    const [tomb, put] = slice.violation.revisions;
    expect(slice.events.some((e) => e.rev === tomb && /"deleted":true/.test(e.value))).toBe(true);
    expect(slice.events.some((e) => e.rev === put)).toBe(true);
    expect(code).toBe(0); // the run met its expectation: it found the bug
  }, 150_000);

  it('negative control: lock holders that only read without fencing the database are caught by I5', async () => {
    // The bug needs a writer frozen between its lock and its statement while a reader takes the
    // lock: the harness arms that, but whether a given short run lands it depends on the machine's
    // timing. Up to three seeds; the harness is blind if none of them shows it.
    const tried: string[] = [];
    for (const seed of ['cu1', 'cu2', 'cu4']) {
      const { code, output, summary } = await chaos([...WORKLOAD, '--seed', seed, '--strategy', 'unfenced-reads']);
      tried.push(`${seed}: I5 ${summary.violations.byInvariant.I5} (${summary.verdict})`);
      if (summary.violations.byInvariant.I5 === 0) continue;
      expect(summary.violations.byRule['I5/commit-under-superseded-lock'] ?? 0, output.slice(-3000)).toBeGreaterThan(0);
      expect(summary.verdict).toMatch(/negative control \(unfenced-reads\): the harness sees/);
      expect(code).toBe(0);
      return;
    }
    expect.fail(`the harness did not see unfenced reads with any seed: ${tried.join('; ')}`);
  }, 450_000);
});
