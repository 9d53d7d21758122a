/**
 * The lineage link: publishing with a run id tags that MLflow run with the Hub commit, through
 * the same tracking client the rest of the library uses (real MLflow server, local Hub).
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { HUB_RUN_TAGS, publishToHub } from '../../src/hub/publish.js';
import { createTrackingClient } from '../../src/mlflow/tracking-client.js';
import { startFakeHub, type FakeHub } from '../support/fake-hub/index.js';
import { describeWithServers, mlflowServer } from '../support/servers.js';
import { tempDir, writeFusedModel } from './helpers.js';

let hub: FakeHub;
beforeAll(async () => {
  hub = await startFakeHub();
});
afterAll(async () => {
  await hub.stop();
});

describeWithServers('publishToHub tags the MLflow run', () => {
  it('sets the hf_hub.* tags on the run by default', async () => {
    const client = createTrackingClient({ trackingUri: mlflowServer().url, env: {} });
    const { experimentId } = await client.getOrCreateExperiment('hub-lineage');
    const run = await client.createRun({ experimentId });
    const runId = run.info.runId;
    const result = await publishToHub({
      modelDir: await writeFusedModel(await tempDir()),
      repoId: 'tester/lineage',
      hubUrl: hub.url,
      accessToken: hub.token,
      runId,
      mlflow: { trackingUri: mlflowServer().url },
      retry: { backoffFactor: 0, backoffJitter: 0 },
      env: {},
    });
    expect(result.mlflowTagged).toBe(true);
    const tags = (await client.getRun(runId)).data.tags;
    expect(tags[HUB_RUN_TAGS.commitUrl]).toBe(result.commitUrl);
    expect(tags[HUB_RUN_TAGS.commitOid]).toBe(result.commitOid);
    expect(tags[HUB_RUN_TAGS.repoId]).toBe('tester/lineage');
  });
});
