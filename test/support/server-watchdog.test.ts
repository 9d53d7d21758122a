/**
 * The test servers cannot outlive their run (test/support/server-watchdog.mjs, leftovers.ts) and
 * two runs cannot share a checkout (checkout-lock.ts). A real starter process runs the real
 * startProcess (bundled by esbuild, tsup's compiler, since Node 20 runs no TypeScript) and starts
 * a small Node "server" that forks a worker, as mlflow forks uvicorn's; the test SIGKILLs the
 * starter (or the starter and the watchdog) and waits, bounded, for the server and worker to go.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { buildSync } from 'esbuild';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CheckoutBusyError, claimCheckout } from './checkout-lock.js';
import { makeRunDir, RUN_DIR_OWNER_FILE, sweepLeftovers } from './leftovers.js';
import { startChild, type KillableChild } from './child-node.js';
import { startProcess } from './processes.js';
import { ownerId } from './run-owner.js';

const PROCESSES_TS = fileURLToPath(new URL('./processes.ts', import.meta.url));
const CHECKOUT = fileURLToPath(new URL('../..', import.meta.url));

/**
 * The "server": forks a worker, writes both pids to argv[1] (then "ready"), and stays up; with
 * argv[2] === 'stubborn' it ignores SIGTERM, as a hung server would.
 */
const SERVER = `
const { spawn } = require('node:child_process');
const { writeFileSync } = require('node:fs');
const [pidsFile, mode] = process.argv.slice(1);
if (mode === 'stubborn') process.on('SIGTERM', () => {});
if (mode === 'exit-3') process.exit(3);
const worker = spawn(process.execPath, ['-e', mode === 'stubborn' ? "process.on('SIGTERM', () => {}); setInterval(() => {}, 1000)" : 'setInterval(() => {}, 1000)'], { stdio: 'ignore' });
writeFileSync(pidsFile + '.tmp', JSON.stringify({ server: process.pid, worker: worker.pid }));
require('node:fs').renameSync(pidsFile + '.tmp', pidsFile);
setInterval(() => {}, 1000);
`;

/** The starter: startProcess of the SERVER; prints the watchdog's pid, then idles until killed. */
const STARTER = `
import { startProcess } from ${JSON.stringify(PROCESSES_TS)};
const [dir, mode] = process.argv.slice(2);
const proc = startProcess(process.execPath, ['-e', ${JSON.stringify(SERVER)}, dir + '/pids.json', mode], { logDir: dir, name: 'server' });
console.log('watchdog ' + proc.child.pid);
setInterval(() => {}, 1000);
`;

let work: string;
let starterScript: string;

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'au-watchdog-test-'));
  starterScript = join(work, 'starter.mjs');
  const bundle = buildSync({
    stdin: { contents: STARTER, resolveDir: work, loader: 'ts', sourcefile: 'starter.ts' },
    bundle: true,
    format: 'esm',
    platform: 'node',
    write: false,
    // So that processes.ts finds server-watchdog.mjs beside itself, as in the suite.
    define: { 'import.meta.url': JSON.stringify(pathToFileURL(PROCESSES_TS).href) },
  });
  writeFileSync(starterScript, bundle.outputFiles[0]!.text);
});

afterAll(() => rmSync(work, { recursive: true, force: true }));

/** Whether `pid` runs (a zombie does not: pid 1 here may never reap what was re-parented to it). */
function running(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  }
}

