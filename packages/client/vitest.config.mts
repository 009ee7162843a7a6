import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // The database server, and dist/ + examples/dist for the tests that run compiled code in child processes.
    globalSetup: ['../../packages/db/src/testing/global-setup.ts', './test/global-build.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    pool: 'forks',
  },
});
