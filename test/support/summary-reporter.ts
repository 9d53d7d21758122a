/**
 * A vitest reporter that writes what a run really counted to `vitest-summary.json` (or
 * $VITEST_SUMMARY_FILE), for .ci/run's `N passed, N failed` line. vitest's own JSON report
 * counts failed *tests* only: a test file that fails to load, a failing `beforeAll`, or an
 * unhandled error leaves `numFailedTests` at 0. Here each of those counts as one failure, and
 * skipped tests are counted so CI can refuse them. Coverage thresholds are checked by
 * .ci/summary.mjs against coverage/coverage-summary.json.
 */
import { writeFileSync } from 'node:fs';
import { relative } from 'node:path';
import type { Reporter, SerializedError, TestModule, TestRunEndReason } from 'vitest/node';

export interface RunSummary {
  passed: number;
  failed: number;
  skipped: number;
  /** What each failure was: `test <file> > <name>`, `file <file>: <error>`, `unhandled: <error>`. */
  failures: string[];
  /** `<file> > <name>` of every skipped or todo test. */
  skippedTests: string[];
  reason: TestRunEndReason;
}

export default class SummaryReporter implements Reporter {
  onTestRunEnd(testModules: ReadonlyArray<TestModule>, unhandledErrors: ReadonlyArray<SerializedError>, reason: TestRunEndReason): void {
    const summary: RunSummary = { passed: 0, failed: 0, skipped: 0, failures: [], skippedTests: [], reason };
    for (const module of testModules) {
      const file = relative(process.cwd(), module.moduleId);
      // Errors outside any test: the file did not load, or a file-level hook threw.
      for (const error of module.errors()) {
        summary.failed++;
        summary.failures.push(`file ${file}: ${error.message}`);
      }
      for (const suite of module.children.allSuites()) {
        for (const error of suite.errors()) {
          summary.failed++;
          summary.failures.push(`suite ${file} > ${suite.fullName}: ${error.message}`);
        }
      }
      for (const test of module.children.allTests()) {
        const state = test.result().state;
        if (state === 'passed') summary.passed++;
        else if (state === 'failed') {
          summary.failed++;
          summary.failures.push(`test ${file} > ${test.fullName}`);
        } else {
          summary.skipped++;
          summary.skippedTests.push(`${file} > ${test.fullName}`);
        }
      }
    }
    for (const error of unhandledErrors) {
      summary.failed++;
      summary.failures.push(`unhandled: ${error.message}`);
    }
    // An interrupted run (Ctrl-C, bail) did not run everything: never a pass.
    if (reason === 'interrupted') {
      summary.failed++;
      summary.failures.push('the run was interrupted');
    }
    writeFileSync(process.env.VITEST_SUMMARY_FILE ?? 'vitest-summary.json', `${JSON.stringify(summary, null, 2)}\n`);
  }
}
