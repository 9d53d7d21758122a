/**
 * The resume step over a real journal and a real `file:` store: which files it sets aside, and
 * what it records and removes.
 */
import { spawnSync } from 'node:child_process';
import { mkdir, mkdtemp, readdir, readFile, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { InvalidArgumentError } from '../../src/core/errors.js';
import { silentLogger, type Logger } from '../../src/core/logger.js';
import { snapshotFile } from '../../src/core/source-snapshot.js';
import { LocalFileStore } from '../../src/stores/local-file-store.js';
import { resolveMlflowConnection } from '../../src/mlflow/connection.js';
import { localFileIdentity, UploadJournal } from '../../src/uploader/journal.js';
import { startTestServer } from '../support/http-test-server.js';
import { assertSkipExisting, OperationResume, type ResumableFile } from '../../src/uploader/resume.js';

async function setup() {
  const root = await mkdtemp(join(tmpdir(), 'au-resume-step-'));
  const data = join(root, 'data');
  await mkdir(data);
  const files: ResumableFile[] = [];
  for (const [name, size] of [['a.bin', 100], ['b.bin', 200], ['c.bin', 300]] as const) {
    await writeFile(join(data, name), Buffer.alloc(size, name));
    files.push({ localPath: join(data, name), artifactPath: `ckpt/${name}`, size });
  }
  const store = new LocalFileStore({ artifactUri: `file://${join(root, 'artifacts')}` });
  const journal = await UploadJournal.open({ dir: join(root, 'journal') });
  const step = (extra: Partial<ConstructorParameters<typeof OperationResume>[0]> = {}) =>
    new OperationResume({ journal, target: 'file:///tmp/mlruns', runId: 'r1', store, logger: silentLogger, ...extra });
  /** Sends a file as the transfer would: begin, upload, finish. */
  const send = async (resume: OperationResume, file: ResumableFile) => {
    const hooks = await resume.beginFile(file);
    await store.uploadFile(file.localPath, file.artifactPath, { resume: hooks.multipart });
    await hooks.finish({ sha256: 'c'.repeat(64) });
  };
  return { root, data, files, store, journal, step, send };
}

describe('OperationResume', () => {
  it('sets aside files the journal has as uploaded and the store lists with the same size; the rest are sent', async () => {
    const { files, step, send, journal, root } = await setup();
    // A first run sent a and b, then died.
    const first = step();
    expect((await first.partition(files)).toSend).toEqual(files);
    await send(first, files[0]!);
    await send(first, files[1]!);
    await first.release(); // it died: nothing writes its operation log any more

    const second = step();
    const { resumed, toSend } = await second.partition(files);
    expect(resumed.map((r) => [r.file.artifactPath, r.by])).toEqual([
      ['ckpt/a.bin', 'journal'],
      ['ckpt/b.bin', 'journal'],
    ]);
    expect(toSend.map((f) => f.artifactPath)).toEqual(['ckpt/c.bin']);
    await send(second, files[2]!);
    await second.complete(files);
    expect(await journal.list()).toEqual([]);
    expect(await readdir(join(root, 'journal'))).toEqual([]);
  });

  it('sends again a file changed since, one the store lost, and everything with resume off', async () => {
    const { files, step, send, store } = await setup();
    const first = step();
    for (const f of files) await send(first, f);
    await first.release();

    // a: touched locally; b: gone from the store (replaced by a smaller file).
    await utimes(files[0]!.localPath, new Date(), new Date(Date.now() + 10_000));
    await writeFile(join(store.root, 'ckpt', 'b.bin'), 'short');
    const { resumed, toSend } = await step().partition(files);
    expect(resumed.map((r) => r.file.artifactPath)).toEqual(['ckpt/c.bin']);
    expect(toSend.map((f) => f.artifactPath)).toEqual(['ckpt/a.bin', 'ckpt/b.bin']);

    expect((await step({ resume: false }).partition(files)).toSend).toEqual(files);
  });

  it("skipExisting: 'size' sets aside files the store lists with the same size, without a journal; 'checksum' is refused", async () => {
    const { files, step, store } = await setup();
    await store.uploadFile(files[0]!.localPath, files[0]!.artifactPath);
    await mkdir(join(store.root, 'ckpt'), { recursive: true });
    await writeFile(join(store.root, 'ckpt', 'b.bin'), 'other size');
    const { resumed, toSend } = await step({ journal: undefined, skipExisting: 'size' }).partition(files);
    expect(resumed.map((r) => [r.file.artifactPath, r.by])).toEqual([['ckpt/a.bin', 'size']]);
    expect(toSend.map((f) => f.artifactPath)).toEqual(['ckpt/b.bin', 'ckpt/c.bin']);

    expect(() => assertSkipExisting('checksum', store)).toThrow(InvalidArgumentError);
    expect(() => assertSkipExisting('checksum', store)).toThrow(/reports sizes only/);
    expect(() => assertSkipExisting('bytes', store)).toThrow(/must be 'size' or 'checksum'/);
    expect(() => assertSkipExisting('size', store)).not.toThrow();
  });

  it('hands the store the earlier multipart upload of the same file to continue, and of a changed file to abort', async () => {
    const { files, step } = await setup();
    const file = files[2]!;
    const first = await step().beginFile(file);
    await first.multipart.started('upload-1', 100);
    await first.multipart.partDone({ partNumber: 1, size: 100, etag: '"p1"' });

    const again = await step().beginFile(file);
    expect(again.multipart).toMatchObject({ reuse: true, previous: { uploadId: 'upload-1', partSize: 100, parts: [{ partNumber: 1, etag: '"p1"' }] } });
    expect(await step({ resume: false }).beginFile(file).then((h) => h.multipart.reuse)).toBe(false);

    await utimes(file.localPath, new Date(), new Date(Date.now() + 10_000));
    const changed = await step().beginFile({ ...file });
    expect(changed.multipart).toMatchObject({ reuse: false, previous: { uploadId: 'upload-1' } });
    await changed.multipart.aborted('upload-1');
  });

  it('keeps a store token (a GCS session) for the next attempt, owner-only on disk', async () => {
    const { files, step, root } = await setup();
    const file = files[2]!;
    const first = await step().beginFile(file);
    await first.multipart.saveToken({ store: 'gcs', value: { uri: 'http://127.0.0.1/upload?upload_id=x' } });
    const again = await step().beginFile(file);
    expect(again.multipart).toMatchObject({ reuse: true, token: { store: 'gcs', value: { uri: 'http://127.0.0.1/upload?upload_id=x' } } });
    const { stat } = await import('node:fs/promises');
    const [name] = (await readdir(join(root, 'journal'))).filter((n) => n.endsWith('.json'));
    expect((await stat(join(root, 'journal', name!))).mode & 0o777).toBe(0o600);
    await again.finish();
    expect((await step().beginFile(file)).multipart.token).toBeUndefined();
  });
  it('records files sent in one request as lines of one operation log: no per-file record, no lock, one file removed on completion', async () => {
    const { files, step, send, root } = await setup();
    const first = step();
    for (const f of files) await send(first, f);
    const names = await readdir(join(root, 'journal'));
    expect(names).toHaveLength(1);
    expect(names[0]).toMatch(/^[0-9a-f]{40}-[0-9a-f]{16}\.log$/);
    const [header, ...lines] = (await readFile(join(root, 'journal', names[0]!), 'utf8')).trimEnd().split('\n').map((l) => JSON.parse(l) as Record<string, any>);
    expect(header).toMatchObject({ version: 1, kind: 'finished-files', key: { target: 'file:///tmp/mlruns', runId: 'r1' }, owner: { pid: process.pid } });
    expect(lines.map((l) => l.artifactPath)).toEqual(['ckpt/a.bin', 'ckpt/b.bin', 'ckpt/c.bin']);
    expect(lines[0]).toMatchObject({ localPath: files[0]!.localPath, local: { size: 100 }, sha256: 'c'.repeat(64) });
    await first.complete(files);
    expect(await readdir(join(root, 'journal'))).toEqual([]);
  });

  it('records the identity of the snapshot the transfer took (no stat of its own), and sends a file changed since again', async () => {
    const { files, step, store, root } = await setup();
    const first = step();
    const file = files[0]!;
    const snapshot = await snapshotFile(file.localPath);
    const hooks = await first.beginFile(file, { snapshot });
    await store.uploadFile(file.localPath, file.artifactPath);
    await hooks.finish();
    await first.release();
    const [name] = await readdir(join(root, 'journal'));
    const line = JSON.parse((await readFile(join(root, 'journal', name!), 'utf8')).split('\n')[1]!) as { local: Record<string, unknown> };
    expect(line.local).toEqual({ size: snapshot.size, ...snapshot.exact });
    expect((await step().partition([file])).resumed).toHaveLength(1);
    await utimes(file.localPath, new Date(), new Date(Date.now() + 10_000));
    expect((await step().partition([file])).toSend).toEqual([file]);
  });

  it('resumes from the whole lines of a killed writer\'s log (a torn last line is skipped), and completion removes that log', async () => {
    const { files, step, send, store, root, journal } = await setup();
    const first = step();
    for (const f of files) await send(first, f);
    await first.release();
    const [name] = await readdir(join(root, 'journal'));
    const path = join(root, 'journal', name!);
    // The writer died while appending c's line: only half of it reached the file.
    const text = await readFile(path, 'utf8');
    const lines = text.trimEnd().split('\n');
    await writeFile(path, `${lines.slice(0, 3).join('\n')}\n${lines[3]!.slice(0, 40)}`);
    const second = step();
    const { resumed, toSend } = await second.partition(files);
    expect(resumed.map((r) => r.file.artifactPath)).toEqual(['ckpt/a.bin', 'ckpt/b.bin']);
    expect(toSend.map((f) => f.artifactPath)).toEqual(['ckpt/c.bin']);
    expect((await journal.list()).map((e) => [e.record?.key.artifactPath, e.record?.status])).toEqual([
      ['ckpt/a.bin', 'uploaded'],
      ['ckpt/b.bin', 'uploaded'],
    ]);
    await send(second, files[2]!);
    await second.complete(files);
    expect(await readdir(join(root, 'journal'))).toEqual([]);
    expect(await store.list('ckpt')).toHaveLength(3);
  });

  it('with resume off reads nothing for skipping, still records, and completion removes what earlier runs left', async () => {
    const { files, step, send, root } = await setup();
    const first = step();
    await send(first, files[0]!);
    await first.release();
    const off = step({ resume: false });
    expect((await off.partition(files)).toSend).toEqual(files);
    for (const f of files) await send(off, f);
    expect((await readdir(join(root, 'journal'))).filter((n) => n.endsWith('.log'))).toHaveLength(2);
    await off.complete(files);
    expect(await readdir(join(root, 'journal'))).toEqual([]);
  });

  it("a caller's store whose abandonUpload throws at once does not fail the completion: a warning, and the record goes", async () => {
    const { files, step, data, journal } = await setup();
    const deleted = files[2]!;
    const first = await step().beginFile(deleted);
    await first.multipart.started('upload-1', 100);
    await rm(deleted.localPath); // deleted between the kill and the rerun
    const warnings: string[] = [];
    const logger: Logger = { ...silentLogger, warn: (message: string) => void warnings.push(message) };
    const store = new LocalFileStore({ artifactUri: `file://${join(data, '..', 'artifacts')}` });
    // Not async: it throws before it returns a promise.
    Object.assign(store, { abandonUpload: (): Promise<void> => { throw new Error('no such upload here'); } });
    const rerun = step({ store, logger, scope: { directory: data, artifactPath: 'ckpt' } });
    const kept = files.slice(0, 2);
    await rerun.partition(kept);
    await expect(rerun.complete(kept)).resolves.toBeUndefined();
    expect(warnings.join('\n')).toContain('no such upload here');
    expect(await journal.list()).toEqual([]);
  });

  it('leaves a log alone that another operation of this process is still writing, and a log of other files', async () => {
    const { files, step, send, root } = await setup();
    const running = step();
    await send(running, files[0]!); // not released: still running
    const other = step();
    await other.partition([files[1]!]);
    await send(other, files[1]!);
    await other.complete([files[0]!, files[1]!]);
    expect((await readdir(join(root, 'journal'))).filter((n) => n.endsWith('.log'))).toHaveLength(1);
    await running.complete([files[0]!]);
    expect(await readdir(join(root, 'journal'))).toEqual([]);
  });
});

/**
 * Makes the one record in the journal `dir` as a kill nine days ago leaves it: owned by a process
 * that has exited, not written since (its `updatedAt` and its file's mtime).
 */
async function ageTheRecord(dir: string): Promise<void> {
  const [name] = (await readdir(dir)).filter((n) => n.endsWith('.json'));
  const path = join(dir, name!);
  const when = Date.now() - 9 * 24 * 3600_000;
  const record = JSON.parse(await readFile(path, 'utf8')) as { owner: object };
  await writeFile(path, JSON.stringify({ ...record, updatedAt: when, owner: { ...record.owner, pid: spawnSync(process.execPath, ['-e', '']).pid } }));
  await utimes(path, new Date(when), new Date(when));
}

describe('OperationResume: expired records of other runs on the same server', () => {
  it("looks their run up and aborts their upload over the operation's own connection: credentials given only in the tracking URI (which the journal strips) still reach the server", async () => {
    const password = 'pw-in-the-uri';
    const authorization = `Basic ${Buffer.from(`alice:${password}`).toString('base64')}`;
    const server = await startTestServer((req, res) => {
      if (req.headers.authorization !== authorization) {
        res.writeHead(401, { 'content-type': 'application/json' }).end(JSON.stringify({ error_code: 'UNAUTHENTICATED', message: 'credentials needed' }));
      } else if (req.url.includes('/runs/get')) {
        const info = { run_id: 'killed-run', experiment_id: '0', status: 'RUNNING', artifact_uri: 'mlflow-artifacts:/0/killed-run/artifacts', lifecycle_stage: 'active' };
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ run: { info, data: {} } }));
      } else {
        res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
      }
    });
    try {
      const root = await mkdtemp(join(tmpdir(), 'au-resume-expired-'));
      const dir = join(root, 'journal');
      await writeFile(join(root, 'big.bin'), Buffer.alloc(4096, 1));
      const uri = `http://alice:${password}@${server.url.slice('http://'.length)}`;
      const killed = (await (await UploadJournal.open({ dir })).begin({ target: uri, runId: 'killed-run', artifactPath: 'ckpt/big.bin', local: await localFileIdentity(join(root, 'big.bin')) }))!;
      await killed.startMultipart('mpu-killed', 1024);
      await ageTheRecord(dir);

      const journal = await UploadJournal.open({ dir });
      const connection = resolveMlflowConnection({ trackingUri: uri, retry: { maxRetries: 0 } }, {});
      const warnings: string[] = [];
      const infos: string[] = [];
      const logger: Logger = { ...silentLogger, warn: (message: string) => void warnings.push(message), info: (message: string) => void infos.push(message) };
      const store = new LocalFileStore({ artifactUri: `file://${join(root, 'artifacts')}` });
      const step = new OperationResume({ journal, target: connection.displayUri, runId: 'next-run', store, logger, env: {}, connection });
      await step.partition([]);
      await step.complete([]);
      expect(warnings).toEqual([]);
      // Said before it starts (the operation's progress shows it done meanwhile), then what it did.
      expect(infos[0]).toBe('Giving up the unfinished multipart upload(s) of 1 expired resume journal record(s) (at most 20 s).');
      expect(infos[1]).toMatch(/^Gave up the unfinished multipart upload of ckpt\/big.bin \(run killed-run on /);
      expect(server.requests.map((r) => [r.url.split('?')[0], r.headers.authorization === authorization])).toEqual([
        ['/api/2.0/mlflow/runs/get', true],
        ['/api/2.0/mlflow-artifacts/mpu/abort/0/killed-run/artifacts/ckpt', true],
      ]);
      expect(JSON.parse(server.requests[1]!.body.toString())).toMatchObject({ upload_id: 'mpu-killed' });
      expect(await journal.list()).toEqual([]);
    } finally {
      await server.close();
    }
  });
});

