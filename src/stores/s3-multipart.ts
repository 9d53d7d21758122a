/**
 * The transfer engine of the `s3://` store (`s3-store.ts`): one `PutObject` for a file up to the
 * part size, else a multipart upload driven here (`CreateMultipartUpload`, `UploadPart` ×
 * `queueSize` parts in flight, more while they pay off, `CompleteMultipartUpload`), and the clean-up that aborts a failed
 * multipart upload so no parts stay billed. {@link FileRequests} tracks the requests of one file
 * over the shared client: attempts, the first failure (which stops every other part), the
 * upload id.
 *
 * Each part in flight reads its byte range of the file into a buffer of its own, reused for the
 * next part (`file-ranges.ts`, shared with the Azure block upload and the MLflow proxy), so
 * memory per file stays near `partSize × queueSize`, plus parts beyond that drawn from the
 * process-wide part-buffer budget while the number in flight grows; the file's sha256 is hashed in order from those buffers
 * (`ordered-sha256.ts`). Every body that carries a checksum S3 verifies skips the SHA-256
 * payload hash of the signature (`UNSIGNED-PAYLOAD`). Integrity: a single `PutObject` carries
 * the file's sha256 as its checksum; parts carry a CRC32 (native, cheap: a per-part SHA-256
 * would hash every byte a second time), computed here in one pass with the file's sha256 where
 * the SDK would compute it on its own (core/hash-in-one-pass.ts), and the object's composite
 * checksum is checked once the upload is complete.
 *
 * Only types of `@aws-sdk/client-s3` are imported here; the SDK itself is loaded by the store on
 * first use.
 *
 * @module
 */
import { createHash } from '../core/node-crypto.js';
import type * as ClientS3 from '@aws-sdk/client-s3';
import { InvalidResponseError, SourceChangedError, VerificationError } from '../core/errors.js';
import { sourceChange, type FileSnapshot } from '../core/source-snapshot.js';
import { Crc32 } from '../core/hash-in-one-pass.js';
import { errorText, type Logger } from '../core/logger.js';
import { isThrottlingError, type RetryEvent } from '../core/retry.js';
import { MAX_S3_PARTS } from './s3-config.js';
import type { MultipartResume } from './artifact-store.js';
import { RangeStop, sendFileRanges } from './file-ranges.js';
import { OrderedSha256 } from './ordered-sha256.js';
import {
  abortLostUploads,
  checksumFields,
  giveUpEarlierUpload,
  holdsBytes,
  keptPartFigure,
  type KeptPartFigure,
  listUploadedParts,
  partChecksum,
  partsToKeep,
  type SendCommand,
  type SharedParams,
  unrecordedParts,
} from './s3-resume.js';
import type { SourceFile } from './source-file.js';

/** The namespace of `@aws-sdk/client-s3`. */
export type ClientS3Module = typeof ClientS3;
/** The loaded SDK modules. */
export interface Sdk {
  s3: ClientS3Module;
}
type S3Command = Parameters<ClientS3.S3Client['send']>[0];

/** What one object upload needs besides the file. */
export interface ObjectUpload {
  sdk: Sdk;
  requests: FileRequests;
  /** The `PutObject` parameters of the object (bucket, key, content type, extra args). */
  params: ClientS3.PutObjectCommandInput;
  /** `s3://bucket/key`, for messages. */
  target: string;
  /** The artifact path (relative to the run's artifact root), for a `VerificationError`. */
  artifactPath: string;
  source: SourceFile;
}

/** What {@link putObject} and {@link multipartUpload} report about the stored object. */
export interface ObjectIntegrity {
  /** sha256 (hex) of the bytes read, each hashed once. */
  sha256: string;
  /** `checksum` when S3 checked the bytes against a checksum of what was read (see `UploadFileResult.verified`). */
  verified?: 'checksum';
  /** The object checksum S3 reported and we compared, `<algorithm>:<base64>[-<parts>]`. */
  checksum?: string;
}

