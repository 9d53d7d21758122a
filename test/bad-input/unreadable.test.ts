/**
 * Unreadable files, refused with PATH_UNREADABLE before any byte is sent: in the planner, in
 * the small-file reader and in a directory upload to a real MLflow server, whose proxy log
 * proves no PUT was made; and a config dir whose files cannot be looked up. Root reads
 * everything, so when the tests run as root (as CI does) this file drops root for good once its
 * fixtures exist (test/support/unprivileged.ts): the cases run for real everywhere, never skipped.
 */
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { LocalPathError } from '../../src/core/errors.js';
import { ArtifactUploader, loadTrackingConfig } from '../../src/index.js';
import { planDirectory } from '../../src/uploader/plan.js';
import { silentLogger } from '../../src/core/logger.js';
import { readSmallSourceFile } from '../../src/stores/source-file.js';
import { LocalFileStore } from '../../src/stores/local-file-store.js';
import { listRunArtifacts } from '../faults/helpers.js';
import { serverRun } from '../uploader/helpers.js';
import { startFaultProxy, type FaultProxy } from '../support/fault-proxy.js';
import { describeWithServers, mlflowServer } from '../support/servers.js';
import { dropRootForGood, giveToNobody, NOBODY, isRoot } from '../support/unprivileged.js';

let root: string;
let ckpt: string;

async function failure(action: Promise<unknown>): Promise<LocalPathError> {
  const error = await action.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(LocalPathError);
  expect(error).toMatchObject({ code: 'PATH_UNREADABLE' });
  expect((error as LocalPathError).message).toMatch(/secret\.bin/);
  expect((error as LocalPathError).hint).toBeTruthy();
  return error as LocalPathError;
}

describeWithServers('unreadable files (as nobody when the tests run as root)', () => {
  let front: FaultProxy;
  let runId: string;

  beforeAll(async () => {
    // Everything needing root first: the fixtures, handed to nobody, then root dropped.
    root = mkdtempSync(join(tmpdir(), 'au-unreadable-'));
    ckpt = join(root, 'ckpt');
    mkdirSync(ckpt);
    writeFileSync(join(ckpt, 'weights.bin'), 'valid bytes that must not be uploaded either');
    writeFileSync(join(ckpt, 'secret.bin'), 'x');
    mkdirSync(join(root, 'config'));
    writeFileSync(join(root, 'config', 'artifact-uploader.yaml'), 'training:\n  enabled: false\n');
    mkdirSync(join(root, 'readable'));
    writeFileSync(join(root, 'readable', 'small.bin'), 'x'.repeat(1024));
    writeFileSync(join(root, 'readable', 'big.bin'), Buffer.alloc(3 * 1024 * 1024, 7)); // streamed, not read whole
    mkdirSync(join(root, 'artifacts', 'locked'), { recursive: true });
    giveToNobody(root);
    chmodSync(join(root, 'artifacts', 'locked'), 0o555); // its owner (nobody, or the current user) may not write in it
    chmodSync(join(ckpt, 'secret.bin'), 0o000); // its owner (nobody, or the current user) may not read it
    chmodSync(join(root, 'config'), 0o600); // listable, but no file in it can be looked up
    dropRootForGood();
    expect(process.getuid?.()).not.toBe(0);
    if (isRoot) expect(process.getuid?.()).toBe(NOBODY);

    front = await startFaultProxy(mlflowServer().url);
    runId = (await serverRun(mlflowServer().url)).runId;
  });
  afterAll(async () => {
    await front?.stop();
    if (!root) return;
    // Searchable (and writable) again (its owner may), or its files could not be removed.
    chmodSync(join(root, 'config'), 0o700);
    chmodSync(join(root, 'artifacts', 'locked'), 0o755);
    rmSync(root, { recursive: true, force: true });
  });

  it('the planner refuses the directory', async () => {
    await failure(planDirectory(ckpt));
  });

  it('the small-file reader refuses the file', async () => {
    await failure(readSmallSourceFile(join(ckpt, 'secret.bin'), undefined, silentLogger));
  });

  it('a config dir whose files cannot be looked up is PATH_UNREADABLE, not the defaults', async () => {
    const error = await loadTrackingConfig({ configDir: join(root, 'config'), env: {} }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(LocalPathError);
    expect(error).toMatchObject({ code: 'PATH_UNREADABLE', path: join(root, 'config', 'artifact-uploader.yaml') });
    expect((error as LocalPathError).hint).toMatch(/permissions/);
  });

  it('uploadDirectory and uploadFile to an MLflow server refuse it, and no PUT is sent', async () => {
    const uploader = new ArtifactUploader({ stage: 'training', runId, trackingUri: front.url, env: {}, configDir: root, retry: { maxRetries: 0 } });
    await failure(uploader.uploadDirectory(ckpt));
    await failure(uploader.uploadFile(join(ckpt, 'secret.bin')));
    expect(front.requests.filter((r) => r.method === 'PUT' || r.path.includes('/mpu/'))).toEqual([]);
    expect(await listRunArtifacts(mlflowServer().url, runId)).toEqual([]);
  });

  it('a file: artifact directory this user may not write to is PATH_UNWRITABLE, naming the directory, not the readable source', async () => {
    const store = new LocalFileStore({ artifactUri: join(root, 'artifacts') });
    const locked = join(root, 'artifacts', 'locked');
    for (const name of ['small.bin', 'big.bin']) {
      const error = await store.uploadFile(join(root, 'readable', name), `locked/${name}`).catch((e: unknown) => e);
      expect(error, name).toBeInstanceOf(LocalPathError);
      expect(error, name).toMatchObject({ code: 'PATH_UNWRITABLE', path: locked });
      expect((error as LocalPathError).message, name).toContain(`Cannot create a file in the artifact directory ${locked}`);
      expect((error as LocalPathError).message, name).not.toContain(name);
      expect((error as LocalPathError).hint, name).toMatch(/writable for the user running the upload/);
      expect(readdirSync(locked), name).toEqual([]);
    }
    // A subdirectory that cannot be created in it: the same, not "a file in the way" (NOT_A_DIRECTORY).
    const sub = join(locked, 'step_1');
    const error = await store.uploadFile(join(root, 'readable', 'small.bin'), 'locked/step_1/small.bin').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(LocalPathError);
    expect(error).toMatchObject({ code: 'PATH_UNWRITABLE', path: sub, message: expect.stringContaining(`Cannot create the artifact directory ${sub}`) });
    expect((error as LocalPathError).hint).toMatch(/writable for the user running the upload/);
    expect(readdirSync(locked)).toEqual([]);
  });
});
