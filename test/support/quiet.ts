// Tests are quiet by default: what the code under test writes to stdout/stderr (the JSON log
// lines of the Powertools logger, which writes to the streams directly) is held per test and
// printed only when that test fails. CIRCUITRY_TEST_LOGS=1 shows everything as it happens.
// (console.* output is handled by vitest itself: `silent: 'passed-only'` in vitest.config.ts.)
import { beforeEach } from 'vitest';

if (process.env.CIRCUITRY_TEST_LOGS !== '1') {
  const real = { out: process.stdout.write.bind(process.stdout), err: process.stderr.write.bind(process.stderr) };
  let held: Array<[typeof real.out, string]> = [];
  const holding =
    (to: typeof real.out) =>
    (chunk: unknown, ...rest: unknown[]): boolean => {
      held.push([to, typeof chunk === 'string' ? chunk : Buffer.from(chunk as Uint8Array).toString('utf8')]);
      const cb = rest.find((x) => typeof x === 'function') as (() => void) | undefined;
      cb?.();
      return true;
    };
  process.stdout.write = holding(real.out) as typeof process.stdout.write;
  process.stderr.write = holding(real.err) as typeof process.stderr.write;
  beforeEach((ctx) => {
    held = [];
    ctx.onTestFailed(() => {
      const lines = held;
      held = [];
      if (lines.length === 0) return;
      real.err(`\n---- output of the failed test "${ctx.task.name}" ----\n`);
      for (const [to, s] of lines) to(s);
      real.err('---- end of output ----\n');
    });
  });
}
