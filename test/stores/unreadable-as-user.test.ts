/**
 * Unreadable files, as the built package meets them: a child process running dist/ as `nobody`
 * (when the tests run as root, as CI does; else as the current user, who cannot read a mode-000
 * file either) meets a file it may not read, in the planner, in a directory upload and in a
 * single-file upload, and nothing reaches the store. The in-process unit tests of the same cases
 * drop root with test/support/unprivileged.ts.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { tempDirEnv } from '../support/run-temp-root.js';
import { isRoot, NOBODY, nodeForNobody } from '../support/unprivileged.js';

const DIST = resolve(__dirname, '..', '..', 'dist', 'index.js');

const CHILD = `
const [dist, root] = process.argv.slice(1);
const { planDirectory, ArtifactUploader, startRun } = await import(dist);
const codeOf = (p) => p.then((r) => 'resolved ' + JSON.stringify(r), (e) => e.code + ' ' + e.message);
const ckpt = root + '/ckpt';
const trackingUri = 'file:' + root + '/mlruns';
const run = await startRun({ trackingUri, experimentName: 'unreadable', activate: false, env: {} });
const uploader = new ArtifactUploader({ stage: 'training', runId: run.runId, trackingUri, configDir: root, env: {} });
const out = {
  uid: process.getuid(),
  runId: run.runId,
  plan: await codeOf(planDirectory(ckpt)),
  dir: await codeOf(uploader.uploadDirectory(ckpt)),
  file: await codeOf(uploader.uploadFile(ckpt + '/secret.bin')),
};
process.stdout.write(JSON.stringify(out));
`;

const roots: string[] = [];
afterAll(() => roots.forEach((r) => rmSync(r, { recursive: true, force: true })));

describe('unreadable files, for a user who cannot read them (as nobody when run as root)', () => {
  it('PATH_UNREADABLE from the planner, uploadDirectory and uploadFile, and nothing uploaded', () => {
    if (!existsSync(DIST)) throw new Error(`${DIST} is missing: run \`npm run build\` first (npm test does)`);
    const root = mkdtempSync(join(tmpdir(), 'au-unreadable-'));
    roots.push(root);
    mkdirSync(join(root, 'ckpt'));
    writeFileSync(join(root, 'ckpt', 'ok.txt'), 'fine');
    writeFileSync(join(root, 'ckpt', 'secret.bin'), 'x');
    if (isRoot) for (const p of [root, join(root, 'ckpt'), join(root, 'ckpt', 'ok.txt')]) chownSync(p, NOBODY, NOBODY);
    chmodSync(join(root, 'ckpt', 'secret.bin'), 0o000); // root's, mode 000: nobody cannot read it

    const child = spawnSync(nodeForNobody(root), ['--input-type=module', '-e', CHILD, pathToFileURL(DIST).href, root], {
      ...(isRoot ? { uid: NOBODY, gid: NOBODY } : {}),
      cwd: root,
      env: { PATH: process.env.PATH, HOME: root, ...tempDirEnv() },
      encoding: 'utf8',
      timeout: 60_000,
    });
    expect(child.status, child.stderr).toBe(0);
    const out = JSON.parse(child.stdout) as Record<string, string>;
    expect(out.uid).toBe(isRoot ? NOBODY : process.getuid?.());
    for (const key of ['plan', 'dir', 'file']) {
      expect(out[key], key).toMatch(/^PATH_UNREADABLE /);
      expect(out[key], key).toMatch(/secret\.bin/);
    }
    // The run exists in ./mlruns, and no artifact of it does.
    const runDirs = readdirSync(join(root, 'mlruns'), { recursive: true, withFileTypes: true }).filter((d) => d.isDirectory() && d.name === out.runId);
    expect(runDirs).toHaveLength(1);
    const artifacts = join(runDirs[0]!.parentPath, out.runId!, 'artifacts');
    expect(existsSync(artifacts) ? readdirSync(artifacts, { recursive: true }) : []).toEqual([]);
  });
});