/**
 * A file up to the part size, read whole into `body` by the caller: hashed (sha256) once, one
 * `PutObject`. With the SDK's checksums on (its default), that sha256 goes as the
 * body's `x-amz-checksum-sha256`, so S3 refuses bytes that do not match it and no other
 * checksum is computed; with them off (`AWS_REQUEST_CHECKSUM_CALCULATION=when_required`) it is
 * the signature's payload hash instead (`x-amz-content-sha256`), which S3 checks too, and the
 * SDK does not hash the body again. A checksum algorithm chosen in the extra args is left to
 * the SDK.
 *
 * @example
 * ```ts
 * const { sha256, verified } = await putObject({ sdk, requests, params, target: 's3://b/k', artifactPath: 'k', body: await readFile('model.json') });
 * ```
 */
export async function putObject(upload: Omit<ObjectUpload, 'source'> & { body: Buffer }): Promise<ObjectIntegrity> {
  const { sdk, requests, params, body } = upload;
  const digest = createHash('sha256').update(body).digest();
  const sha256 = digest.toString('hex');
  const checksums = (await requests.client.config.requestChecksumCalculation()) === 'WHEN_SUPPORTED';
  const ours = checksums && !params.ChecksumAlgorithm ? { ChecksumAlgorithm: sdk.s3.ChecksumAlgorithm.SHA256, ChecksumSHA256: digest.toString('base64') } : {};
  const output = (await requests.send(new sdk.s3.PutObjectCommand({ ...params, ...ours, Body: body, ContentLength: body.length }), { payloadSha256: sha256 })) as ClientS3.PutObjectOutput;
  // S3 answers with the checksum it verified; a server that ignores checksums answers none.
  const checksum = partChecksum(output);
  if (ours.ChecksumSHA256 && checksum && checksum !== `sha256:${ours.ChecksumSHA256}`) {
    throw new VerificationError([{ artifactPath: upload.artifactPath, expectedSize: body.length, actualSize: body.length, reason: 'checksum' }], {
      hint: `S3 answered the upload of ${upload.target} with the checksum ${checksum}, not the sha256 that was sent; upload it again.`,
    });
  }
  return { sha256, ...(checksum ? { verified: 'checksum' as const, checksum } : {}) };
}

/**
 * `CreateMultipartUpload`, then the parts, `queueSize` at a time, growing up to `maxQueueSize`
 * while more in flight pay off ({@link sendFileRanges}),
 * then `CompleteMultipartUpload` with the parts in order. A part that fails for good (or an abort) stops the others through {@link FileRequests}; the
 * caller aborts the multipart upload ({@link abortMultipartUpload}) once this has returned or
 * thrown, i.e. once every part has settled.
 *
 * @throws {InvalidResponseError} when S3 answers without an `UploadId` or a part's `ETag`.
 * @example
 * ```ts
 * await multipartUpload({ sdk, requests, params, target, source }, { partSize: 8 << 20, queueSize: 4, maxQueueSize: 16 });
 * ```
 */
