/**
 * publishToHub with files rewritten while they are published. `@huggingface/hub` hashes an
 * LFS file (its sha256 is the LFS oid and the `sha256` we report) and then reads it again to
 * upload it: one hash, two reads. A file rewritten between the two reads, or after its upload
 * but before the commit, must fail the publish with SOURCE_CHANGED and commit nothing; an
 * untouched file is reported with the sha256 of its bytes, verified by checksum. The same holds
 * for small files (kept in memory: hashed and sent from one read) and for inline files, whose
 * committed bytes must be the ones checked.
 */
import { writeFileSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SourceChangedError } from '../../src/core/errors.js';
import { publishToHub, type PublishToHubOptions } from '../../src/hub/publish.js';
import { startFakeHub, type FakeHub, type FakeHubRoute } from '../support/fake-hub/index.js';
import { safetensorsBytes, sha256, tempDir, writeFusedModel } from './helpers.js';

let hub: FakeHub;
let counter = 0;

beforeAll(async () => {
  hub = await startFakeHub();
});
afterAll(async () => {
  await hub.stop();
});

/**
 * A fused model whose weights (768 KiB) are above the size kept in memory, so they are read from
 * the file by the hash and again by the upload.
 */
async function bigWeightsModel(): Promise<{ modelDir: string; weights: string }> {
  const modelDir = await writeFusedModel(await tempDir());
  const weights = join(modelDir, 'model.safetensors');
  await writeFile(weights, safetensorsBytes({ 'model.embed_tokens.weight': { dtype: 'F16', shape: [768, 512] }, 'lm_head.weight': { dtype: 'F16', shape: [64, 16] } }, { format: 'pt' }));
  return { modelDir, weights };
}

function opts(modelDir: string): PublishToHubOptions & { repoId: string } {
  return {
    modelDir,
    repoId: `tester/source-change-${++counter}-${Date.now().toString(36)}`,
    hubUrl: hub.url,
    accessToken: hub.token,
    retry: { maxRetries: 3, backoffFactor: 0, backoffJitter: 0 },
    env: {},
  };
}

/**
 * Holds the first request to `route`, rewrites `path` in place (same size, other bytes) while
 * it is held, then lets it through. Resolves once the file is rewritten.
 */
function rewriteWhileHeld(route: FakeHubRoute, path: string): Promise<void> {
  const rewritten = new Promise<void>((resolve, reject) => {
    const started = Date.now();
    const poll = setInterval(() => {
      if (hub.requests.some((r) => r.route === route)) {
        clearInterval(poll);
        readFile(path)
          .then((bytes) => {
            bytes.writeUInt8(bytes.readUInt8(bytes.length - 1) ^ 0xff, bytes.length - 1);
            return writeFile(path, bytes);
          })
          .then(resolve, reject);
      } else if (Date.now() - started > 20_000) {
        clearInterval(poll);
        reject(new Error(`no ${route} request arrived`));
      }
    }, 2);
  });
  hub.addFault({ route, action: 'hold', until: rewritten });
  return rewritten;
}

/**
 * Publishes `modelDir` while `path` is rewritten once a `route` request arrives (held until
 * then); expects SOURCE_CHANGED for `path` and no commit (the repo holds only its initial one).
 */
async function expectRefusedWhenRewrittenAt(modelDir: string, path: string, route: FakeHubRoute): Promise<{ error: Error; repoId: string }> {
  const options = opts(modelDir);
  hub.clearLog();
  const rewritten = rewriteWhileHeld(route, path);
  const error = await publishToHub(options).catch((e: unknown) => e);
  await rewritten;
  expect(error).toBeInstanceOf(SourceChangedError);
  expect(error).toMatchObject({ code: 'SOURCE_CHANGED', path });
  expect(hub.requests.filter((r) => r.route === 'commit')).toHaveLength(0);
  expect(hub.commits(options.repoId)).toHaveLength(1);
  return { error: error as Error, repoId: options.repoId };
}

