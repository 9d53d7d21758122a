/** The local-file checks every store runs before it sends a file, and the small-file read. */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { LocalPathError } from '../../src/core/errors.js';
import type { Logger } from '../../src/core/logger.js';
import { readSmallSourceFile, SMALL_FILE_BYTES, statSourceFile } from '../../src/stores/source-file.js';

const scratch = () => mkdtempSync(join(tmpdir(), 'au-source-file-'));
function recordingLogger(): Logger & { warnings: string[] } {
  const warnings: string[] = [];
  return { warnings, debug() {}, info() {}, warn: (m: string) => void warnings.push(m), error() {} };
}

async function codeOf(promise: Promise<unknown>): Promise<string | undefined> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(LocalPathError);
  return (error as LocalPathError).code;
}

describe('readSmallSourceFile', () => {
  it('reads a small file whole and gives only the size of a big one', async () => {
    const dir = scratch();
    const small = Buffer.from('0123456789'.repeat(100));
    writeFileSync(join(dir, 'small.bin'), small);
    writeFileSync(join(dir, 'empty.bin'), Buffer.alloc(0));
    writeFileSync(join(dir, 'big.bin'), Buffer.alloc(SMALL_FILE_BYTES + 1, 1));
    const logger = recordingLogger();

    const read = await readSmallSourceFile(join(dir, 'small.bin'), small.length, logger);
    expect(read.size).toBe(small.length);
    expect(read.bytes?.equals(small)).toBe(true);
    expect(await readSmallSourceFile(join(dir, 'empty.bin'), 0, logger)).toMatchObject({ size: 0, bytes: Buffer.alloc(0) });
    const big = await readSmallSourceFile(join(dir, 'big.bin'), undefined, logger);
    expect(big).toMatchObject({ size: SMALL_FILE_BYTES + 1 });
    expect(big.bytes).toBeUndefined();
    // What a local copy keeps (mode and times), from the same fstat: no call of its own.
    const info = statSync(join(dir, 'big.bin'), { bigint: true });
    expect(big.attributes).toEqual({ mode: Number(info.mode) & 0o7777, atimeNs: info.atimeNs, mtimeNs: info.mtimeNs });
    expect(logger.warnings).toEqual([]);
  });

  it('fails with the same typed errors as statSourceFile, without hanging on a FIFO', async () => {
    const dir = scratch();
    mkdirSync(join(dir, 'sub'));
    execFileSync('mkfifo', [join(dir, 'pipe')]);
    const logger = recordingLogger();
    for (const name of ['missing.bin', 'sub', 'pipe']) {
      const path = join(dir, name);
      expect(await codeOf(readSmallSourceFile(path, undefined, logger))).toBe(await codeOf(statSourceFile(path, undefined, logger)));
    }
    expect(await codeOf(readSmallSourceFile(join(dir, 'missing.bin'), undefined, logger))).toBe('PATH_NOT_FOUND');
    expect(await codeOf(readSmallSourceFile(join(dir, 'sub'), undefined, logger))).toBe('NOT_A_FILE');
    expect(await codeOf(readSmallSourceFile(join(dir, 'pipe'), undefined, logger))).toBe('NOT_A_FILE');
  });

  // An unreadable file: test/bad-input/unreadable.test.ts (it drops root, so it runs in CI).

  it('warns once when the file changed size since it was planned, and sends what is there now', async () => {
    const dir = scratch();
    writeFileSync(join(dir, 'grown.txt'), 'now longer');
    const logger = recordingLogger();
    const read = await readSmallSourceFile(join(dir, 'grown.txt'), 3, logger);
    expect(read.bytes?.toString()).toBe('now longer');
    expect(logger.warnings).toHaveLength(1);
    expect(logger.warnings[0]).toMatch(/changed size since it was planned \(3 -> 10 bytes\)/);
  });
});