export async function multipartUpload(
  upload: ObjectUpload,
  options: {
    partSize: number;
    queueSize: number;
    maxQueueSize?: number | undefined;
    logger?: Logger | undefined;
    onProgress?: ((loaded: number) => void) | undefined;
    resume?: MultipartResume | undefined;
    /** The file when its upload started: one that no longer matches it once its parts are sent is not completed. @default none (not checked) */
    snapshot?: FileSnapshot | undefined;
  },
): Promise<ObjectIntegrity & { bytesReused: number }> {
  const { sdk, requests, params, source, target } = upload;
  const { partSize, resume } = options;
  // The object-level parameters every later request of the upload must repeat.
  const shared = pick(params, ['Bucket', 'Key', 'ExpectedBucketOwner', 'RequestPayer', 'SSECustomerAlgorithm', 'SSECustomerKey', 'SSECustomerKeyMD5']);
  const count = Math.ceil(source.size / partSize);
  const parts: ClientS3.CompletedPart[] = new Array<ClientS3.CompletedPart>(count);
  // The checksum S3 answered for each part (`<algorithm>:<base64>`), for the object's composite.
  const checksums = Array.from<string | undefined>({ length: count });

  // What lib-storage and boto3 do: ask for a checksum of the whole object (CRC32 unless the
  // extra args name another algorithm) when the SDK sends checksums at all; the parts carry
  // the same algorithm (the SDK's default for them).
  const sendsChecksums = (await requests.client.config.requestChecksumCalculation()) === 'WHEN_SUPPORTED';
  const checksumAlgorithm = params.ChecksumAlgorithm ?? (sendsChecksums ? sdk.s3.ChecksumAlgorithm.CRC32 : undefined);
  // A part's CRC32 is ours, not the SDK's: computed in one pass with the sha256 (see
  // `rangeChecksum` in file-ranges.ts), where the SDK's would read the part from memory again
  // (~0.4 s of CPU per GiB). The same header the SDK would send; any other algorithm is its.
  const ownCrc32 = checksumAlgorithm === sdk.s3.ChecksumAlgorithm.CRC32;

  // Part-level resume: continue an earlier attempt's upload when the journal may, S3 still has
  // it and the part size is the same; keep the parts S3 lists as the journal recorded them
  // (checked against the file's bytes before the complete: `checkSkipped` below), and those it
  // lists that the journal never heard of (in flight at a crash) once the bytes read to send
  // them give S3's own CRC32 or MD5 for them (in `send` below).
  let uploadId: string | undefined;
  let bytesReused = 0;
  const done = new Set<number>();
  /** Parts S3 lists that the journal never recorded: kept when the bytes read to send them hold. */
  let maybeStored = new Map<number, ClientS3.Part>();
  let earlierCrc32 = false;
  let keptUnrecorded = 0;
  /** What each kept part (by index) must come to over the file's bytes at its range. */
  const keptFigures = new Map<number, KeptPartFigure>();
  const previous = resume?.previous;
  if (previous) {
    // Sent straight through the client: a NoSuchUpload here is an answer, not a failure of the file.
    const probe: SendCommand = (command) => requests.client.send(command as ClientS3.ListPartsCommand);
    let listed: ClientS3.Part[] | undefined;
    let checkFailed: unknown;
    if (resume.reuse && previous.partSize === partSize) {
      try {
        listed = await listUploadedParts(probe, sdk.s3, shared, previous.uploadId);
      } catch (error) {
        // The journal must never make an upload fail: a check that fails (no
        // s3:ListMultipartUploadParts, a fault that outlived the SDK's retries) starts the file over.
        checkFailed = error;
      }
    }
    if (listed) {
      uploadId = previous.uploadId;
      requests.uploadId = uploadId; // a failure from here on aborts it, as it would a new one
      const recorded = new Map(previous.parts.map((p) => [p.partNumber, p.checksum]));
      const kept = partsToKeep(listed, previous, partSize, source.size);
      for (const [n, part] of kept) {
        const { Size, ...completed } = part;
        // Kept unsent, but checked against the file's bytes before the complete (`checkSkipped`
        // below); a part with nothing to check it by is sent again.
        const figure = keptPartFigure(completed, recorded.get(n));
        if (!figure) continue;
        keptFigures.set(n - 1, figure);
        parts[n - 1] = completed;
        // What S3 answered when the part was sent (the journal kept it), where ListParts says nothing.
        checksums[n - 1] = partChecksum(completed) ?? recorded.get(n);
        done.add(n - 1);
        bytesReused += Size;
      }
      maybeStored = unrecordedParts(listed, kept, partSize, source.size);
      // The CRC32 of the local bytes stands for a part S3 lists without a checksum (moto) only
      // when the journal shows the earlier attempt sent CRC32s too.
      earlierCrc32 = ownCrc32 && previous.parts.length > 0 && previous.parts.every((p) => p.checksum?.startsWith('crc32:'));
    } else {
      // Not continued (gone, another part size, the file changed, resume off, the check failed): nobody will complete it.
      await giveUpEarlierUpload(probe, sdk.s3, shared, resume, { target, logger: options.logger, checkFailed });
    }
  }
  if (!uploadId) {
    if (resume?.lostUpload) {
      // Sent straight through the client, as ListParts above: what they answer is not a failure of the file.
      const direct: SendCommand = (command) => requests.client.send(command as ClientS3.ListMultipartUploadsCommand);
      await abortLostUploads(direct, sdk.s3, shared, {
        target,
        logger: options.logger,
        lost: resume.lostUpload,
        clockOffsetMs: () => requests.client.config.systemClockOffset,
      });
    }
    // Recorded before the request, so a kill before its answer is recorded leaves a trace (`lostUpload`).
    await resume?.creating?.();
    await requests.send(new sdk.s3.CreateMultipartUploadCommand({ ...params, ChecksumAlgorithm: checksumAlgorithm }));
    uploadId = requests.uploadId;
    if (!uploadId) throw new InvalidResponseError(`S3 CreateMultipartUpload of ${target} returned no UploadId.`, { method: 'POST', url: target });
    await resume?.started(uploadId, partSize);
  }
  const id = uploadId;

  /**
   * Part `index` is on S3 (sent now, or held from the earlier attempt): its ETag and checksum
   * fields go to the complete, its checksum to the object's composite, and it to the journal.
   */
  const recordPart = async (index: number, size: number, etag: string, answer: ClientS3.Part | ClientS3.UploadPartCommandOutput, checksum: string | undefined): Promise<void> => {
    parts[index] = { PartNumber: index + 1, ETag: etag, ...checksumFields(answer) };
    checksums[index] = checksum;
    await resume?.partDone({ partNumber: index + 1, size, etag, ...(checksum ? { checksum } : {}) });
  };

  // The file's sha256, in order from the part buffers (reused parts are read to be hashed).
  const hasher = new OrderedSha256(source.size);
  await sendFileRanges(source, requests, {
    rangeSize: partSize,
    // Adaptive from queueSize up to maxQueueSize (a fixed queueSize when they are equal).
    concurrency: options.queueSize,
    maxConcurrency: options.maxQueueSize,
    logger: options.logger,
    label: `parts of ${target}`,
    onProgress: options.onProgress,
    skip: done,
    alreadyLoaded: bytesReused,
    hasher,
    rangeChecksum: ownCrc32 ? () => new Crc32() : undefined,
    // A kept part is checked against the file from the bytes read for the sha256 anyway: the
    // file may have been rewritten since the earlier attempt in a way the journal's identity
    // (size, mtime, inode) does not show, and completing would then store a mix of two versions.
    checkSkipped: (index) => {
      const figure = keptFigures.get(index)!;
      return {
        checksum: figure.hash(),
        check: async (digest) => {
          if (digest.equals(figure.expected)) return;
          const now = options.snapshot ?? (await source.handle.stat());
          throw new SourceChangedError(source.path, now, now, {
            sinceEarlierAttempt: true,
            change: `was rewritten (the ${figure.name} S3 holds for part ${index + 1} of ${target} is not that of the file's bytes at its range now)`,
          });
        },
      };
    },
    send: async (index, body, crc32) => {
      const stored = maybeStored.get(index + 1);
      if (stored && holdsBytes(stored, body, crc32)) {
        // S3 has these very bytes from the earlier attempt, which died before its answer came.
        bytesReused += body.length;
        keptUnrecorded++;
        await recordPart(index, body.length, stored.ETag!, stored, partChecksum(stored) ?? (earlierCrc32 && crc32 ? `crc32:${crc32.toString('base64')}` : undefined));
        return 'held';
      }
      const output = (await requests.send(
        new sdk.s3.UploadPartCommand({
          ...shared,
          UploadId: id,
          PartNumber: index + 1,
          Body: body,
          ContentLength: body.length,
          ChecksumAlgorithm: crc32 ? sdk.s3.ChecksumAlgorithm.CRC32 : params.ChecksumAlgorithm,
          ChecksumCRC32: crc32?.toString('base64'),
        }),
      )) as ClientS3.UploadPartCommandOutput;
      if (!output.ETag) throw new InvalidResponseError(`S3 returned no ETag for part ${index + 1} of ${target}.`, { method: 'PUT', url: target });
      await recordPart(index, body.length, output.ETag, output, partChecksum(output));
    },
  });
  if (requests.stopped) throw abortError(requests.stopReason);
  if (keptUnrecorded > 0) {
    options.logger?.debug(`kept ${keptUnrecorded} part(s) of ${target} that S3 stored but the earlier attempt never heard back about (their bytes match S3's checksums)`);
  }
  const sha256 = await hasher.digest(source);
  // Parts read from a file that changed meanwhile mix two versions of it: not completed, so
  // nothing is stored (the caller aborts the upload), as Azure's commit and MLflow's mpu/complete.
  const changed = options.snapshot ? await sourceChange(source.path, options.snapshot) : undefined;
  if (changed) throw changed;
  const completed = (await requests.send(new sdk.s3.CompleteMultipartUploadCommand({ ...shared, UploadId: id, MultipartUpload: { Parts: parts } }))) as ClientS3.CompleteMultipartUploadOutput;
  // S3 checked every part against the checksum computed from its buffer; the object's
  // checksum (a checksum of the part checksums) then shows it assembled those parts.
  if (!checksums.every((checksum) => checksum !== undefined)) return { bytesReused, sha256 };
  const expected = compositeChecksum(checksums as string[]);
  const reported = partChecksum(completed) ?? (await objectChecksum(upload, shared));
  if (expected && reported) {
    const [value, partCount] = reported.split('-');
    if (value !== expected || (partCount !== undefined && Number(partCount) !== parts.length)) {
      throw new VerificationError([{ artifactPath: upload.artifactPath, expectedSize: source.size, actualSize: source.size, reason: 'checksum' }], {
        hint: `S3 holds ${target} with the checksum ${reported}, but its parts were sent with ${expected}-${parts.length}; upload it again.`,
      });
    }
    return { bytesReused, sha256, verified: 'checksum', checksum: `${expected}-${parts.length}` };
  }
  return { bytesReused, sha256, verified: 'checksum' };
}

