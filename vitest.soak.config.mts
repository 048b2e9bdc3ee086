import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.soak.test.ts'],
    globalSetup: ['test/support/azuriteGlobalSetup.ts'],
    pool: 'forks',
    testTimeout: 600_000,
    hookTimeout: 120_000,
    passWithNoTests: false,
  },
});
