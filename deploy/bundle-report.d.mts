// Types of deploy/bundle-report.mjs for the TypeScript harness (harness/bench/parts/coldstart.ts).
export interface MetafileSummary {
  output: string;
  bytes: number;
  inputs: number;
  packages: Array<{ package: string; bytes: number; share: number }>;
  topInputs: Array<{ input: string; bytes: number; share: number }>;
}
export function packageOf(input: string): string;
export function summarizeMetafile(metafile: unknown, top?: number): MetafileSummary;
export function readMetafiles(dir: string, top?: number): Record<string, MetafileSummary>;
export function formatSummary(name: string, s: MetafileSummary, zipBytes?: number, top?: number): string;
export function packageWithMetafiles(opts: { stage?: string; pkgDir: string; metaDir: string; extraEnv?: Record<string, string | undefined> }): Promise<void>;