/**
 * The checksum S3 gives a multipart object of parts with these checksums (`COMPOSITE`): the
 * algorithm over the concatenated binary part checksums, `<algorithm>:<base64>` (without the
 * `-<parts>` suffix), for the algorithms Node computes natively (CRC32, SHA-1, SHA-256);
 * `undefined` for the others, or parts of different algorithms.
 *
 * @example
 * ```ts
 * compositeChecksum(['crc32:AAAAAA==', 'crc32:AAAAAA==']); // 'crc32:...'
 * ```
 */
export function compositeChecksum(checksums: readonly string[]): string | undefined {
  const algorithm = checksums[0]?.split(':')[0];
  if (!algorithm || checksums.some((c) => !c.startsWith(`${algorithm}:`))) return undefined;
  const joined = Buffer.concat(checksums.map((c) => Buffer.from(c.slice(algorithm.length + 1), 'base64')));
  if (algorithm === 'sha256' || algorithm === 'sha1') return `${algorithm}:${createHash(algorithm).update(joined).digest('base64')}`;
  if (algorithm === 'crc32') return `crc32:${new Crc32().update(joined).digest().toString('base64')}`;
  return undefined;
}

/**
 * The object's checksum from `HeadObject` (`ChecksumMode: ENABLED`), or `undefined` when S3
 * does not say (no checksum, or no permission to read the object: `s3:GetObject`).
 */
