// This package compiles as CommonJS and vitest/config ships ESM-only type
// declarations, so the config is a plain object typed through a type-only
// import (`defineConfig` is the identity function).
import type { ViteUserConfig } from 'vitest/config' with { 'resolution-mode': 'import' };

const config: ViteUserConfig = {
  test: {
    include: ['test/**/*.test.ts'],
    // One PostgreSQL server and migrated template per run, from @mcp/db's test harness.
    globalSetup: [require.resolve('@mcp/db/testing/global-setup')],
    testTimeout: 30_000,
    hookTimeout: 120_000,
    pool: 'forks',
  },
};

export default config;
