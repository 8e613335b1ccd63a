import { defineConfig } from 'vitest/config';

// Worker threads run the compiled output in dist/ (see src/util/worker-file.ts), so `npm test`
// builds first. Tests themselves import the TypeScript sources.
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    pool: 'forks',
    testTimeout: 60_000,
    hookTimeout: 60_000,
    fileParallelism: true,
    maxWorkers: 2,
  },
});
