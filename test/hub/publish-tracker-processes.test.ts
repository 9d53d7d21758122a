/**
 * PublishTracker across real OS processes: four separate Node processes (the built package,
 * as users run it) share one state file and all ask to publish the same training at once, while
 * the Hub holds the commit so they truly overlap. One publish reaches the Hub; the other three
 * wait for it and report its commit.
 *
 * The overlap is proven, not hoped for: each process reports to a barrier (a `barrier` line on
 * its stdout) once its tracker has seen the publish in progress, and the Hub stand-in releases
 * the held commit only after all four reported and the commit arrived. No sleep decides it.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFakeHub, type FakeHub } from '../support/fake-hub/index.js';
import { tempDir, writeFusedModel } from './helpers.js';

const DIST = resolve(__dirname, '..', '..', 'dist', 'index.js');

const CHILD = `
const [dist, stateFile, modelDir, repoId, hubUrl, token] = process.argv.slice(1);
const { PublishTracker } = await import(dist);
// The barrier: report once this process saw the publish in progress (its own or another's).
let reported = false;
const info = (line) => {
  if (!reported && /^publish training-42: uploading: /.test(line)) {
    reported = true;
    process.stdout.write('barrier uploading\\n');
  }
};
const logger = { debug() {}, info, warn() {}, error() {} };
const tracker = new PublishTracker({ stateFile, pollMs: 50, logger, defaults: { hubUrl, accessToken: token, env: {}, retry: { maxRetries: 2, backoffFactor: 0, backoffJitter: 0 } } });
const result = await tracker.publishOnce('training-42', { repoId, modelDir });
process.stdout.write(JSON.stringify({ pid: process.pid, status: result.status, commitOid: result.commitOid }) + '\\n');
`;

function runChild(args: string[], onBarrier: () => void): Promise<{ pid: number; status: string; commitOid: string }> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, ['--input-type=module', '-e', CHILD, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (c: Buffer) => {
      const before = out.split('\n').length;
      out += c.toString();
      const lines = out.split('\n');
      // Each complete `barrier` line, once.
      for (const line of lines.slice(before - 1, -1)) if (line === 'barrier uploading') onBarrier();
    });
    child.stderr.on('data', (c: Buffer) => (err += c.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      if (code !== 0) reject(new Error(`child exited ${code}: ${err}`));
      else resolvePromise(JSON.parse(out.trim().split('\n').pop()!) as { pid: number; status: string; commitOid: string });
    });
  });
}

let hub: FakeHub;
beforeAll(async () => {
  hub = await startFakeHub();
});
afterAll(async () => {
  await hub.stop();
});

describe('PublishTracker across processes', () => {
  it('four processes, one state file, one training: exactly one commit, everyone gets it', async () => {
    if (!existsSync(DIST)) throw new Error(`${DIST} is missing: run \`npm run build\` first (npm test does)`);
    const root = await tempDir('au-tracker-procs-');
    const modelDir = await writeFusedModel(join(root, 'model'));
    const stateFile = join(root, 'state', 'publish-state.json');
    const repoId = `tester/procs-${Date.now().toString(36)}`;

    // Hold the one commit until every process reported to the barrier and the commit arrived.
    let release!: () => void;
    const held = hub.addFault({ route: 'commit', action: 'hold', until: new Promise<void>((r) => (release = r)) });
    let atBarrier = 0;
    let released = false;
    const releaseWhenReady = (): void => {
      if (released || atBarrier < 4 || held.hits < 1) return;
      released = true;
      release();
    };
    // The commit's arrival is an event of the stand-in's; look for it as it comes (no deadline).
    const watch = setInterval(releaseWhenReady, 20);
    const args = [pathToFileURL(DIST).href, stateFile, modelDir, repoId, hub.url, hub.token];
    const onBarrier = (): void => {
      atBarrier++;
      releaseWhenReady();
    };
    const results = await Promise.all([0, 1, 2, 3].map(() => runChild(args, onBarrier))).finally(() => {
      clearInterval(watch);
      release(); // a failed child must not leave the Hub holding
    });

    expect(released).toBe(true);
    expect(atBarrier).toBe(4);
    expect(new Set(results.map((r) => r.pid)).size).toBe(4);
    expect(results.filter((r) => r.status === 'published')).toHaveLength(1);
    expect(results.filter((r) => r.status === 'already-published')).toHaveLength(3);
    const head = hub.head(repoId);
    expect(results.every((r) => r.commitOid === head)).toBe(true);
    expect(hub.requests.filter((r) => r.route === 'commit' && r.url.includes(repoId.split('/')[1]!))).toHaveLength(1);
    expect(held.hits).toBe(1);
    expect(hub.files(repoId)).toEqual(expect.arrayContaining(['model.safetensors', 'config.json', 'README.md']));
  });
});
