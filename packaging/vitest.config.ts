import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Packs the npm tarballs once for every file (scripts/pack.mjs).
    globalSetup: ['test/global-setup.ts'],
    // Containers, chroots and Portage runs on a 2-core machine: one file at a time.
    fileParallelism: false,
    reporters: ['default', 'json'],
    outputFile: { json: '.vitest-report.json' },
    testTimeout: 240_000,
    hookTimeout: 240_000,
  },
});
