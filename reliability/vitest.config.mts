import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 180_000,
    hookTimeout: 180_000,
    pool: 'forks',
    // Scenarios stop and start PostgreSQL and services and measure RSS: one file at a time.
    fileParallelism: false,
  },
});
