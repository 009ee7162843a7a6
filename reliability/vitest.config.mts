import { defineConfig } from 'vitest/config';
import { sustainedLoadSeconds } from './src/timing';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // One private PostgreSQL cluster for the run (scenarios stop and start it); RELIABILITY.md at the end.
    globalSetup: ['./src/global-setup.ts'],
    // The sustained-load scenario runs for its duration plus setup and counting; everything else fits in 3 minutes.
    testTimeout: Math.max(180_000, (sustainedLoadSeconds() + 180) * 1000),
    hookTimeout: 180_000,
    pool: 'forks',
    // Scenarios stop and start PostgreSQL and services and measure RSS: one file at a time.
    fileParallelism: false,
  },
});
