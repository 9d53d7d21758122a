/**
 * Which parts of an earlier `s3://` multipart upload a rerun keeps without the journal's word for
 * them: a part S3 lists (`unrecordedParts`) is kept only when the bytes read to send it give S3's
 * own figure for it (`holdsBytes`: the listed CRC32, else an MD5 ETag) at the size its number
 * must have; anything else is sent. A part the journal recorded is kept unsent, checked against
 * the file's bytes by the figure `keptPartFigure` picks. The end-to-end cases (a part whose
 * answer a SIGKILL lost; a file rewritten since, keeping its size and mtime, against moto) are in
 * test/uploader/crash-resume.test.ts.
 */
import { createHash, randomBytes } from 'node:crypto';
import { crc32 } from 'node:zlib';
import type { Part } from '@aws-sdk/client-s3';
import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, expect, it, vi } from 'vitest';
import * as ClientS3 from '@aws-sdk/client-s3';
import { abortLostUploads, holdsBytes, keptPartFigure, unrecordedParts } from '../../src/stores/s3-resume.js';
import { LOST_UPLOAD_WINDOW_MS, lostUploadCut } from '../../src/stores/artifact-store.js';
import { S3ArtifactStore } from '../../src/stores/s3-store.js';
import { earlierUploadOf } from '../../src/uploader/abandon-records.js';
import type { JournalRecord } from '../../src/uploader/journal.js';

const partSize = 3 * 1024 * 1024 + 5;
const size = partSize * 3 + 1234; // 4 parts, the last one short
const md5Etag = (b: Buffer) => `"${createHash('md5').update(b).digest('hex')}"`;
const crc32Of = (b: Buffer) => {
  const out = Buffer.alloc(4);
  out.writeUInt32BE(crc32(b) >>> 0);
  return out;
};

describe('unrecordedParts', () => {
  it('lists the parts S3 holds that the journal did not keep, of their right size and with a figure to check them by', () => {
    const listed: Part[] = [
      { PartNumber: 1, ETag: '"0123456789abcdef0123456789abcdef"', Size: partSize }, // kept from the journal already
      { PartNumber: 2, ETag: '"0123456789abcdef0123456789abcdef"', Size: partSize }, // an MD5 ETag
      { PartNumber: 3, ETag: '"kms-etag"', Size: partSize, ChecksumCRC32: 'AAAAAA==' }, // a CRC32
      { PartNumber: 4, ETag: '"0123456789abcdef0123456789abcdef"', Size: 1234 }, // the short last part
    ];
    expect([...unrecordedParts(listed, new Map([[1, {}]]), partSize, size).keys()]).toEqual([2, 3, 4]);
  });

  it('leaves out what cannot be this file\'s part: another size, no figure, no number, no ETag, beyond the last part', () => {
    const listed: Part[] = [
      { PartNumber: 1, ETag: '"0123456789abcdef0123456789abcdef"', Size: partSize - 1 },
      { PartNumber: 2, ETag: '"abc-2"', Size: partSize },
      { ETag: '"0123456789abcdef0123456789abcdef"', Size: partSize },
      { PartNumber: 3, Size: partSize, ChecksumCRC32: 'AAAAAA==' },
      { PartNumber: 4, ETag: '"0123456789abcdef0123456789abcdef"', Size: partSize }, // the last part is 1234 bytes
      { PartNumber: 5, ETag: '"0123456789abcdef0123456789abcdef"', Size: 0 },
    ];
    expect(unrecordedParts(listed, new Map(), partSize, size).size).toBe(0);
  });
});

