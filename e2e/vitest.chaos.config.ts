import { defineConfig } from 'vitest/config';

// `pnpm test:chaos`: the chaos suite (e2e/chaos), one file at a time.
export default defineConfig({
  test: {
    include: ['chaos/**/*.chaos.test.ts'],
    fileParallelism: false,
    testTimeout: 180_000,
    hookTimeout: 60_000,
    reporters: ['default', 'json'],
    outputFile: { json: '.vitest-chaos-report.json' },
  },
});
