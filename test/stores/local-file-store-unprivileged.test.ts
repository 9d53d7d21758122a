/**
 * The `file:` store as a user without root's privileges (the tests drop root for good when run
 * as root, test/support/unprivileged.ts): a copy keeps its source's mode (`shutil.copystat`), so
 * a read-only source makes a read-only artifact, which only root could open for writing. The
 * next upload of the same path must still replace it (a rename needs the directory's write bit,
 * not the file's), and a copy of a setuid/setgid/sticky file keeps those bits as far as the
 * kernel lets this user set them, as MLflow's `log_artifact` does.
 */
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../../src/core/logger.js';
import { LocalFileStore } from '../../src/stores/local-file-store.js';
import { SMALL_FILE_BYTES } from '../../src/stores/source-file.js';
import { dropRootForGood, giveToNobody, isRoot, NOBODY } from '../support/unprivileged.js';

let root: string;
const modeOf = (path: string) => (statSync(path).mode & 0o7777).toString(8);

describe('LocalFileStore as an unprivileged user', () => {
  beforeAll(() => {
    // Everything needing root first: the fixtures, handed to nobody, then root dropped.
    root = mkdtempSync(join(tmpdir(), 'au-file-store-user-'));
    mkdirSync(join(root, 'src'));
    mkdirSync(join(root, 'artifacts'));
    giveToNobody(root);
    dropRootForGood();
    expect(process.getuid?.()).not.toBe(0);
    if (isRoot) expect(process.getuid?.()).toBe(NOBODY);
  });
  afterAll(() => {
    if (root) rmSync(root, { recursive: true, force: true });
  });

  const store = () => new LocalFileStore({ artifactUri: pathToFileURL(join(root, 'artifacts')).href, logger: silentLogger });

  it.each([
    ['small (read whole)', 100],
    ['streamed', SMALL_FILE_BYTES + 5],
  ])('a read-only artifact (the copy of a 0444 source) is replaced by the next upload of its path, %s', async (name, size) => {
    const source = join(root, 'src', `frozen-${size}.bin`);
    const first = randomBytes(size);
    writeFileSync(source, first);
    chmodSync(source, 0o444);
    await store().uploadFile(source, `m/frozen-${size}.bin`);
    const artifact = join(root, 'artifacts', 'm', `frozen-${size}.bin`);
    expect(modeOf(artifact)).toBe('444');

    // The source rewritten (its owner may, after a chmod), then uploaded again to the same path.
    const second = randomBytes(size);
    chmodSync(source, 0o644);
    writeFileSync(source, second);
    chmodSync(source, 0o444);
    await store().uploadFile(source, `m/frozen-${size}.bin`);
    expect(readFileSync(artifact).equals(second)).toBe(true);
    expect(modeOf(artifact)).toBe('444');
  });

  it('a setuid, setgid or sticky source keeps those bits in its copy, as shutil.copystat keeps them for its owner', async () => {
    for (const mode of [0o4755, 0o2755, 0o1755, 0o6750]) {
      const source = join(root, 'src', `tool-${mode.toString(8)}`);
      writeFileSync(source, '#!/bin/sh\n');
      chmodSync(source, mode);
      await store().uploadFile(source, `bin/tool-${mode.toString(8)}`);
      expect(modeOf(join(root, 'artifacts', 'bin', `tool-${mode.toString(8)}`))).toBe(mode.toString(8));
    }
  });
});
