/**
 * Issue 13, "Why" 3: a `file:` store upload killed with SIGKILL leaves no temp file that
 * MLflow's own Python client lists or downloads, and the next run cleans it up.
 */
import { mkdirSync, readdirSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { beforeAll, expect, it } from 'vitest';
import { UPLOADING_PREFIX, LocalFileStore } from '../../src/stores/local-file-store.js';
import { assertBuilt, DIST_INDEX, FREEZE, startChild } from '../support/child-node.js';
import { runPython } from '../support/python.js';
import { describeWithServers } from '../support/servers.js';
import { scratch } from '../uploader/helpers.js';

/** MLflow's view of a run, through its official client: listing of `dir` and every downloaded file. */
async function mlflowView(trackingUri: string, runId: string, dir: string): Promise<{ listed: string[]; downloaded: string[] }> {
  const script = `
import json, os, sys, tempfile
from mlflow import MlflowClient
client = MlflowClient(tracking_uri=sys.argv[1])
listed = [f.path for f in client.list_artifacts(sys.argv[2], sys.argv[3])]
dst = tempfile.mkdtemp()
client.download_artifacts(sys.argv[2], '', dst)
downloaded = sorted(os.path.relpath(os.path.join(r, f), dst) for r, _, fs in os.walk(dst) for f in fs)
print(json.dumps({'listed': listed, 'downloaded': downloaded}))
`;
  const out = await runPython(script, { args: [trackingUri, runId, dir] });
  return JSON.parse(out.trim().split('\n').pop()!) as { listed: string[]; downloaded: string[] };
}

async function createLocalRun(root: string): Promise<{ trackingUri: string; runId: string; artifactUri: string }> {
  const trackingUri = pathToFileURL(join(root, 'mlruns')).href;
  const out = await runPython(
    `
import sys
from mlflow import MlflowClient
client = MlflowClient(tracking_uri=sys.argv[1])
run = client.create_run(client.create_experiment('crash'))
print(run.info.run_id, run.info.artifact_uri)
`,
    { args: [trackingUri] },
  );
  const [runId, artifactUri] = out.trim().split('\n').pop()!.split(' ') as [string, string];
  return { trackingUri, runId, artifactUri };
}

const HOUR_AGO = new Date(Date.now() - 60 * 60_000);

describeWithServers('file: store under SIGKILL (issue 13)', () => {
  beforeAll(() => assertBuilt());

  it('a copy killed with SIGKILL mid-upload is never listed or downloaded by MLflow, and the next run removes its temp file', async () => {
    const root = scratch('au-crash-');
    const { trackingUri, runId, artifactUri } = await createLocalRun(root);
    const src = join(root, 'src');
    mkdirSync(src);
    writeFileSync(join(src, 'small.txt'), 'kept');
    writeFileSync(join(src, 'big.bin'), Buffer.alloc(24 * 1024 * 1024, 7));
    const store = new LocalFileStore({ artifactUri });
    await store.uploadFile(join(src, 'small.txt'), 'd/small.txt');

    // A real process copies big.bin and is frozen after 8 MiB, then killed: no finally runs.
    const child = startChild(
      `
import { resolveArtifactStore, resolveMlflowConnection } from ${JSON.stringify(pathToFileURL(DIST_INDEX).href)};
const store = resolveArtifactStore(process.env.URI, { connection: resolveMlflowConnection({ trackingUri: process.env.TRACKING }) });
await store.uploadFile(process.env.SRC, 'd/big.bin', { onProgress: (n) => { if (n >= 8 * 1024 * 1024) { console.log('copying'); ${FREEZE} } } });
console.log('finished');
`,
      { env: { URI: artifactUri, TRACKING: trackingUri, SRC: join(src, 'big.bin') } },
    );
    try {
      await child.waitFor('copying');
    } finally {
      await child.kill();
    }
    const artifactsDir = new URL(artifactUri).pathname;
    const left = readdirSync(join(artifactsDir, 'd')).filter((n) => n.startsWith(UPLOADING_PREFIX));
    expect(left, 'the killed copy left its temp file (the test killed it mid-copy)').toHaveLength(1);
    expect(left[0]).toContain(`-${child.pid}-`);

    const view = await mlflowView(trackingUri, runId, 'd');
    expect(view.listed).toEqual(['d/small.txt']);
    expect(view.downloaded).toEqual(['d/small.txt']);

    // A temp file of a live process (this one's parent) is never removed, however old.
    const live = `${UPLOADING_PREFIX}${process.ppid}-${left[0]!.split('-').at(-2)}-aaaaaaaaaaaa.tmp`;
    writeFileSync(join(artifactsDir, 'd', live), 'in progress');
    utimesSync(join(artifactsDir, 'd', live), HOUR_AGO, HOUR_AGO);
    // Earlier versions' temp names (no owner) are removed once old, and kept while fresh.
    writeFileSync(join(artifactsDir, 'd', '.artifact-uploader-0123456789ab.tmp'), 'old');
    utimesSync(join(artifactsDir, 'd', '.artifact-uploader-0123456789ab.tmp'), HOUR_AGO, HOUR_AGO);
    writeFileSync(join(artifactsDir, 'd', '.artifact-uploader-ba9876543210.tmp'), 'fresh');
    // The killed copy's temp file goes at the next write into its directory, fresh as it is: its
    // owner's pid is gone on this host, so nobody writes it (as a killed conversion's leftover).
    await new LocalFileStore({ artifactUri }).uploadFile(join(src, 'small.txt'), 'd/again.txt');
    expect(readdirSync(join(artifactsDir, 'd')).sort()).toEqual([live, '.artifact-uploader-ba9876543210.tmp', 'again.txt', 'small.txt'].sort());
  });
});
