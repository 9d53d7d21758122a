/**
 * PublishTracker across real OS processes: four separate Node processes (the built package,
 * as users run it) share one state file and all ask to publish the same training at once, while
 * the Hub holds the commit so they truly overlap. One publish reaches the Hub; the other three
 * wait for it and report its commit.
 */
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFakeHub, type FakeHub } from '../support/fake-hub/index.js';
import { runNodeScript } from '../support/processes.js';
import { tempDir, writeFusedModel } from './helpers.js';

const DIST = resolve(__dirname, '..', '..', 'dist', 'index.js');

const CHILD = `
const [dist, stateFile, modelDir, repoId, hubUrl, token] = process.argv.slice(1);
const { PublishTracker } = await import(dist);
const tracker = new PublishTracker({ stateFile, pollMs: 50, defaults: { hubUrl, accessToken: token, env: {}, retry: { maxRetries: 2, backoffFactor: 0, backoffJitter: 0 } } });
const result = await tracker.publishOnce('training-42', { repoId, modelDir });
process.stdout.write(JSON.stringify({ pid: process.pid, status: result.status, commitOid: result.commitOid }) + '\\n');
`;

function runChild(args: string[]): Promise<{ pid: number; status: string; commitOid: string }> {
  return runNodeScript<{ pid: number; status: string; commitOid: string }>(CHILD, args);
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

    // Hold the one commit until every process is up and waiting on the state file.
    let release!: () => void;
    const held = hub.addFault({ route: 'commit', action: 'hold', until: new Promise<void>((r) => (release = r)) });
    const timer = setTimeout(() => release(), 2_500);
    const args = [pathToFileURL(DIST).href, stateFile, modelDir, repoId, hub.url, hub.token];
    const results = await Promise.all([0, 1, 2, 3].map(() => runChild(args))).finally(() => clearTimeout(timer));

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
