/** Holds docs/checkpoint-archives.md to the code: the skip list table and the example manifest. */
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_COMPRESSION_LEVEL } from '../../src/archive/create-checkpoint-archive.js';
import { checkpointManifestSchema } from '../../src/archive/manifest-schema.js';
import { DEFAULT_SKIP_RULES } from '../../src/archive/should-skip-file.js';

let doc: string;
beforeAll(async () => {
  doc = await readFile(fileURLToPath(new URL('../../docs/checkpoint-archives.md', import.meta.url)), 'utf8');
});

describe('docs/checkpoint-archives.md', () => {
  it('lists exactly the default skip rules, in order, with their categories', () => {
    const rows = [...doc.matchAll(/^\| `([^`]+)` \| (temporary|cache|lock|editor|vcs) \|/gm)].map((m) => [m[1], m[2]]);
    expect(rows).toEqual(DEFAULT_SKIP_RULES.map((rule) => [rule.pattern, rule.category]));
  });

  it('shows a manifest that readManifest would accept', () => {
    const at = doc.indexOf('<!-- example:manifest -->');
    const json = /```json\n([\s\S]*?)```/.exec(doc.slice(at))?.[1];
    expect(json).toBeDefined();
    expect(checkpointManifestSchema.safeParse(JSON.parse(json!)).success).toBe(true);
  });

  it('states the default compression level', () => {
    expect(doc).toContain(`**level ${DEFAULT_COMPRESSION_LEVEL}**`);
  });
});