describe('holdsBytes', () => {
  const body = randomBytes(64 * 1024 + 3);
  const other = randomBytes(body.length);

  it('holds when the ETag is the MD5 of the bytes, and not for other bytes', () => {
    expect(holdsBytes({ PartNumber: 1, ETag: md5Etag(body), Size: body.length }, body)).toBe(true);
    expect(holdsBytes({ PartNumber: 1, ETag: md5Etag(body).replace(/"/g, '').toUpperCase(), Size: body.length }, body)).toBe(true);
    expect(holdsBytes({ PartNumber: 1, ETag: md5Etag(other), Size: body.length }, body)).toBe(false);
  });

  it('goes by the listed CRC32 when there is one, whatever the ETag (SSE-KMS), using the CRC32 already computed', () => {
    const part: Part = { PartNumber: 1, ETag: '"0123456789abcdef0123456789abcdef"', Size: body.length, ChecksumCRC32: crc32Of(body).toString('base64') };
    expect(holdsBytes(part, body)).toBe(true);
    expect(holdsBytes(part, body, crc32Of(body))).toBe(true);
    // The CRC32 the caller computed is the one compared: the bytes are not hashed again.
    expect(holdsBytes(part, body, crc32Of(other))).toBe(false);
    // A listed CRC32 of other bytes does not hold even when the ETag is the bytes' MD5.
    expect(holdsBytes({ ...part, ETag: md5Etag(body), ChecksumCRC32: crc32Of(other).toString('base64') }, body)).toBe(false);
  });

  it('does not hold with nothing to check by, or another size', () => {
    expect(holdsBytes({ PartNumber: 1, ETag: '"abc-2"', Size: body.length }, body)).toBe(false);
    expect(holdsBytes({ PartNumber: 1, Size: body.length, ChecksumCRC32: crc32Of(body).toString('base64') }, body)).toBe(false);
    expect(holdsBytes({ PartNumber: 1, ETag: md5Etag(body), Size: body.length + 1 }, body)).toBe(false);
  });
});

describe('keptPartFigure', () => {
  // A part the journal recorded is kept unsent on a rerun, but checked against the file's bytes
  // first (the file may have been rewritten keeping its size and mtime): by what figure.
  const body = randomBytes(4096);
  const figureOf = (figure: ReturnType<typeof keptPartFigure>, bytes: Buffer) => {
    const hash = figure!.hash();
    hash.update(bytes);
    return hash.digest();
  };

  it('goes by the CRC32 S3 lists, else the one the journal recorded from its answer', () => {
    const listed = keptPartFigure({ ETag: md5Etag(body), ChecksumCRC32: crc32Of(body).toString('base64') }, undefined);
    expect(listed?.name).toBe('CRC32');
    expect(figureOf(listed, body).equals(listed!.expected)).toBe(true);
    const recorded = keptPartFigure({ ETag: md5Etag(body) }, `crc32:${crc32Of(body).toString('base64')}`);
    expect(recorded?.name).toBe('CRC32');
    expect(figureOf(recorded, body).equals(recorded!.expected)).toBe(true);
    expect(figureOf(recorded, randomBytes(4096)).equals(recorded!.expected)).toBe(false);
  });

  it('takes a recorded SHA-256 next, then an MD5 ETag', () => {
    const sha = keptPartFigure({ ETag: '"not-an-md5"' }, `sha256:${createHash('sha256').update(body).digest('base64')}`);
    expect(sha?.name).toBe('SHA-256');
    expect(figureOf(sha, body).equals(sha!.expected)).toBe(true);
    const md5 = keptPartFigure({ ETag: md5Etag(body) }, undefined);
    expect(md5?.name).toBe('MD5 (its ETag)');
    expect(figureOf(md5, body).equals(md5!.expected)).toBe(true);
  });

  it('has none for a part with no CRC32 or SHA and an ETag that is no MD5: such a part is sent again', () => {
    expect(keptPartFigure({ ETag: '"abc-3"' }, 'crc32c:AAAAAA==')).toBeUndefined();
  });
});

describe('abortLostUploads', () => {
  const shared = { Bucket: 'b', Key: 'run/artifacts/w.bin' };
  const takenOverAt = Date.parse('2026-12-06T09:00:00Z');
  /** A send that answers ListMultipartUploads with `pages` in turn and records every abort. */
  function fakeS3(pages: ClientS3.ListMultipartUploadsCommandOutput[]) {
    const aborted: string[] = [];
    const listed: ClientS3.ListMultipartUploadsCommandInput[] = [];
    const send = async (command: object) => {
      if (command instanceof ClientS3.ListMultipartUploadsCommand) {
        listed.push(command.input);
        return pages.shift();
      }
      if (command instanceof ClientS3.AbortMultipartUploadCommand) aborted.push(command.input.UploadId!);
      return {};
    };
    return { send, aborted, listed };
  }

  it('aborts the uploads under the exact key initiated before the takeover, on every page; not another key\'s, not one another process started since', async () => {
    const at = (offsetMs: number) => new Date(takenOverAt + offsetMs);
    const { send, aborted, listed } = fakeS3([
      {
        $metadata: {},
        Uploads: [
          { Key: shared.Key, UploadId: 'lost-1', Initiated: at(-60_000) },
          { Key: `${shared.Key}.other`, UploadId: 'other-key', Initiated: at(-60_000) },
        ],
        IsTruncated: true,
        NextKeyMarker: shared.Key,
        NextUploadIdMarker: 'lost-1',
      },
      {
        $metadata: {},
        Uploads: [
          { Key: shared.Key, UploadId: 'lost-2', Initiated: at(0) },
          { Key: shared.Key, UploadId: 'concurrent', Initiated: at(5_000) },
        ],
        IsTruncated: false,
      },
    ]);
    const warnings: string[] = [];
    const logger = { debug() {}, info() {}, warn: (m: string) => void warnings.push(m), error() {} };
    await abortLostUploads(send, ClientS3, shared, { target: 's3://b/run/artifacts/w.bin', logger, lost: { takenOverAt } });
    expect(aborted).toEqual(['lost-1', 'lost-2']);
    expect(listed.map((l) => [l.Prefix, l.KeyMarker, l.UploadIdMarker])).toEqual([
      [shared.Key, undefined, undefined],
      [shared.Key, shared.Key, 'lost-1'],
    ]);
    expect(warnings).toEqual([]);
  });

  it('compares on S3\'s clock: ours 10 minutes ahead, the upload started since the takeover stays; an offset under 2 s is taken as none', async () => {
    const s3TakeoverAt = takenOverAt - 10 * 60_000; // the takeover as S3's clock has it
    const page = (): ClientS3.ListMultipartUploadsCommandOutput => ({
      $metadata: {},
      Uploads: [
        { Key: shared.Key, UploadId: 'lost', Initiated: new Date(s3TakeoverAt - 1_500) },
        { Key: shared.Key, UploadId: 'concurrent', Initiated: new Date(s3TakeoverAt + 5_000) },
      ],
      IsTruncated: false,
    });
    const skewed = fakeS3([page()]);
    // As the SDK measures it from the answer's Date (whole seconds): S3's clock minus ours.
    await abortLostUploads(skewed.send, ClientS3, shared, { target: 's3://b/run/artifacts/w.bin', lost: { takenOverAt }, clockOffsetMs: () => -600_400 });
    expect(skewed.aborted).toEqual(['lost']);

    // In step with S3, the offset read from a Date header is up to a second off: not applied, so a
    // lost upload initiated just before a takeover right after the kill is still aborted.
    const inStep = fakeS3([{ $metadata: {}, Uploads: [{ Key: shared.Key, UploadId: 'just-lost', Initiated: new Date(takenOverAt - 300) }], IsTruncated: false }]);
    await abortLostUploads(inStep.send, ClientS3, shared, { target: 's3://b/run/artifacts/w.bin', lost: { takenOverAt }, clockOffsetMs: () => -900 });
    expect(inStep.aborted).toEqual(['just-lost']);
  });

  it('a give-up days after the kill (an expired record, resume clear) spares the live upload another process started since: the lost one was initiated within a day of the mark', async () => {
    const markedAt = takenOverAt - 9 * 24 * 60 * 60_000; // the kill, nine days before the give-up
    const { send, aborted } = fakeS3([
      {
        $metadata: {},
        Uploads: [
          { Key: shared.Key, UploadId: 'lost', Initiated: new Date(markedAt + 40) },
          { Key: shared.Key, UploadId: 'lost-retried', Initiated: new Date(markedAt + 20 * 60_000) },
          { Key: shared.Key, UploadId: 'live', Initiated: new Date(takenOverAt - 10 * 60_000) },
        ],
        IsTruncated: false,
      },
    ]);
    await abortLostUploads(send, ClientS3, shared, { target: 's3://b/run/artifacts/w.bin', lost: { takenOverAt, markedAt } });
    expect(aborted).toEqual(['lost', 'lost-retried']);
    expect(lostUploadCut({ takenOverAt, markedAt })).toBe(markedAt + LOST_UPLOAD_WINDOW_MS);
    // A rerun right after the kill cuts at its takeover, as before.
    expect(lostUploadCut({ takenOverAt, markedAt: takenOverAt - 5_000 })).toBe(takenOverAt);
    // A journal record's mark is what the give-up passes on.
    const record = { creatingMultipart: markedAt } as JournalRecord;
    expect(earlierUploadOf(record, takenOverAt)).toEqual({ lostUpload: { takenOverAt, markedAt } });
  });

  it('never fails the file: a listing that is refused is a warning', async () => {
    const send = async () => {
      throw Object.assign(new Error('Access Denied'), { name: 'AccessDenied' });
    };
    const warnings: string[] = [];
    const logger = { debug() {}, info() {}, warn: (m: string) => void warnings.push(m), error() {} };
    await abortLostUploads(send, ClientS3, shared, { target: 's3://b/run/artifacts/w.bin', logger, lost: { takenOverAt } });
    expect(warnings.join('\n')).toMatch(/could not be looked for or aborted.*s3:ListBucketMultipartUploads/);
  });
});

describe('S3ArtifactStore.abandonUpload cut off by its signal', () => {
  /** An S3 endpoint that takes every request and never answers it; counts the requests. */
  async function silentEndpoint() {
    const held: ServerResponse[] = [];
    const server = createServer((_req, res) => void held.push(res));
    await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
    const close = () => {
      for (const res of held) res.destroy();
      server.closeAllConnections();
      return new Promise<void>((done) => server.close(() => done()));
    };
    return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, held, close };
  }

  function storeAt(url: string) {
    // The default idle timeout (120 s) and retries: without the signal, the caller waits minutes.
    return new S3ArtifactStore('s3://bucket/run/artifacts', { env: {}, endpointUrl: url, region: 'us-east-1', credentials: { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'example-secret' } });
  }

  it('an abort that gets no answer is left as interrupted when the signal fires, not waited for (an upload giving up expired records has 20 s)', async () => {
    const endpoint = await silentEndpoint();
    try {
      const controller = new AbortController();
      const outcome = storeAt(endpoint.url).abandonUpload('ckpt/big.bin', { previous: { uploadId: 'mpu-1', partSize: 8 << 20, parts: [] } }, { signal: controller.signal });
      await vi.waitUntil(() => endpoint.held.length > 0, { timeout: 10_000 });
      controller.abort();
      expect(await outcome).toEqual({ status: 'left', reason: 'interrupted before it was given up' });
    } finally {
      await endpoint.close();
    }
  }, 15_000);

  it('a search for a lost upload cut off leaves it (the record stays its handle), without the permission warning', async () => {
    const endpoint = await silentEndpoint();
    try {
      const controller = new AbortController();
      const warnings: string[] = [];
      const logger = { debug() {}, info() {}, warn: (m: string) => void warnings.push(m), error() {} };
      const store = new S3ArtifactStore('s3://bucket/run/artifacts', { env: {}, logger, endpointUrl: endpoint.url, region: 'us-east-1', credentials: { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'example-secret' } });
      const outcome = store.abandonUpload('ckpt/big.bin', { lostUpload: { takenOverAt: Date.now(), markedAt: Date.now() - 9 * 24 * 3600_000 } }, { signal: controller.signal });
      await vi.waitUntil(() => endpoint.held.length > 0, { timeout: 10_000 });
      controller.abort();
      expect(await outcome).toEqual({ status: 'left', reason: 'interrupted before it was given up' });
      expect(warnings).toEqual([]);
    } finally {
      await endpoint.close();
    }
  }, 15_000);
});
