/**
 * The transfer engine of the `s3://` store (`s3-store.ts`): one `PutObject` for a file up to the
 * part size, else a multipart upload driven here (`CreateMultipartUpload`, `UploadPart` ×
 * `queueSize` workers, `CompleteMultipartUpload`), and the clean-up that aborts a failed
 * multipart upload so no parts stay billed. {@link FileRequests} tracks the requests of one file
 * over the shared client: attempts, the first failure (which stops every other part), the
 * upload id.
 *
 * Each part in flight reads its byte range of the file into a buffer of its own, reused for the
 * next part (`file-ranges.ts`, shared with the Azure block upload), so memory per file stays
 * near `partSize × queueSize`. Every body that carries a
 * checksum S3 verifies skips the SHA-256 payload hash of the signature (`UNSIGNED-PAYLOAD`).
 *
 * Only types of `@aws-sdk/client-s3` are imported here; the SDK itself is loaded by the store on
 * first use.
 *
 * @module
 */
import type * as ClientS3 from '@aws-sdk/client-s3';
import { InvalidResponseError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import type { RetryEvent } from '../core/retry.js';
import { MAX_S3_PARTS } from './s3-config.js';
import type { MultipartResume } from './artifact-store.js';
import { RangeStop, sendFileRanges } from './file-ranges.js';
import { abortUpload, listUploadedParts, partChecksum, partsToKeep, type SendCommand } from './s3-resume.js';
import { readSourceRange, type SourceFile } from './source-file.js';

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
  source: SourceFile;
}

/**
 * A file up to the part size: read into one buffer (exactly `size` bytes), one `PutObject`.
 *
 * @example
 * ```ts
 * await putObject({ sdk, requests, params, target: 's3://b/k', source });
 * ```
 */
export async function putObject(upload: ObjectUpload): Promise<void> {
  const { sdk, requests, params, source } = upload;
  const body = await readSourceRange(source, Buffer.allocUnsafe(source.size), 0, source.size);
  await requests.send(new sdk.s3.PutObjectCommand({ ...params, Body: body, ContentLength: source.size }));
}

/**
 * `CreateMultipartUpload`, then the parts, `queueSize` at a time ({@link sendFileRanges}),
 * then `CompleteMultipartUpload` with the parts in order. A part that fails for good (or an abort) stops the others through {@link FileRequests}; the
 * caller aborts the multipart upload ({@link abortMultipartUpload}) once this has returned or
 * thrown, i.e. once every part has settled.
 *
 * @throws {InvalidResponseError} when S3 answers without an `UploadId` or a part's `ETag`.
 * @example
 * ```ts
 * await multipartUpload({ sdk, requests, params, target, source }, { partSize: 8 << 20, queueSize: 4 });
 * ```
 */
