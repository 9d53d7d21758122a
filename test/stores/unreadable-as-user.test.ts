/**
 * Unreadable files, checked where they can be: root reads everything, so the unit tests of
 * PATH_UNREADABLE skip under root (as CI runs). This one runs only under root and does the real
 * thing: a child process running the built package as `nobody` meets a file it may not read,
 * in the planner, in a directory upload and in a single-file upload, and nothing reaches the
 * store.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

const DIST = resolve(__dirname, '..', '..', 'dist', 'index.js');
const NOBODY = 65534;
const isRoot = process.getuid?.() === 0;

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

describe.runIf(isRoot)('unreadable files, for a user who cannot read them (runs under root only)', () => {
  it('PATH_UNREADABLE from the planner, uploadDirectory and uploadFile, and nothing uploaded', () => {
    if (!existsSync(DIST)) throw new Error(`${DIST} is missing: run \`npm run build\` first (npm test does)`);
    const root = mkdtempSync(join(tmpdir(), 'au-unreadable-'));
    roots.push(root);
    mkdirSync(join(root, 'ckpt'));
    writeFileSync(join(root, 'ckpt', 'ok.txt'), 'fine');
    writeFileSync(join(root, 'ckpt', 'secret.bin'), 'x');
    for (const p of [root, join(root, 'ckpt'), join(root, 'ckpt', 'ok.txt')]) chownSync(p, NOBODY, NOBODY);
    chmodSync(join(root, 'ckpt', 'secret.bin'), 0o000); // root's, mode 000: nobody cannot read it

    const child = spawnSync(process.execPath, ['--input-type=module', '-e', CHILD, pathToFileURL(DIST).href, root], {
      uid: NOBODY,
      gid: NOBODY,
      cwd: root,
      env: { PATH: process.env.PATH, HOME: root },
      encoding: 'utf8',
      timeout: 60_000,
    });
    expect(child.status, child.stderr).toBe(0);
    const out = JSON.parse(child.stdout) as Record<string, string>;
    expect(out.uid).toBe(NOBODY);
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