/** Polls every 50 ms until `condition` holds; fails after `timeoutMs` (a bound, not a barrier). */
async function waitUntil(condition: () => boolean, what: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`${what}: still not so after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

interface Started {
  starter: KillableChild;
  watchdog: number;
  server: number;
  worker: number;
  dir: string;
}

async function startThroughStarter(name: string, mode: 'plain' | 'stubborn'): Promise<Started> {
  const dir = join(work, name);
  mkdirSync(dir);
  const starter = startChild([starterScript, dir, mode]);
  const line = await new Promise<string>((resolve, reject) => {
    starter.child.stdout!.on('data', () => {
      const found = starter.output().split('\n').find((l) => l.startsWith('watchdog '));
      if (found) resolve(found);
    });
    starter.child.once('exit', (code) => reject(new Error(`starter exited ${code}: ${starter.output()}`)));
  });
  const pidsFile = join(dir, 'pids.json');
  await waitUntil(() => existsSync(pidsFile), `the server wrote ${pidsFile}`, 30_000);
  const { server, worker } = JSON.parse(readFileSync(pidsFile, 'utf8')) as { server: number; worker: number };
  return { starter, watchdog: Number(line.split(' ')[1]), server, worker, dir };
}

describe('test support: servers die with the test run', () => {
  it('SIGKILL of the process that started a server stops the server and its worker', async () => {
    const s = await startThroughStarter('killed-starter', 'plain');
    expect([s.watchdog, s.server, s.worker].every(running)).toBe(true);
    await s.starter.kill();
    await waitUntil(() => !running(s.server) && !running(s.worker) && !running(s.watchdog), 'server, worker and watchdog are gone', 15_000);
    expect(readFileSync(join(s.dir, 'server.log'), 'utf8')).toContain('the test process is gone');
  });

  it('a server that ignores SIGTERM is SIGKILLed (with its worker) after the grace time', async () => {
    const s = await startThroughStarter('stubborn', 'stubborn');
    await s.starter.kill();
    await waitUntil(() => !running(s.server) && !running(s.worker) && !running(s.watchdog), 'stubborn server, worker and watchdog are gone', 30_000);
    expect([s.server, s.worker, s.watchdog].filter(running)).toEqual([]);
  });

  it('stop() ends the server and its worker; the watchdog exits with the server exit code', async () => {
    const dir = join(work, 'stop');
    const proc = startProcess(process.execPath, ['-e', SERVER, join(dir, 'pids.json'), 'plain'], { logDir: dir, name: 'server' });
    await waitUntil(() => existsSync(join(dir, 'pids.json')), 'the server started', 30_000);
    const { server, worker } = JSON.parse(readFileSync(join(dir, 'pids.json'), 'utf8')) as { server: number; worker: number };
    await proc.stop();
    await waitUntil(() => !running(server) && !running(worker), 'server and worker are gone', 15_000);

    const failing = startProcess(process.execPath, ['-e', SERVER, join(dir, 'unused'), 'exit-3'], { logDir: dir, name: 'failing' });
    const code = await new Promise((resolve) => failing.child.once('exit', resolve));
    expect(code).toBe(3);
  });

  it('the next run removes the servers and temp dirs of a run killed together with its watchdogs', async () => {
    const s = await startThroughStarter('killed-tree', 'stubborn');
    // A run dir the starter "owns" (as global-setup marks its own), and one of this live process.
    const deadRunDir = mkdtempSync(join(tmpdir(), 'au-watchdog-sweep-'));
    writeFileSync(join(deadRunDir, RUN_DIR_OWNER_FILE), ownerId(s.starter.pid)!);
    const liveRunDir = makeRunDir('au-watchdog-sweep-');
    try {
      // Both at once, as `kill -9` of a process tree would: no watchdog is left to stop the server.
      process.kill(s.watchdog, 'SIGKILL');
      await s.starter.kill();
      await waitUntil(() => !running(s.watchdog), 'the watchdog is gone', 15_000);
      expect(running(s.server) && running(s.worker)).toBe(true);

      const swept = sweepLeftovers(['au-watchdog-sweep-']);
      expect(swept.processes).toEqual(expect.arrayContaining([s.server, s.worker]));
      await waitUntil(() => !running(s.server) && !running(s.worker), 'the leftover server and worker are gone', 15_000);
      expect(swept.dirs).toEqual([deadRunDir]);
      expect(existsSync(deadRunDir)).toBe(false);
      expect(existsSync(liveRunDir)).toBe(true);
    } finally {
      for (const pid of [s.server, s.worker]) if (running(pid)) process.kill(pid, 'SIGKILL');
      rmSync(deadRunDir, { recursive: true, force: true });
      rmSync(liveRunDir, { recursive: true, force: true });
    }
  });
});

describe('test support: one test run per checkout', () => {
  it('a second claim fails at once and names the live holder; a killed holder is taken over', async () => {
    const checkout = mkdtempSync(join(tmpdir(), 'au-checkout-lock-'));
    const env = { ...process.env, ARTIFACT_UPLOADER_TEST_CHECKOUT_OWNER: '' };
    try {
      const holderScript = buildSync({
        stdin: { contents: `import { claimCheckout } from ${JSON.stringify(fileURLToPath(new URL('./checkout-lock.ts', import.meta.url)))};\nclaimCheckout(process.argv[2], 'holder run');\nconsole.log('holding');\nsetInterval(() => {}, 1000);`, resolveDir: work, loader: 'ts' },
        bundle: true,
        format: 'esm',
        platform: 'node',
        write: false,
      }).outputFiles[0]!.text;
      writeFileSync(join(work, 'holder.mjs'), holderScript);
      const holder = startChild([join(work, 'holder.mjs'), checkout], { env });
      await holder.waitFor('holding', 30_000);

      let busy: unknown;
      try {
        claimCheckout(checkout, 'second run');
      } catch (error) {
        busy = error;
      }
      expect(busy).toBeInstanceOf(CheckoutBusyError);
      expect((busy as Error).message).toContain(`pid ${holder.pid} (holder run)`);
      expect((busy as Error).message).toContain(`kill ${holder.pid}`);

      await holder.kill();
      const release = claimCheckout(checkout, 'after the holder was killed');
      expect(JSON.parse(readFileSync(join(checkout, '.cache', 'test-run.lock'), 'utf8'))).toMatchObject({ command: 'after the holder was killed' });
      release();
      expect(existsSync(join(checkout, '.cache', 'test-run.lock'))).toBe(false);
    } finally {
      rmSync(checkout, { recursive: true, force: true });
    }
  });

  it('a second vitest started in this checkout while this run goes stops at once with the reason', () => {
    // As from another terminal: none of this run's variables (vitest's own included).
    const env: NodeJS.ProcessEnv = { ...process.env, ARTIFACT_UPLOADER_TEST_SERVERS: 'none' };
    for (const name of Object.keys(env)) if (name.startsWith('VITEST') || name === 'ARTIFACT_UPLOADER_TEST_CHECKOUT_OWNER') delete env[name];
    const vitest = join(CHECKOUT, 'node_modules', 'vitest', 'vitest.mjs');
    const result = spawnSync(process.execPath, [vitest, 'run', 'test/support/processes.test.ts'], { cwd: CHECKOUT, env, encoding: 'utf8', timeout: 60_000 });
    expect(result.status).not.toBe(0);
    expect(result.stdout + result.stderr).toContain('Another test run is using this checkout');
  });
});
