import { defineConfig } from 'vitest/config';

// Unit tests are pure and fast; integration tests share one real etcd + PostgreSQL started by
// the global setup (and stopped by PID in its teardown, also when tests fail).
export default defineConfig({
  test: {
    // console.* of passing tests is dropped; test/support/quiet.ts does the same for the streams.
    silent: process.env.CIRCUITRY_TEST_LOGS === '1' ? false : 'passed-only',
    projects: [
      {
        test: {
          name: 'unit',
          include: ['test/unit/**/*.test.ts'],
          setupFiles: ['test/support/quiet.ts'],
        },
      },
      {
        test: {
          name: 'integration',
          include: ['test/integration/**/*.test.ts'],
          globalSetup: ['test/support/global-setup.ts'],
          setupFiles: ['test/support/quiet.ts'],
          testTimeout: 60_000,
          hookTimeout: 60_000,
          fileParallelism: false,
        },
      },
      // The status page in headless Chromium against the local stack: `npm run test:e2e` only
      // (CIRCUITRY_E2E=1); `npm test` does not define, so does not run, this project.
      ...(process.env.CIRCUITRY_E2E === '1'
        ? [
            {
              test: {
                name: 'e2e',
                include: ['test/e2e/**/*.test.ts'],
                testTimeout: 60_000,
                hookTimeout: 120_000,
                fileParallelism: false,
              },
            },
          ]
        : []),
    ],
  },
});
