// This package compiles as CommonJS (Node16 resolution), and vitest/config ships
// ESM-only type declarations: a value import of it fails `tsc -p tsconfig.json`
// (TS1479). `defineConfig` is the identity function, so the config is a plain
// object typed through a type-only import in import resolution mode.
import type { ViteUserConfig } from 'vitest/config' with { 'resolution-mode': 'import' };

const config: ViteUserConfig = {
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['./src/testing/global-setup.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    pool: 'forks',
  },
};

export default config;
