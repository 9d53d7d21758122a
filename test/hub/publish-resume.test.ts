/**
 * Crash-resume of `publish`, counted in bytes: a child CLI publish is SIGKILLed when its
 * commit reaches the Hub (held there, never applied), after the LFS upload of the weights. The
 * rerun publishes, and sends no LFS byte again: `@huggingface/hub` asks the LFS batch API by
 * sha256 and the Hub answers that it already has the object (docs/resume.md).
 */
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runAndKill, runToEnd } from '../support/crash-harness.js';
import { useFaultProxies } from '../support/fault-proxy.js';
import { startFakeHub, type FakeHub } from '../support/fake-hub/index.js';
import { safetensorsBytes, sha256, tempDir, writeFusedModel } from './helpers.js';

const startProxy = useFaultProxies();
let hub: FakeHub;

beforeAll(async () => {
  hub = await startFakeHub();
});
afterAll(async () => {
  await hub.stop();
});

describe('publish after a crash', () => {
  it('sends no LFS byte again for objects the Hub already has', async () => {
    // preserveHost: the Hub builds its LFS upload links from the Host header, so they go through the proxy too.
    const proxy = await startProxy(hub.url, { preserveHost: true });
    const root = await tempDir('au-hub-resume-');
    const model = await writeFusedModel(join(root, 'model'));
    // Weights big enough to count: 2 MiB of F16 beside the model's own tensors.
    const original = await readFile(join(model, 'model.safetensors'));
    const header = JSON.parse(original.subarray(8, 8 + Number(original.readBigUInt64LE(0))).toString('utf8')) as Record<string, { dtype: string; shape: number[] }>;
    const tensors = Object.fromEntries(Object.entries(header).filter(([name]) => name !== '__metadata__').map(([name, t]) => [name, { dtype: t.dtype, shape: t.shape }]));
    const weights = safetensorsBytes({ ...tensors, 'model.layers.0.mlp.up_proj.weight': { dtype: 'F16', shape: [1024, 1024] } }, { format: 'pt' });
    await writeFile(join(model, 'model.safetensors'), weights);
    const repoId = `tester/resume-${Date.now().toString(36)}`;
    const options = {
      argv: ['publish', '--model-dir', model, '--repo-id', repoId, '--json'],
      env: { HF_TOKEN: hub.token, HF_ENDPOINT: proxy.url },
      cwd: root,
      proxy,
    };
    const isCommit = (r: { method: string; path: string }) => r.method === 'POST' && r.path.includes(`/api/models/${repoId}/commit/`);
    const isLfsUpload = (r: { method: string; path: string }) => r.method === 'PUT' && r.path.startsWith('/_fake-hub/lfs/');

    const killed = await runAndKill({ ...options, at: { request: isCommit } });
    const firstLfs = killed.requests.filter(isLfsUpload);
    expect(firstLfs.length).toBeGreaterThan(0);
    expect(firstLfs.reduce((n, r) => n + r.bytes, 0)).toBeGreaterThanOrEqual(weights.length);
    // Held at the Hub, never applied: nothing of the model is in the repo yet.
    expect(hub.fileBytes(repoId, 'model.safetensors')).toBeUndefined();

    const rerun = await runToEnd(options);
    expect(JSON.parse(rerun.stdout)).toMatchObject({ ok: true });
    expect(rerun.requests.filter(isLfsUpload)).toEqual([]);
    // The rerun's bytes: JSON calls and the commit (small files inline), far below the weights.
    expect(rerun.bytesSent).toBeLessThan(weights.length / 4);
    expect(rerun.requests.some(isCommit)).toBe(true);
    expect(sha256(hub.fileBytes(repoId, 'model.safetensors')!)).toBe(sha256(weights));
  }, 180_000);
});
