/**
 * The Hub through the generic fault proxy (test/hub covers the same through the fake Hub's own
 * fault hooks; this checks it with a transport-level proxy in between): a commit the Hub applied
 * but whose answer was lost does not become a second commit, and transient refusals of the
 * commit are retried; a repo create whose answer is lost is retried into one repo.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { publishToHub } from '../../src/index.js';
import { startFakeHub, type FakeHub } from '../support/fake-hub/index.js';
import { startFaultProxy, type FaultProxy } from '../support/fault-proxy.js';
import { tempDir, writeFusedModel } from '../hub/helpers.js';

let hub: FakeHub;
let front: FaultProxy;
beforeAll(async () => {
  hub = await startFakeHub();
  front = await startFaultProxy(hub.url);
});
afterAll(async () => {
  await front.stop();
  await hub.stop();
});

const COMMIT = (r: { method: string; path: string }) => r.method === 'POST' && /^\/api\/models\/[^/]+\/[^/]+\/commit\//.test(r.path);
const CREATE_REPO = (r: { method: string; path: string }) => r.method === 'POST' && r.path === '/api/repos/create';

describe('fault suite: the Hub', () => {
  it('a commit applied by the Hub whose answer is lost is not committed twice', async () => {
    const repoId = `tester/faults-${Date.now().toString(36)}`;
    hub.createRepo(repoId);
    const modelDir = await writeFusedModel(await tempDir());
    front.addRule({ match: COMMIT, times: 1, fault: 'drop-response' });

    const result = await publishToHub({ modelDir, repoId, hubUrl: front.url, accessToken: hub.token, env: {}, retry: { maxRetries: 4, backoffFactor: 0, backoffJitter: 0 } });

    expect(result.status).toBe('published');
    // The repo's initial commit and ours: the lost answer did not produce a second one.
    expect(hub.commits(repoId)).toHaveLength(2);
    expect(hub.head(repoId)).toBe(result.commitOid);
    const commits = front.requests.filter(COMMIT);
    expect(commits).toHaveLength(1);
    expect(commits[0]!.fault).toBe('drop-response');
    for (const file of result.files) expect(hub.fileBytes(repoId, file.path)?.length, file.path).toBe(file.size);
  });

  it('a repo create whose answer was lost publishes once, with repoCreated false: its retry gets 409, which does not say whose create it was', async () => {
    const repoId = `tester/faults-create-${Date.now().toString(36)}`;
    const modelDir = await writeFusedModel(await tempDir());
    front.clearRules();
    front.addRule({ match: CREATE_REPO, times: 1, fault: 'drop-response' });

    const result = await publishToHub({ modelDir, repoId, hubUrl: front.url, accessToken: hub.token, env: {}, retry: { maxRetries: 4, backoffFactor: 0, backoffJitter: 0 } });

    // The documented limit (PublishResult.repoCreated): the lost request created the repo, and
    // the retry's 409 ("You already created this model repo") is all this call hears of it.
    expect(result).toMatchObject({ status: 'published', repoCreated: false });
    const creates = front.requests.filter(CREATE_REPO); // the other tests create their repos without a request
    expect(creates.map((r) => r.fault ?? r.status)).toEqual(['drop-response', 409]);
    expect(hub.commits(repoId)).toHaveLength(2); // the initial commit and ours
  });

  it('a commit refused with 503, then cut mid-body, is retried into exactly one commit', async () => {
    const repoId = `tester/faults-retry-${Date.now().toString(36)}`;
    hub.createRepo(repoId);
    const modelDir = await writeFusedModel(await tempDir());
    front.clearRules();
    front.addRule({ match: COMMIT, times: 1, fault: 'status', status: 503, body: JSON.stringify({ error: 'Service Unavailable' }) });
    front.addRule({ match: COMMIT, times: 1, fault: 'drop-mid-body' });

    const result = await publishToHub({ modelDir, repoId, hubUrl: front.url, accessToken: hub.token, env: {}, retry: { maxRetries: 4, backoffFactor: 0, backoffJitter: 0 } });

    expect(result.status).toBe('published');
    expect(hub.commits(repoId)).toHaveLength(2);
    const commits = front.requests.filter((r) => COMMIT(r) && r.path.includes(repoId.split('/')[1]!));
    expect(commits.map((r) => r.fault ?? r.status)).toEqual(['status', 'drop-mid-body', 200]);
  });
});
