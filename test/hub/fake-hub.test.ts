/**
 * The fake Hub is only useful if the official clients accept it: these tests drive it with
 * `@huggingface/hub` (as the library uses it, `useXet: false`) and with Python's
 * `huggingface_hub` (`HF_HUB_DISABLE_XET=1`), and move bytes between the two.
 */
import { createRepo, downloadFile, listCommits, listFiles, repoExists, uploadFiles, whoAmI, type ListFileEntry } from '@huggingface/hub';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runPython } from '../support/python.js';
import { startFakeHub, type FakeHub } from '../support/fake-hub/index.js';
import { bytes, describeWithPython, safetensorsBytes, sha256, tempDir, writeFiles } from './helpers.js';

let hub: FakeHub;
let repoCounter = 0;
const newRepo = (ns = 'tester') => `${ns}/repo-${++repoCounter}-${Date.now().toString(36)}`;

beforeAll(async () => {
  // Small thresholds so that KB-sized files exercise multipart uploads and tree paging.
  hub = await startFakeHub({ limits: { multipartThresholdBytes: 48 * 1024, multipartChunkBytes: 16 * 1024, treePageSize: 3 } });
});
afterAll(async () => {
  await hub.stop();
});

async function all<T>(iterable: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of iterable) out.push(item);
  return out;
}

const jsFiles = () => ({
  'README.md': '# hello\n',
  'config.json': JSON.stringify({ hidden_size: 16 }),
  'weights/model.safetensors': safetensorsBytes({ w: { dtype: 'F32', shape: [32, 32] } }), // LFS by .gitattributes, basic PUT
  'big.bin': bytes(100 * 1024 + 17, 3), // > 48 KiB: multipart, 7 parts
});