describe('publishToHub and a source rewritten mid-publish', () => {
  it('reports the LFS oid the Hub client computed as the sha256, verified by checksum, with one batch call and one upload', async () => {
    const { modelDir, weights } = await bigWeightsModel();
    const options = opts(modelDir);
    hub.clearLog();
    const result = await publishToHub(options);
    expect(result.status).toBe('published');
    const file = result.files.find((f) => f.path === 'model.safetensors');
    expect(file).toMatchObject({ verified: 'checksum', sha256: sha256(await readFile(weights)) });
    expect(sha256(hub.fileBytes(options.repoId, 'model.safetensors')!)).toBe(file!.sha256);
    const routes = hub.requests.map((r) => r.route);
    expect(routes.filter((r) => r === 'lfs-batch')).toHaveLength(1);
    expect(routes.filter((r) => r === 'lfs-upload')).toHaveLength(1);
    // Sent with Content-Length, as both official clients do.
    const upload = hub.requests.find((r) => r.route === 'lfs-upload')!;
    expect(upload.headers['content-length']).toBe(String(file!.size));
    expect(upload.headers['transfer-encoding']).toBeUndefined();
  });

  it('fails with SOURCE_CHANGED, committing nothing, when the weights are rewritten between the hash and the upload', async () => {
    const { modelDir, weights } = await bigWeightsModel();
    // The LFS batch call carries the oid: the hash is done, the upload not started.
    const { error } = await expectRefusedWhenRewrittenAt(modelDir, weights, 'lfs-batch');
    expect(error.message).toMatch(/rewritten/);
    // Not retried.
    expect(hub.requests.filter((r) => r.route === 'lfs-batch')).toHaveLength(1);
  });

  it('fails with SOURCE_CHANGED before the commit request when the weights are rewritten after their upload', async () => {
    const { modelDir, weights } = await bigWeightsModel();
    // The upload's body has arrived whole (the fake Hub reads it before the hold): the stored
    // object matches its oid, but the file is no longer the one hashed and sent.
    await expectRefusedWhenRewrittenAt(modelDir, weights, 'lfs-upload');
    expect(hub.requests.filter((r) => r.route === 'lfs-upload').map((r) => r.status)).toEqual([200]);
  });

  it('fails with SOURCE_CHANGED when small weights (kept in memory) are rewritten after their hash, and uploads the bytes hashed', async () => {
    // ~5 KB of weights: read once into memory, hashed from there, on LFS through .gitattributes.
    const modelDir = await writeFusedModel(await tempDir());
    const weights = join(modelDir, 'model.safetensors');
    const original = await readFile(weights);
    const { repoId } = await expectRefusedWhenRewrittenAt(modelDir, weights, 'lfs-batch');
    // The upload carried the bytes that were hashed (the fake Hub checks them against the oid).
    expect(hub.requests.filter((r) => r.route === 'lfs-upload').map((r) => r.status)).toEqual([200]);
    expect(hub.store.get('model', repoId)!.lfs.has(sha256(original))).toBe(true);
  });

  it('fails with SOURCE_CHANGED, committing nothing, when a small inline file is rewritten longer after it was listed', async () => {
    const modelDir = await writeFusedModel(await tempDir());
    const config = join(modelDir, 'config.json');
    const longer = JSON.stringify({ ...(JSON.parse(await readFile(config, 'utf8')) as object), note: 'x'.repeat(64) }, null, 2);
    const options: PublishToHubOptions = {
      ...opts(modelDir),
      // Its size is listed by then (validation); its bytes are read after.
      onProgress: (event) => {
        if (event.type === 'phase' && event.phase === 'preparing') writeFileSync(config, longer);
      },
    };
    hub.clearLog();
    const error = await publishToHub(options).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SourceChangedError);
    expect(error).toMatchObject({ code: 'SOURCE_CHANGED', path: config });
    expect(hub.requests.filter((r) => r.route === 'commit')).toHaveLength(0);
    expect(hub.commits(options.repoId)).toHaveLength(1);
  });

  it('commits the bytes of a larger inline file that were checked, even when it is rewritten as the commit request is made', async () => {
    const modelDir = await writeFusedModel(await tempDir());
    // Text over the 256 KiB kept in memory, under the Hub's 10 MiB for inline files.
    const tokenizer = join(modelDir, 'tokenizer.json');
    const vocab = Object.fromEntries(Array.from({ length: 20_000 }, (_, i) => [`token_${i}_${'x'.repeat(i % 7)}`, i]));
    const original = Buffer.from(JSON.stringify({ version: '1.0', model: { type: 'BPE', vocab } }));
    expect(original.length).toBeGreaterThan(256 * 1024);
    await writeFile(tokenizer, original);
    let rewrites = 0;
    const options: PublishToHubOptions = {
      ...opts(modelDir),
      // After the source check, before the Hub client reads the inline files into the request.
      onProgress: (event) => {
        if (event.type === 'phase' && event.phase === 'committing' && rewrites++ === 0) {
          writeFileSync(tokenizer, JSON.stringify({ version: '2.0', model: { type: 'BPE', vocab, merges: ['a b'] } }));
        }
      },
    };
    hub.clearLog();
    const result = await publishToHub(options);
    expect(result.status).toBe('published');
    expect(rewrites).toBe(1);
    expect(hub.fileBytes(options.repoId, 'tokenizer.json')?.equals(original)).toBe(true);
    expect(hub.requests.filter((r) => r.route === 'lfs-batch').map((r) => JSON.parse(r.body.toString()) as { objects: unknown[] })[0]?.objects).toHaveLength(1);
  });
});
