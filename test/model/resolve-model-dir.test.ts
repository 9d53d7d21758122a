import { mkdirSync, utimesSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { InvalidArgumentError, ModelDirectoryError } from '../../src/core/errors.js';
import { expandHome } from '../../src/core/env.js';
import { globToRegExp, parseTimestampSuffix, resolveModelDir } from '../../src/model/resolve-model-dir.js';
import { tempDir } from './fixtures.js';

function makeDirs(root: string, names: string[]): void {
  for (const name of names) mkdirSync(join(root, name));
}

describe('resolveModelDir', () => {
  it('picks the newest by the timestamp suffix, not by mtime or by string order of whole names', async () => {
    const root = tempDir();
    makeDirs(root, ['zeta_20240101_000000', 'alpha_20240301_120000', 'mid_20240215_235959', 'alpha_final', 'alpha_20240301_120000_peft_converted']);
    writeFileSync(join(root, 'notes_20250101_000000'), 'a file, not a directory');
    // The oldest gets the newest mtime.
    const future = new Date(Date.now() + 3_600_000);
    utimesSync(join(root, 'zeta_20240101_000000'), future, future);

    const result = await resolveModelDir({ baseDir: root });
    expect(result.dir).toBe(join(root, 'alpha_20240301_120000'));
    expect(result.timestamp).toBe('20240301_120000');
    expect(result.source).toBe('search');
    expect(result.candidates.map((c) => c.name)).toEqual(['alpha_20240301_120000', 'mid_20240215_235959', 'zeta_20240101_000000']);
  });

  it('filters by the glob pattern before comparing timestamps', async () => {
    const root = tempDir();
    makeDirs(root, ['llama-lora_20240101_000000', 'llama-lora_20240102_000000', 'mistral-lora_20250101_000000', 'llama.lora_20260101_000000']);
    const result = await resolveModelDir({ baseDir: root, pattern: 'llama-lora_*' });
    expect(result.dir).toBe(join(root, 'llama-lora_20240102_000000'));
    expect(result.pattern).toBe('llama-lora_*');
    const single = await resolveModelDir({ baseDir: root, pattern: 'llama?lora_*' });
    expect(single.dir).toBe(join(root, 'llama.lora_20260101_000000'));
  });

  it('breaks equal timestamps by name so the choice is deterministic', async () => {
    const root = tempDir();
    makeDirs(root, ['a_20240101_000000', 'b_20240101_000000']);
    expect((await resolveModelDir({ baseDir: root })).dir).toBe(join(root, 'b_20240101_000000'));
  });

  it('ignores impossible timestamps', async () => {
    const root = tempDir();
    makeDirs(root, ['m_20241301_000000', 'm_20240230_000000', 'm_20240101_250000', 'm_20230101_000000']);
    expect((await resolveModelDir({ baseDir: root })).dir).toBe(join(root, 'm_20230101_000000'));
  });

  it('says where it looked, with which pattern, and what was there instead', async () => {
    const root = tempDir();
    makeDirs(root, ['llama_final', 'mistral_20240101_000000']);
    const error = await resolveModelDir({ baseDir: root, pattern: 'llama_*' }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ModelDirectoryError);
    const e = error as ModelDirectoryError;
    expect(e.directory).toBe(root);
    expect(e.pattern).toBe('llama_*');
    expect(e.found).toEqual(['llama_final', 'mistral_20240101_000000']);
    expect(e.message).toContain(root);
    expect(e.message).toContain('"llama_*"');
    expect(e.message).toContain('Found instead: llama_final, mistral_20240101_000000');
  });

  it('reports an empty or missing base directory', async () => {
    const root = tempDir();
    await expect(resolveModelDir({ baseDir: root })).rejects.toThrow(/The directory is empty/);
    const missing = await resolveModelDir({ baseDir: join(root, 'nope') }).catch((e: unknown) => e);
    expect(missing).toBeInstanceOf(ModelDirectoryError);
    expect((missing as ModelDirectoryError).directory).toBe(join(root, 'nope'));
  });

  it('uses modelDir as is, after checking it is a directory', async () => {
    const root = tempDir();
    makeDirs(root, ['chosen', 'x_20990101_000000']);
    const result = await resolveModelDir({ modelDir: join(root, 'chosen'), baseDir: root });
    expect(result).toEqual({ dir: join(root, 'chosen'), source: 'modelDir', timestamp: undefined, candidates: [] });
    writeFileSync(join(root, 'file'), '');
    await expect(resolveModelDir({ modelDir: join(root, 'file') })).rejects.toBeInstanceOf(ModelDirectoryError);
    await expect(resolveModelDir({ modelDir: join(root, 'missing') })).rejects.toThrow(/does not exist or is not a directory/);
  });

  it('prefers baseDir over configBaseDir and falls back to it', async () => {
    const fromOption = tempDir();
    const fromConfig = tempDir();
    makeDirs(fromOption, ['m_20240101_000000']);
    makeDirs(fromConfig, ['m_20250101_000000']);
    expect((await resolveModelDir({ baseDir: fromOption, configBaseDir: fromConfig })).dir).toBe(join(fromOption, 'm_20240101_000000'));
    expect((await resolveModelDir({ configBaseDir: fromConfig })).dir).toBe(join(fromConfig, 'm_20250101_000000'));
  });

  it('refuses to guess when given nothing, and rejects patterns with path separators', async () => {
    await expect(resolveModelDir({})).rejects.toBeInstanceOf(InvalidArgumentError);
    await expect(resolveModelDir({ baseDir: tempDir(), pattern: 'a/b_*' })).rejects.toThrow(/without path separators/);
  });
});

describe('helpers', () => {
  it('expands ~ only at the start', () => {
    expect(expandHome('~')).toBe(homedir());
    expect(expandHome('~/models')).toBe(join(homedir(), 'models'));
    expect(expandHome('~bob/models')).toBe('~bob/models');
    expect(expandHome('/a/~/b')).toBe('/a/~/b');
    // The env's HOME first (a config loaded with another env), and a blank one is no home.
    expect(expandHome('~/models', { HOME: '/home/other' })).toBe(join('/home/other', 'models'));
    expect(expandHome('~/models', { HOME: ' ' })).toBe(join(homedir(), 'models'));
  });

  it('turns globs into anchored regexes with literal specials', () => {
    expect(globToRegExp('a.b_*').test('a.b_x')).toBe(true);
    expect(globToRegExp('a.b_*').test('axb_x')).toBe(false);
    expect(globToRegExp('m(1)+_?').test('m(1)+_z')).toBe(true);
    expect(globToRegExp('m_*').test('xm_1')).toBe(false);
  });

  it('parses timestamp suffixes', () => {
    expect(parseTimestampSuffix('run_20240229_235959')).toBe('20240229_235959');
    expect(parseTimestampSuffix('20240101_000000')).toBe('20240101_000000');
    expect(parseTimestampSuffix('run_20230229_000000')).toBeUndefined();
    expect(parseTimestampSuffix('run_120240101_000000')).toBeUndefined();
    expect(parseTimestampSuffix('run_20240101_000000_copy')).toBeUndefined();
  });
});
