import { defineConfig } from 'vitest/config';

// One root config: every package's test/ folder, the cross-package e2e tests and tools' own tests.
export default defineConfig({
  test: {
    include: ['packages/*/test/**/*.test.ts', 'test/**/*.test.ts', 'tools/**/*.test.ts'],
    exclude: ['**/node_modules/**'],
    pool: 'forks',
    maxWorkers: 2,
    testTimeout: 120_000,
    hookTimeout: 300_000,
    reporters: ['default', './tools/vitest/no-skips-in-ci.ts', './tools/vitest/files-not-passed.ts'],
  },
});
