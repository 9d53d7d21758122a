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
 *
 * Each result says when the example started and ended (`startedAt`, `endedAt`: `Date.now()`, so
 * the test can match them with the Hub stand-in's requests), and a timed-out one what this
 * process was still waiting on (`pending`: its open connections and other active resources).
 * SIGUSR2 times out the running example at once: the test's way to stop an example it knows is
 * stuck (its request held by the stand-in) without waiting for `timeoutMs`.
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

/**
 * What this process waits on, for a timed-out example: its TCP connections (local port → remote
 * port, from the diagnostic report's libuv handles) and its active resources by kind (timers, fs
 * requests, ...). Only those two parts of the report are read: the rest holds the environment,
 * tokens included.
 */
function pendingWork() {
  const connections = process.report
    .getReport()
    .libuv.filter((h) => h.type === 'tcp' && h.remoteEndpoint)
    .map((h) => `tcp ${h.localEndpoint?.port} -> ${h.remoteEndpoint.ip4 ?? h.remoteEndpoint.host}:${h.remoteEndpoint.port}${h.is_active ? ' (reading)' : ''}`);
  const counts = new Map();
  for (const kind of process.getActiveResourcesInfo()) counts.set(kind, (counts.get(kind) ?? 0) + 1);
  return { connections, resources: [...counts].map(([kind, n]) => `${kind} x${n}`) };
}

/** Times out the running example at once (see the header); set while one runs. */
let giveUp;
process.on('SIGUSR2', () => giveUp?.());

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
  const times = () => ({ ms: Date.now() - started, startedAt: started, endedAt: Date.now() });
  try {
    await Promise.race([
      import(pathToFileURL(block.file).href),
      new Promise((_, reject) => {
        const timedOut = (why) => {
          clearTimeout(timer); // not one of the example's own timers
          reject(Object.assign(new Error(`timed out ${why}`), { pending: pendingWork() }));
        };
        timer = setTimeout(() => timedOut(`after ${plan.timeoutMs} ms`), plan.timeoutMs);
        giveUp = () => timedOut('(stopped by the test: SIGUSR2)');
      }),
    ]);
    // Let results that settle right after the module's last await be seen.
    await new Promise((resolve) => setImmediate(resolve));
    const failed = globalThis.__failedExampleResults;
    if (failed.length > 0) results.push({ id: block.id, ok: false, ...times(), output, error: failed.join('\n') });
    else results.push({ id: block.id, ok: true, ...times(), output });
  } catch (error) {
    results.push({ id: block.id, ok: false, ...times(), output, error: error instanceof Error ? (error.stack ?? error.message) : String(error), ...(error?.pending ? { pending: error.pending } : {}) });
  } finally {
    clearTimeout(timer);
    giveUp = undefined;
    Object.assign(console, original);
    await library.endRun().catch(() => undefined);
    process.chdir(tmpdir());
    rmSync(sandbox, { recursive: true, force: true });
  }
}

writeFileSync(resultsPath, JSON.stringify(results));
// An example that timed out may still hold the event loop.
process.exit(0);