describe('OperationResume: expired records left', () => {
  it('are tried and warned about once per process, not by every uploader it makes (a stage helper makes one per call); a record written since is tried again', async () => {
    const root = await mkdtemp(join(tmpdir(), 'au-resume-left-'));
    const dir = join(root, 'journal');
    await writeFile(join(root, 'big.bin'), Buffer.alloc(4096, 1));
    const local = await localFileIdentity(join(root, 'big.bin'));
    /** A record of another tracking server, killed nine days ago (its upload cannot be given up from here). */
    const expiredRecord = async (uploadId: string) => {
      const entry = (await (await UploadJournal.open({ dir })).begin({ target: 'http://127.0.0.1:9/', runId: 'elsewhere', artifactPath: 'ckpt/big.bin', local }))!;
      await entry.startMultipart(uploadId, 1024);
      await ageTheRecord(dir);
    };
    /** One completed operation of a new uploader (its own journal, swept at open): its warnings. */
    const uploaderCompletes = async () => {
      const warnings: string[] = [];
      const logger: Logger = { ...silentLogger, warn: (message: string) => void warnings.push(message) };
      const store = new LocalFileStore({ artifactUri: `file://${join(root, 'artifacts')}` });
      const step = new OperationResume({ journal: await UploadJournal.open({ dir }), target: 'http://127.0.0.1:5000/', runId: 'next-run', store, logger, env: {} });
      await step.partition([]);
      await step.complete([]);
      return warnings.filter((w) => w.includes('resume journal record(s) of interrupted uploads'));
    };

    await expiredRecord('mpu-1');
    expect(await uploaderCompletes()).toHaveLength(1);
    expect(await uploaderCompletes()).toEqual([]);
    expect(await uploaderCompletes()).toEqual([]);
    // Still in the journal, still expired: the next process (or resume clear) sees it.
    expect((await UploadJournal.open({ dir })).takeExpired()).toHaveLength(1);
    // Written again since (another attempt, killed in turn): tried and said again.
    await expiredRecord('mpu-2');
    expect(await uploaderCompletes()).toHaveLength(1);
  });
});