async function objectChecksum(upload: ObjectUpload, shared: SharedParams): Promise<string | undefined> {
  const { sdk, requests } = upload;
  try {
    const head = (await requests.client.send(
      new sdk.s3.HeadObjectCommand({ ...shared, ChecksumMode: sdk.s3.ChecksumMode.ENABLED }),
      { abortSignal: requests.signal },
    )) as ClientS3.HeadObjectOutput;
    return partChecksum(head);
  } catch {
    return undefined;
  }
}

/**
 * After a failed multipart upload (every part has settled), aborts it on the bucket: once with
 * the SDK's retries, and if that did not go through, once more; then warns that the parts stay
 * billed.
 *
 * @example
 * ```ts
 * await abortMultipartUpload(sdk, requests, { Bucket, Key }, 's3://b/k', logger);
 * ```
 */
export async function abortMultipartUpload(
  sdk: Sdk,
  requests: FileRequests,
  object: { Bucket: string; Key: string; ExpectedBucketOwner?: string | undefined },
  target: string,
  logger: Logger,
): Promise<void> {
  for (let round = 0; round < 2; round++) {
    if (!requests.uploadId || requests.completed || requests.abortedOnServer) return;
    try {
      await requests.send(new sdk.s3.AbortMultipartUploadCommand({ ...object, UploadId: requests.uploadId }));
      logger.debug(`aborted the multipart upload of ${target}`);
      return;
    } catch (error) {
      if (requests.abortedOnServer) return;
      if (round === 1) {
        logger.warn(
          `Could not abort the multipart upload ${requests.uploadId} of ${target}; its parts stay billed until a lifecycle rule (AbortIncompleteMultipartUpload) removes them.`,
          { error: errorText(error) },
        );
      }
    }
  }
}

