import { defineConfig } from 'vitest/config';

// Unit tests are pure and fast; integration tests share one real etcd + PostgreSQL started by
// the global setup (and stopped by PID in its teardown, also when tests fail).
export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: 'unit',
          include: ['test/unit/**/*.test.ts'],
        },
      },
      {
        test: {
          name: 'integration',
          include: ['test/integration/**/*.test.ts'],
          globalSetup: ['test/support/global-setup.ts'],
          testTimeout: 60_000,
          hookTimeout: 60_000,
          fileParallelism: false,
        },
      },
    ],
  },
});
