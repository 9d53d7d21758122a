/**
 * Holds docs/configuration.md to the schema: the reference table must be exactly what
 * describeConfigSchema() says, the example files must load, and the documented error text must
 * be what the loader produces. To regenerate the table after a schema change:
 *
 *   UPDATE_CONFIG_DOCS=1 npx vitest run test/config/docs.test.ts
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/core/errors.js';
import { loadTrackingConfig } from '../../src/config/load.js';
import { describeConfigSchema, type ConfigKeyDescription } from '../../src/config/schema.js';

const DOC = fileURLToPath(new URL('../../docs/configuration.md', import.meta.url));
const START = '<!-- config-reference:start (generated from describeConfigSchema(); see test/config/docs.test.ts) -->';
const END = '<!-- config-reference:end -->';

function cell(text: string): string {
  return text.replace(/\|/g, '\\|');
}

function renderDefault(key: ConfigKeyDescription): string {
  if (key.default === undefined) return '(unset)';
  return `\`${typeof key.default === 'string' ? key.default : JSON.stringify(key.default)}\``;
}

async function renderReference(): Promise<string> {
  const rows = (await describeConfigSchema()).map(
    (key) =>
      `| \`${key.path}\` | ${cell(key.type)} | ${renderDefault(key)} | ${key.env ? `\`${key.env}\`` : ''} | ${cell(key.description)} |`,
  );
  return ['| Key | Type | Default | Env override | Description |', '|---|---|---|---|---|', ...rows].join('\n');
}

/** The fenced block that follows a `<!-- name -->` marker. */
function fencedAfter(doc: string, marker: string): string {
  const at = doc.indexOf(`<!-- ${marker} -->`);
  expect(at, `marker <!-- ${marker} --> in docs/configuration.md`).toBeGreaterThanOrEqual(0);
  const match = /```[a-z]*\n([\s\S]*?)```/.exec(doc.slice(at));
  expect(match, `fenced block after <!-- ${marker} -->`).not.toBeNull();
  return match![1]!;
}

let doc: string;
let dir: string;
beforeAll(async () => {
  doc = await readFile(DOC, 'utf8');
  dir = await mkdtemp(join(tmpdir(), 'au-config-docs-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('docs/configuration.md', () => {
  it('has the reference table describeConfigSchema() generates', async () => {
    const expected = `${START}\n${await renderReference()}\n${END}`;
    const block = () => {
      const start = doc.indexOf(START);
      const end = doc.indexOf(END);
      expect(start, 'reference start marker').toBeGreaterThanOrEqual(0);
      expect(end, 'reference end marker').toBeGreaterThan(start);
      return { start, end: end + END.length };
    };
    if (process.env.UPDATE_CONFIG_DOCS === '1') {
      const { start, end } = block();
      doc = doc.slice(0, start) + expected + doc.slice(end);
      await writeFile(DOC, doc);
    }
    const { start, end } = block();
    expect(doc.slice(start, end), 'run UPDATE_CONFIG_DOCS=1 npx vitest run test/config/docs.test.ts').toBe(expected);
  });

  it('mentions every key path and env override outside the table too (the prose stays honest)', async () => {
    const keys = await describeConfigSchema();
    expect(keys.length).toBeGreaterThan(20);
    for (const key of keys) expect(doc).toContain(`\`${key.path}\``);
    for (const env of new Set(keys.flatMap((k) => (k.env ? [k.env] : [])))) expect(doc).toContain(env);
    expect(doc).toContain('MLFLOW_SKIP_ARTIFACT_LOGGING');
    expect(doc).toContain('ARTIFACT_UPLOADER_CONFIG_DIR');
  });

  it('full example loads and equals the defaults it claims to spell out', async () => {
    await writeFile(join(dir, 'artifact-uploader.yaml'), fencedAfter(doc, 'example:full'));
    const fromDoc = await loadTrackingConfig({ configDir: dir, env: { HOME: '/home/me' } });
    const defaults = await loadTrackingConfig({ config: {}, env: {} });
    expect({ ...fromDoc, hub: {} }).toEqual(defaults);
    expect(fromDoc.hub).toEqual({ fineTunedModelsDir: '/home/me/fine-tuned', pattern: 'my-model_*', repoId: 'my-org/my-model', private: true });
  });

  it('short example loads', async () => {
    await writeFile(join(dir, 'artifact-uploader.yaml'), fencedAfter(doc, 'example:short'));
    const config = await loadTrackingConfig({ configDir: dir, env: {} });
    expect(config.training.metrics.enabled).toBe(false);
    expect(config.hpo.trialCheckpoints.enabled).toBe(false);
  });

  it('documented error text is what the loader says', async () => {
    await writeFile(join(dir, 'artifact-uploader.yaml'), fencedAfter(doc, 'example:bad'));
    const error = await loadTrackingConfig({ configDir: dir, env: {} }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConfigError);
    const message = (error as ConfigError).message.replaceAll(join(dir, 'artifact-uploader.yaml'), '/srv/pipeline/artifact-uploader.yaml');
    expect(fencedAfter(doc, 'example:bad-message').trimEnd()).toBe(message.trimEnd());
  });
});