describe('fake Hub with @huggingface/hub', () => {
  it('answers whoami and refuses unknown tokens with a Hub-style 401', async () => {
    const me = await whoAmI({ hubUrl: hub.url, accessToken: hub.token });
    expect(me.name).toBe('tester');
    await expect(whoAmI({ hubUrl: hub.url, accessToken: 'hf_notAKnownToken123' })).rejects.toMatchObject({ statusCode: 401 });
    const res = await fetch(`${hub.url}/api/whoami-v2`, { headers: { authorization: 'Bearer hf_nope123456' } });
    expect(res.headers.get('x-error-message')).toBe('Invalid credentials in Authorization header');
    expect(await res.json()).toEqual({ error: 'Invalid credentials in Authorization header' });
  });

  it('creates repos, answers 409 with the url for an existing one, and reports existence', async () => {
    const repo = newRepo();
    expect(await repoExists({ repo, hubUrl: hub.url, accessToken: hub.token })).toBe(false);
    const created = await createRepo({ repo, hubUrl: hub.url, accessToken: hub.token });
    expect(created.repoUrl).toBe(`${hub.url}/${repo}`);
    expect(await repoExists({ repo, hubUrl: hub.url, accessToken: hub.token })).toBe(true);
    const again = await fetch(`${hub.url}/api/repos/create`, {
      method: 'POST',
      headers: { authorization: `Bearer ${hub.token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ name: repo.split('/')[1], organization: 'tester' }),
    });
    expect(again.status).toBe(409);
    expect(await again.json()).toMatchObject({ url: `${hub.url}/${repo}` });
    await expect(createRepo({ repo: 'someone-else/x', hubUrl: hub.url, accessToken: hub.token })).rejects.toMatchObject({ statusCode: 403 });
    await expect(createRepo({ repo: newRepo(), hubUrl: hub.url, accessToken: hub.readToken })).rejects.toMatchObject({ statusCode: 403 });
  });

  it('round-trips regular, LFS (basic) and multipart LFS files byte for byte', async () => {
    const repo = newRepo();
    await createRepo({ repo, hubUrl: hub.url, accessToken: hub.token });
    hub.clearLog();
    const files = jsFiles();
    const out = await uploadFiles({
      repo,
      hubUrl: hub.url,
      accessToken: hub.token,
      useXet: false,
      commitTitle: 'js upload',
      files: Object.entries(files).map(([path, content]) => ({ path, content: new Blob([content]) })),
    });
    expect(out?.commit.oid).toBe(hub.head(repo));
    expect(out?.commit.url).toBe(`${hub.url}/${repo}/commit/${out?.commit.oid}`);

    // Protocol as the real Hub sees it: LFS batch without xet, presigned PUTs without auth,
    // 7 multipart parts, one NDJSON commit.
    const batch = hub.requests.find((r) => r.route === 'lfs-batch')!;
    expect(JSON.parse(batch.body.toString()).transfers).toEqual(['basic', 'multipart']);
    const puts = hub.requests.filter((r) => r.route === 'lfs-upload' || r.route === 'lfs-part');
    expect(puts.filter((r) => r.route === 'lfs-part')).toHaveLength(7);
    expect(puts.every((r) => r.headers.authorization === undefined)).toBe(true);
    expect(hub.requests.filter((r) => r.route === 'lfs-complete')).toHaveLength(1);
    const commit = hub.requests.filter((r) => r.route === 'commit');
    expect(commit).toHaveLength(1);
    expect(commit[0]!.headers['content-type']).toBe('application/x-ndjson');

    const entries = await all(listFiles({ repo, recursive: true, hubUrl: hub.url, accessToken: hub.token }));
    const byPath = new Map<string, ListFileEntry>(entries.map((e) => [e.path, e]));
    expect([...byPath.keys()].sort()).toEqual(['.gitattributes', 'README.md', 'big.bin', 'config.json', 'weights', 'weights/model.safetensors']);
    expect(byPath.get('weights')?.type).toBe('directory');
    expect(byPath.get('big.bin')?.lfs?.oid).toBe(sha256(files['big.bin']));
    expect(byPath.get('README.md')?.lfs).toBeUndefined();
    expect(hub.requests.filter((r) => r.route === 'tree').length).toBeGreaterThan(1); // paged via Link

    for (const [path, content] of Object.entries(files)) {
      const blob = await downloadFile({ repo, path, hubUrl: hub.url, accessToken: hub.token, xet: false });
      expect(sha256(new Uint8Array(await blob!.arrayBuffer())), path).toBe(sha256(content));
    }
    expect(await downloadFile({ repo, path: 'missing.txt', hubUrl: hub.url, accessToken: hub.token })).toBeNull();
    expect(hub.fileBytes(repo, 'big.bin')?.equals(files['big.bin'])).toBe(true);
  });

  it('refuses a commit whose parentCommit is no longer the head with 412', async () => {
    const repo = newRepo();
    await createRepo({ repo, hubUrl: hub.url, accessToken: hub.token });
    const initial = hub.head(repo)!;
    const common = { repo, hubUrl: hub.url, accessToken: hub.token, useXet: false } as const;
    await uploadFiles({ ...common, files: [{ path: 'a.txt', content: new Blob(['a']) }], parentCommit: initial });
    await expect(uploadFiles({ ...common, files: [{ path: 'b.txt', content: new Blob(['b']) }], parentCommit: initial })).rejects.toMatchObject({ statusCode: 412 });
    const commits = await all(listCommits({ repo, hubUrl: hub.url, accessToken: hub.token }));
    expect(commits.map((c) => c.title)).toEqual(['Add 1 files', 'initial commit']);
  });

  it('injects faults: 503 before handling, lost answers after applying', async () => {
    const repo = newRepo();
    await createRepo({ repo, hubUrl: hub.url, accessToken: hub.token });
    const common = { repo, hubUrl: hub.url, accessToken: hub.token, useXet: false } as const;
    const fault = hub.failNext('preupload', 1, 503, { 'retry-after': '0' });
    await expect(uploadFiles({ ...common, files: [{ path: 'a.txt', content: new Blob(['a']) }] })).rejects.toMatchObject({ statusCode: 503 });
    expect(fault.hits).toBe(1);
    expect(hub.commits(repo)).toHaveLength(1);

    hub.dropResponseOfNext('commit');
    await expect(uploadFiles({ ...common, files: [{ path: 'a.txt', content: new Blob(['a']) }] })).rejects.toThrow();
    expect(hub.commits(repo).map((c) => c.title)).toEqual(['Add 1 files', 'initial commit']);
  });

  it('hides private repos from anonymous callers and serves byte ranges', async () => {
    const repo = newRepo();
    hub.createRepo(repo, { private: true });
    const anonymous = await fetch(`${hub.url}/api/models/${repo}`);
    expect(anonymous.status).toBe(401);
    expect(anonymous.headers.get('x-error-code')).toBe('RepoNotFound');
    const range = await fetch(`${hub.url}/${repo}/resolve/main/.gitattributes`, { headers: { authorization: `Bearer ${hub.token}`, range: 'bytes=2-5' } });
    expect(range.status).toBe(206);
    expect(range.headers.get('content-range')).toMatch(/^bytes 2-5\/\d+$/);
    expect(await range.text()).toBe(hub.fileBytes(repo, '.gitattributes')!.subarray(2, 6).toString());
  });
});

describeWithPython('fake Hub with Python huggingface_hub (HF_HUB_DISABLE_XET=1)', () => {
  const pyEnv = async () => ({ HF_HOME: await tempDir('au-hf-home-'), HF_HUB_DISABLE_XET: '1', HF_HUB_DISABLE_TELEMETRY: '1', HF_HUB_OFFLINE: '', HF_TOKEN: '' });

  it('JS upload -> Python hf_hub_download gives the same bytes', async () => {
    const repo = newRepo();
    await createRepo({ repo, hubUrl: hub.url, accessToken: hub.token });
    const files = jsFiles();
    await uploadFiles({
      repo,
      hubUrl: hub.url,
      accessToken: hub.token,
      useXet: false,
      files: Object.entries(files).map(([path, content]) => ({ path, content: new Blob([content]) })),
    });
    const script = `
import hashlib, json, sys
from huggingface_hub import HfApi
api = HfApi(endpoint=sys.argv[1], token=sys.argv[2])
out = {}
for name in api.list_repo_files(sys.argv[3]):
    path = api.hf_hub_download(repo_id=sys.argv[3], filename=name)
    out[name] = hashlib.sha256(open(path, 'rb').read()).hexdigest()
print(json.dumps(out))
`;
    const stdout = await runPython(script, { args: [hub.url, hub.token, repo], env: await pyEnv() });
    const hashes = JSON.parse(stdout.trim().split('\n').pop()!) as Record<string, string>;
    for (const [path, content] of Object.entries(files)) expect(hashes[path], path).toBe(sha256(content));
    expect(hub.requests.filter((r) => r.route === 'unknown').map((r) => `${r.method} ${r.url}`)).toEqual([]);
  });

  it('Python upload_folder -> JS downloadFile gives the same bytes', async () => {
    const folder = await tempDir();
    const files = {
      'notes.txt': 'hello from python\n',
      'sub/model.safetensors': safetensorsBytes({ w: { dtype: 'F16', shape: [8, 8] } }),
      'large.bin': bytes(64 * 1024 + 5, 9), // multipart with the shrunk threshold
      'README.md': '---\nlicense: mit\n---\n# card\n',
    };
    await writeFiles(folder, files);
    const repo = newRepo('test-org');
    const script = `
import sys
from huggingface_hub import HfApi
api = HfApi(endpoint=sys.argv[1], token=sys.argv[2])
api.create_repo(sys.argv[3], exist_ok=True)
api.create_repo(sys.argv[3], exist_ok=True)  # 409 with url must be accepted
info = api.upload_folder(repo_id=sys.argv[3], folder_path=sys.argv[4], commit_message="py upload")
print(info.oid)
again = api.upload_folder(repo_id=sys.argv[3], folder_path=sys.argv[4], commit_message="no-op")
print(again.oid)
`;
    const stdout = await runPython(script, { args: [hub.url, hub.token, repo, folder], env: await pyEnv() });
    const [first, second] = stdout.trim().split('\n').slice(-2);
    expect(first).toBe(hub.commits(repo)[0]!.oid);
    expect(second).toBe(first); // unchanged files are detected through the preupload oid: no second commit
    expect(hub.requests.some((r) => r.route === 'lfs-verify')).toBe(true);
    expect(hub.requests.filter((r) => r.route === 'unknown').map((r) => `${r.method} ${r.url}`)).toEqual([]);

    for (const [path, content] of Object.entries(files)) {
      const blob = await downloadFile({ repo, path, hubUrl: hub.url, accessToken: hub.token, xet: false });
      expect(sha256(new Uint8Array(await blob!.arrayBuffer())), path).toBe(sha256(content));
    }
  });
});
