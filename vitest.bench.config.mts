import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/bench/**/*.bench.test.ts'],
    globalSetup: ['test/support/azuriteGlobalSetup.ts', 'test/bench/support/benchGlobalSetup.ts'],
    pool: 'forks',
    // collectGarbage() between measurements, and the redactor's memory figure, need gc() in the worker too.
    execArgv: ['--expose-gc'],
    fileParallelism: false,
    testTimeout: 600_000,
    hookTimeout: 120_000,
  },
});