/**
 * The configured part size, grown (in whole MiB) so a file needs at most 10,000 parts.
 *
 * @example
 * ```ts
 * effectivePartSize(200 * 1024 ** 3, 8 * 1024 ** 2); // 21 MiB
 * ```
 */
export function effectivePartSize(size: number, partSize: number): number {
  if (Math.ceil(size / partSize) <= MAX_S3_PARTS) return partSize;
  const MiB = 1024 * 1024;
  return Math.ceil(size / MAX_S3_PARTS / MiB) * MiB;
}

/** The request header of each checksum S3 verifies against the body. */
const CHECKSUM_HEADER = /^x-amz-checksum-(crc32|crc32c|crc64nvme|sha1|sha256)$/i;

/**
 * The requests of one file over the shared client: counts attempts (a middleware inside the
 * SDK's retry loop), stops every part as soon as one fails for good or the caller aborts, and
 * remembers the multipart upload id so the upload can be aborted. Commands that create,
 * complete or abort the multipart upload are never cut off mid-flight: the server might act on
 * them without us learning the outcome.
 *
 * @example
 * ```ts
 * const requests = new FileRequests(sdk, client, { signal, onRetry: () => undefined });
 * await putObject({ sdk, requests, params, target, source });
 * ```
 */
export class FileRequests extends RangeStop {
  /** Retried requests over all commands of this file. */
  retries = 0;
  uploadId?: string;
  completed = false;
  abortedOnServer = false;
  /** A part of this file was answered 2xx in this process: S3 took this upload's parts with these credentials. */
  private partAccepted = false;

  constructor(
    private readonly sdk: Sdk,
    readonly client: ClientS3.S3Client,
    private readonly options: { signal?: AbortSignal | undefined; onRetry: (event: RetryEvent) => void },
  ) {
    super(options.signal);
  }

  /** Sends one command of this file (any `@aws-sdk/client-s3` command; typed loosely as the SDK's per-command types do not unify). */
  async send(sent: object, options: { payloadSha256?: string } = {}): Promise<unknown> {
    const command = sent as S3Command;
    const s3 = this.sdk.s3;
    this.countAttempts(command);
    const transfer = command instanceof s3.UploadPartCommand || command instanceof s3.PutObjectCommand;
    if (transfer) unsignedWithChecksum(command, options.payloadSha256);
    if (command instanceof s3.UploadPartCommand) this.continueOnlyWhereRefusable(command);
    const isAbort = command instanceof s3.AbortMultipartUploadCommand;
    if (!isAbort && this.signal.aborted) throw abortError(this.signal.reason);
    try {
      const output = await this.client.send(command as ClientS3.PutObjectCommand, transfer ? { abortSignal: this.signal } : {});
      if (command instanceof s3.CreateMultipartUploadCommand) this.uploadId = (output as ClientS3.CreateMultipartUploadCommandOutput).UploadId;
      if (command instanceof s3.UploadPartCommand) this.partAccepted = true;
      if (command instanceof s3.CompleteMultipartUploadCommand) this.completed = true;
      if (isAbort) this.abortedOnServer = true;
      return output;
    } catch (error) {
      if (isAbort) {
        if ((error as { name?: string }).name === 'NoSuchUpload') this.abortedOnServer = true;
        throw error;
      }
      this.fail(error);
      throw error;
    }
  }

