/**
 * prepareUpload, the local half of a publish: how often it reads the model directory (counted
 * through the fs hooks), with the warning about the hidden folders it leaves out unchanged.
 */
import { join, relative, sep } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { silentLogger } from '../../src/core/logger.js';
import { prepareUpload } from '../../src/hub/prepare-upload.js';
import { fsHooks, resetFsHooks } from '../support/fs-hooks.js';
import { tempDir, writeFiles, writeFusedModel } from './helpers.js';

vi.mock('node:fs/promises', async (importOriginal) => (await import('../support/fs-hooks.js')).hookedFs(await importOriginal()));

afterEach(resetFsHooks);

describe('prepareUpload', () => {
  it('reads each folder of the model directory once: the hidden-folder warning comes from the validation listing', async () => {
    const modelDir = await writeFusedModel(await tempDir());
    await writeFiles(modelDir, {
      'tokenizer/vocab.txt': 'a\nb\n',
      'tokenizer/.hydra/overrides.yaml': '[]\n',
      '.hydra/config.yaml': 'lr: 0.001\n',
      '.git/HEAD': 'ref: refs/heads/main\n',
    });
    const reads: string[] = [];
    fsHooks.afterReaddir = (path) => {
      reads.push(path);
    };

    const prepared = await prepareUpload({ modelDir, repoId: 'tester/model', logger: silentLogger });
    try {
      // `tokenizer/` is only ever walked by the listing (layout detection reads the top folder
      // alone): read twice, the whole folder was walked a second time for the warning.
      expect(reads.filter((path) => path === join(modelDir, 'tokenizer'))).toHaveLength(1);
      // Hidden folders are never walked.
      const inside = reads.filter((path) => path.startsWith(`${modelDir}${sep}`)).map((path) => relative(modelDir, path));
      expect(inside.filter((path) => path.split(sep).some((name) => name.startsWith('.')))).toEqual([]);
      expect(prepared.validation.hiddenDirectories).toEqual(['.git', '.hydra', 'tokenizer/.hydra']);
      expect(prepared.warnings.filter((w) => w.includes('hidden folders'))).toEqual([
        `Left out of the upload, as hidden folders: ".hydra/", "tokenizer/.hydra/" (in ${modelDir}). huggingface_hub's upload_folder would send them; to publish a file of one, copy it to a folder whose name does not start with a dot.`,
      ]);
      expect(prepared.files.map((f) => f.path)).toEqual(['README.md', 'config.json', 'model.safetensors', 'tokenizer/vocab.txt', 'tokenizer_config.json']);
    } finally {
      await prepared.cleanup();
    }
  });
});
