import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Rendering an overlay takes well under a second; the TypeScript program
    // behind the unknown-field check takes a few.
    testTimeout: 60_000,
    hookTimeout: 120_000,
  },
});
