/** Holds docs/uploader.md to the code: the table of default kinds per method and stage. */
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { expect, it } from 'vitest';
import { STAGES } from '../../src/config/schema.js';
import { DEFAULT_KINDS } from '../../src/uploader/options.js';

it('docs/uploader.md lists the default kind of each checkpoint method in each stage', async () => {
  const doc = await readFile(fileURLToPath(new URL('../../docs/uploader.md', import.meta.url)), 'utf8');
  const header = /^\| method \| (.+) \|$/m.exec(doc.slice(doc.indexOf('### Which config switch applies')))![1]!.split(' | ');
  expect(header).toEqual([...STAGES]);
  const row = (method: string) => new RegExp(`^\\| ${method.replace(/[`,]/g, (c) => `\\${c}`)} \\| (.+) \\|$`, 'm').exec(doc)![1]!.split(' | ');
  expect(row('`uploadCheckpoint`')).toEqual(STAGES.map((s) => `\`${DEFAULT_KINDS.checkpoint[s]}\``));
  expect(row('`uploadCheckpointArchive`, `archiveAndUploadCheckpoint`')).toEqual(STAGES.map((s) => `\`${DEFAULT_KINDS.archive[s]}\``));
});
