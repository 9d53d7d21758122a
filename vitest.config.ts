import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';
// In a JSON file so .ci/summary.mjs checks the same numbers (a miss counts as a failure there).
import thresholds from './test/support/coverage-thresholds.json' with { type: 'json' };
import { claimCheckout } from './test/support/checkout-lock.js';

// One test run per checkout (two overwrite each other's dist/, coverage/ and vitest.json): taken
// here, before vitest clears coverage/ and starts the servers. See test/support/checkout-lock.ts.
claimCheckout(fileURLToPath(new URL('.', import.meta.url)));

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // The packed-tarball check installs from the registry: CI runs it on its own (npm run test:package).
    exclude: ['test/package/**', '**/node_modules/**'],
    globalSetup: ['test/support/global-setup.ts'],
    // Real servers answer in milliseconds, but a cold venv python (cross-checks) takes seconds.
    testTimeout: 60_000,
    // A test that asserts nothing is a defect: one without a single `expect` fails.
    expect: { requireAssertions: true },
    hookTimeout: 120_000,
    // 2-core machines: two workers keep the servers responsive.
    maxWorkers: 2,
    // summary-reporter: the counts .ci/run prints (failed files, hooks and unhandled errors included).
    reporters: ['default', ['json', { outputFile: 'vitest.json' }], './test/support/summary-reporter.ts'],
    coverage: {
      provider: 'v8',
      include: ['src/**/*.ts'],
      reporter: ['text-summary', 'json-summary'],
      // Also when a test failed: CI reports a threshold miss beside the failure, not instead.
      reportOnFailure: true,
      // Raise as the code grows; never lower (test/support/coverage-thresholds.json).
      thresholds,
    },
  },
});
