// The CI summary: reads what each step of .ci/run recorded and prints, per step, what passed,
// failed and was skipped and why, then the plain last line `N passed, N failed` that the CI
// harness reads. A failure is anything that makes the run red, not only a failed test:
// - a failed test, a test file that did not load, a failing hook, an unhandled error
//   (all counted by test/support/summary-reporter.ts);
// - each coverage threshold missed (coverage/coverage-summary.json against
//   test/support/coverage-thresholds.json, for steps that measured coverage);
// - a step that failed without any of the above (its exit status), or left no summary at all;
// - every skipped test: CI has all it needs to run them, so a skip is a hole (CI=true).
//
// Usage: node .ci/summary.mjs <steps.jsonl>
//   one step a line: { name, status (exit code), summary?: path, coverage?: path, seconds }
import { existsSync, readFileSync } from 'node:fs';

const steps = existsSync(process.argv[2])
  ? readFileSync(process.argv[2], 'utf8').split('\n').filter(Boolean).map((line) => JSON.parse(line))
  : [{ name: 'ci', status: 1 }];
const thresholds = JSON.parse(readFileSync(new URL('../test/support/coverage-thresholds.json', import.meta.url), 'utf8'));
const ci = process.env.CI === 'true' || process.env.CI === '1';
let passed = 0;
let failed = 0;
let skipped = 0;
const lines = [];

for (const step of steps) {
  const problems = [];
  let stepPassed = 0;
  let stepSkipped = 0;
  if (step.summary) {
    if (!existsSync(step.summary)) {
      problems.push('no test summary: the run did not get to the end');
    } else {
      const s = JSON.parse(readFileSync(step.summary, 'utf8'));
      stepPassed = s.passed;
      stepSkipped = s.skipped;
      problems.push(...s.failures);
      for (const name of s.skippedTests) lines.push(`  skipped: ${step.name}: ${name}`);
    }
  }
  if (step.coverage) {
    if (!existsSync(step.coverage)) problems.push('no coverage summary');
    else {
      const total = JSON.parse(readFileSync(step.coverage, 'utf8')).total;
      for (const [metric, min] of Object.entries(thresholds)) {
        const pct = total[metric]?.pct;
        if (!(pct >= min)) problems.push(`coverage of ${metric} ${pct}% is below the threshold ${min}%`);
      }
    }
  }
  if (step.status !== 0 && problems.length === 0) problems.push(`exited ${step.status}`);
  passed += stepPassed;
  skipped += stepSkipped;
  failed += problems.length + (ci ? stepSkipped : 0);
  const took = step.seconds !== undefined ? ` in ${step.seconds} s` : '';
  lines.push(`${step.name}: ${stepPassed} passed, ${problems.length} failed, ${stepSkipped} skipped${took}`);
  for (const problem of problems) lines.push(`  FAILED: ${step.name}: ${problem}`);
}

console.log('');
console.log('CI summary');
for (const line of lines) console.log(line);
console.log(`${skipped} skipped${ci && skipped > 0 ? ' (each counts as a failure in CI)' : ''}`);
console.log(`${passed} passed, ${failed} failed`);
process.exitCode = failed > 0 ? 1 : 0;