  /**
   * The SDK sends every body over 2 MB with `Expect: 100-continue`: the body waits for the
   * server's go-ahead, one round trip, so that a refused request does not send its bytes for
   * nothing. For a part that round trip is paid again and again (through 80 ms, 128 parts of
   * 1 GiB four at a time waited 2.6 s for it) while a refusal has become unlikely: once a part of
   * this upload was accepted, the credentials, bucket, key and upload id are known good. So the
   * first attempt of a later part goes without it; the first parts and every retried attempt keep
   * it (a part refused then still answers with S3's error, not a connection cut mid-body).
   * Inside the SDK's retry loop (like {@link countAttempts}), so it sees each attempt.
   */
  private continueOnlyWhereRefusable(command: S3Command): void {
    let attempt = 0;
    /** What the SDK set (nothing on a last part under 2 MB): put back on retries. */
    let expect: string | undefined;
    command.middlewareStack.add(
      (next) => async (args) => {
        attempt++;
        const headers = (args.request as { headers?: Record<string, string> }).headers;
        if (attempt === 1) expect = headers?.Expect;
        if (headers && expect !== undefined) {
          // Not signed (SigV4 never signs `expect`), so it may change after signing.
          if (attempt === 1 && this.partAccepted) delete headers.Expect;
          else headers.Expect = expect;
        }
        return next(args);
      },
      { step: 'finalizeRequest', priority: 'low', name: 'artifactUploaderContinueOnlyWhereRefusable', override: true },
    );
  }

  /** A middleware inside the SDK's retry loop runs once per attempt. */
  private countAttempts(command: S3Command): void {
    let attempt = 0;
    let lastError: unknown;
    let failedAt = 0;
    command.middlewareStack.add(
      (next) => async (args) => {
        attempt++;
        if (attempt > 1) {
          this.retries++;
          // S3's SlowDown (503): fewer parts of this file in flight from now.
          if (isThrottlingError(lastError)) this.throttled();
          this.options.onRetry({ attempt: attempt - 1, error: lastError, delayMs: Date.now() - failedAt });
        }
        try {
          return await next(args);
        } catch (error) {
          lastError = error;
          failedAt = Date.now();
          throw error;
        }
      },
      { step: 'finalizeRequest', priority: 'low', name: 'artifactUploaderAttempts', override: true },
    );
  }
}

/**
 * Lets a body that carries a checksum S3 verifies (the flexible-checksums middleware has run:
 * this sits after it in the build step) skip the SHA-256 payload hash of the signature, as the
 * SDK does for every streamed body and boto3 does over TLS. The checksum, not the signature,
 * guards the bytes. Without a checksum the payload is SHA-256 signed: with `payloadSha256`
 * (hex, already computed) the signer takes it as it is instead of hashing the body again.
 */
function unsignedWithChecksum(command: S3Command, payloadSha256: string | undefined): void {
  command.middlewareStack.add(
    (next) => async (args) => {
      const request = args.request as { headers?: Record<string, string> };
      if (request.headers && Object.keys(request.headers).some((name) => CHECKSUM_HEADER.test(name))) {
        request.headers['x-amz-content-sha256'] = 'UNSIGNED-PAYLOAD';
      } else if (request.headers && payloadSha256) {
        request.headers['x-amz-content-sha256'] = payloadSha256;
      }
      return next(args);
    },
    { step: 'build', priority: 'low', name: 'artifactUploaderUnsignedWithChecksum', override: true },
  );
}

/** The error a stopped request throws: an `AbortError`, as the SDK's own aborts are. */
function abortError(reason: unknown): Error {
  return Object.assign(new Error('Request aborted: the upload of this file was stopped.'), { name: 'AbortError', cause: reason });
}

/** The listed keys of `object` that are set. */
function pick<T extends object, K extends keyof T>(object: T, keys: readonly K[]): Pick<T, K> {
  const out = {} as Pick<T, K>;
  for (const key of keys) if (object[key] !== undefined) out[key] = object[key];
  return out;
}