export async function multipartUpload(
  upload: ObjectUpload,
  options: { partSize: number; queueSize: number; onProgress?: ((loaded: number) => void) | undefined; resume?: MultipartResume | undefined },
): Promise<{ bytesReused: number }> {
  const { sdk, requests, params, source, target } = upload;
  const { partSize, resume } = options;
  // The object-level parameters every later request of the upload must repeat.
  const shared = pick(params, ['Bucket', 'Key', 'ExpectedBucketOwner', 'RequestPayer', 'SSECustomerAlgorithm', 'SSECustomerKey', 'SSECustomerKeyMD5']);
  const count = Math.ceil(source.size / partSize);
  const parts: ClientS3.CompletedPart[] = new Array<ClientS3.CompletedPart>(count);

  // Part-level resume: continue an earlier attempt's upload when the journal may, S3 still has
  // it and the part size is the same; keep the parts S3 lists as the journal recorded them.
  let uploadId: string | undefined;
  let bytesReused = 0;
  const done = new Set<number>();
  const previous = resume?.previous;
  if (previous) {
    // Sent straight through the client: a NoSuchUpload here is an answer, not a failure of the file.
    const probe: SendCommand = (command) => requests.client.send(command as ClientS3.ListPartsCommand);
    const listed = resume.reuse && previous.partSize === partSize ? await listUploadedParts(probe, sdk.s3, shared, previous.uploadId) : undefined;
    if (listed) {
      uploadId = previous.uploadId;
      requests.uploadId = uploadId; // a failure from here on aborts it, as it would a new one
      for (const [n, part] of partsToKeep(listed, previous, partSize, source.size)) {
        const { Size, ...completed } = part;
        parts[n - 1] = completed;
        done.add(n - 1);
        bytesReused += Size;
      }
    } else {
      // Not continued (gone, another part size, the file changed, resume off): nobody will complete it.
      await abortUpload(probe, sdk.s3, shared, previous.uploadId);
      await resume.aborted(previous.uploadId);
    }
  }
  if (!uploadId) {
    // What lib-storage and boto3 do: ask for a checksum of the whole object (CRC32 unless the
    // extra args name another algorithm) when the SDK sends checksums at all.
    const checksums = (await requests.client.config.requestChecksumCalculation()) === 'WHEN_SUPPORTED';
    const checksumAlgorithm = params.ChecksumAlgorithm ?? (checksums ? sdk.s3.ChecksumAlgorithm.CRC32 : undefined);
    await requests.send(new sdk.s3.CreateMultipartUploadCommand({ ...params, ChecksumAlgorithm: checksumAlgorithm }));
    uploadId = requests.uploadId;
    if (!uploadId) throw new InvalidResponseError(`S3 CreateMultipartUpload of ${target} returned no UploadId.`, { method: 'POST', url: target });
    await resume?.started(uploadId, partSize);
  }
  const id = uploadId;

  await sendFileRanges(source, requests, {
    rangeSize: partSize,
    concurrency: options.queueSize,
    onProgress: options.onProgress,
    skip: done,
    alreadyLoaded: bytesReused,
    send: async (index, body) => {
      const output = (await requests.send(
        new sdk.s3.UploadPartCommand({
          ...shared,
          UploadId: id,
          PartNumber: index + 1,
          Body: body,
          ContentLength: body.length,
          ChecksumAlgorithm: params.ChecksumAlgorithm,
        }),
      )) as ClientS3.UploadPartCommandOutput;
      if (!output.ETag) throw new InvalidResponseError(`S3 returned no ETag for part ${index + 1} of ${target}.`, { method: 'PUT', url: target });
      parts[index] = {
        PartNumber: index + 1,
        ETag: output.ETag,
        ChecksumCRC32: output.ChecksumCRC32,
        ChecksumCRC32C: output.ChecksumCRC32C,
        ChecksumCRC64NVME: output.ChecksumCRC64NVME,
        ChecksumSHA1: output.ChecksumSHA1,
        ChecksumSHA256: output.ChecksumSHA256,
      };
      await resume?.partDone({ partNumber: index + 1, size: body.length, etag: output.ETag, ...(partChecksum(output) ? { checksum: partChecksum(output)! } : {}) });
    },
  });
  if (requests.stopped) throw abortError(requests.stopReason);
  await requests.send(new sdk.s3.CompleteMultipartUploadCommand({ ...shared, UploadId: id, MultipartUpload: { Parts: parts } }));
  return { bytesReused };
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
          { error: error instanceof Error ? `${error.name}: ${error.message}` : String(error) },
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

  constructor(
    private readonly sdk: Sdk,
    readonly client: ClientS3.S3Client,
    private readonly options: { signal?: AbortSignal | undefined; onRetry: (event: RetryEvent) => void },
  ) {
    super(options.signal);
  }

  /** Sends one command of this file (any `@aws-sdk/client-s3` command; typed loosely as the SDK's per-command types do not unify). */
  async send(sent: object): Promise<unknown> {
    const command = sent as S3Command;
    const s3 = this.sdk.s3;
    this.countAttempts(command);
    const transfer = command instanceof s3.UploadPartCommand || command instanceof s3.PutObjectCommand;
    if (transfer) unsignedWithChecksum(command);
    const isAbort = command instanceof s3.AbortMultipartUploadCommand;
    if (!isAbort && this.signal.aborted) throw abortError(this.signal.reason);
    try {
      const output = await this.client.send(command as ClientS3.PutObjectCommand, transfer ? { abortSignal: this.signal } : {});
      if (command instanceof s3.CreateMultipartUploadCommand) this.uploadId = (output as ClientS3.CreateMultipartUploadCommandOutput).UploadId;
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
 * guards the bytes; without a checksum the payload is still SHA-256 signed.
 */
function unsignedWithChecksum(command: S3Command): void {
  command.middlewareStack.add(
    (next) => async (args) => {
      const request = args.request as { headers?: Record<string, string> };
      if (request.headers && Object.keys(request.headers).some((name) => CHECKSUM_HEADER.test(name))) {
        request.headers['x-amz-content-sha256'] = 'UNSIGNED-PAYLOAD';
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
