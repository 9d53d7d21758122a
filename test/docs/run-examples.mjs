/**
 * Runs the docs' examples for test/docs/examples.test.ts, one after another in this one process
 * (one process start and one library load for all of them, instead of one per example).
 *
 * Usage: node run-examples.mjs <plan.json> <results.json>
 *   plan: { template: dir copied as each example's working directory and HOME,
 *           library: file URL of dist/index.js, timeoutMs, blocks: [{ id, file }] }
 *
 * Each example gets a fresh copy of the template as its working directory (so relative paths
 * such as `out/checkpoint-100` exist and `./mlruns` is its own), a clean environment, the
 * command-line arguments its first line names (`// x.mjs: node x.mjs a b`), and afterwards
 * `endRun()` so an active run cannot leak into the next one. An example fails when it throws,
 * times out, or makes the library return a failed UploadResult (observe-results.mjs).
 */
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { format } from 'node:util';
import { pathToFileURL } from 'node:url';

const [planPath, resultsPath] = process.argv.slice(2);
const plan = JSON.parse(readFileSync(planPath, 'utf8'));
const library = await import(plan.library);
const baseEnv = { ...process.env };
const baseArgv = [...process.argv];
const original = { log: console.log, info: console.info, warn: console.warn, error: console.error };
const results = [];

for (const block of plan.blocks) {
  const sandbox = mkdtempSync(join(tmpdir(), 'au-example-'));
  cpSync(plan.template, sandbox, { recursive: true });
  for (const key of Object.keys(process.env)) if (!(key in baseEnv)) delete process.env[key];
  Object.assign(process.env, baseEnv, { HOME: sandbox });
  process.chdir(sandbox);
  const source = readFileSync(block.file, 'utf8');
  const usage = /^\/\/ (\S+): node \1 (.*)$/m.exec(source.split('\n').find((line) => line.trim() !== '') ?? '');
  process.argv = usage ? [baseArgv[0], join(sandbox, usage[1]), ...usage[2].trim().split(/\s+/)] : [baseArgv[0], block.file];
  globalThis.__failedExampleResults = [];
  let output = '';
  const capture = (...args) => {
    output += `${format(...args)}\n`;
  };
  Object.assign(console, { log: capture, info: capture, warn: capture, error: capture });
  const started = Date.now();
  let timer;
  try {
    await Promise.race([
      import(pathToFileURL(block.file).href),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`timed out after ${plan.timeoutMs} ms`)), plan.timeoutMs);
      }),
    ]);
    // Let results that settle right after the module's last await be seen.
    await new Promise((resolve) => setImmediate(resolve));
    const failed = globalThis.__failedExampleResults;
    if (failed.length > 0) results.push({ id: block.id, ok: false, ms: Date.now() - started, output, error: failed.join('\n') });
    else results.push({ id: block.id, ok: true, ms: Date.now() - started, output });
  } catch (error) {
    results.push({ id: block.id, ok: false, ms: Date.now() - started, output, error: error instanceof Error ? (error.stack ?? error.message) : String(error) });
  } finally {
    clearTimeout(timer);
    Object.assign(console, original);
    await library.endRun().catch(() => undefined);
    process.chdir(tmpdir());
    rmSync(sandbox, { recursive: true, force: true });
  }
}

writeFileSync(resultsPath, JSON.stringify(results));
// An example that timed out may still hold the event loop.
process.exit(0);
