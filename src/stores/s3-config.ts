/**
 * Configuration of the `s3://` artifact store, read the way MLflow's `S3ArtifactRepository`
 * reads it (`mlflow/store/artifact/s3_artifact_repo.py`): `MLFLOW_S3_ENDPOINT_URL` (else
 * botocore's `AWS_ENDPOINT_URL_S3` / `AWS_ENDPOINT_URL`, then the AWS config file's, which the
 * store asks the SDK for: {@link ResolvedS3Config.ignoreConfiguredEndpointUrls}),
 * `MLFLOW_S3_IGNORE_TLS`, `MLFLOW_S3_UPLOAD_EXTRA_ARGS`, `MLFLOW_S3_EXPECTED_BUCKET_OWNER`,
 * `MLFLOW_BOTO_CLIENT_ADDRESSING_STYLE`, and the region from `AWS_REGION` /
 * `AWS_DEFAULT_REGION`. Options win over env vars. No AWS SDK types appear here, so this
 * module (and the public option types) load without the optional peer dependencies.
 *
 * @module
 */
import { envBool, envString, type Env } from '../core/env.js';
import { ConfigError, InvalidArgumentError } from '../core/errors.js';
import { redact, registerSecret } from '../core/logger.js';
import { LARGEST_RANGE_BYTES, MAX_ADAPTIVE_PARTS_IN_FLIGHT, PART_BUFFER_BUDGET_BYTES } from './file-ranges.js';

/**
 * How bucket names go into request URLs, as boto3's `addressing_style`:
 * - `path`: `https://endpoint/bucket/key`;
 * - `virtual`: `https://bucket.endpoint/key`;
 * - `auto`: what boto3 does by default. With a custom endpoint (`MLFLOW_S3_ENDPOINT_URL`, i.e.
 *   MinIO, Ceph, moto, ...) botocore forces path style unless `virtual` is asked for
 *   explicitly (`botocore/args.py`, `compute_endpoint_resolver_builtin_defaults`); against AWS
 *   itself it uses virtual-hosted style, falling back to path style for bucket names that are
 *   not DNS-compatible.
 */
export type S3AddressingStyle = 'path' | 'virtual' | 'auto';

/** Static AWS credentials, for when the SDK's default chain is not wanted. */
export interface S3Credentials {
  /** Access key id. */
  accessKeyId: string;
  /** Secret access key. Registered with the redactor: it never appears in logs or errors. */
  secretAccessKey: string;
  /** Session token of temporary credentials. Redacted like the secret. */
  sessionToken?: string;
}

/** 8 MiB: boto3's `multipart_threshold` and `multipart_chunksize`, so files split where boto3 splits them. */
export const DEFAULT_S3_PART_SIZE = 8 * 1024 * 1024;
/**
 * Parts of one file in flight at the start. boto3 runs 10 threads; against moto on loopback 2, 4
 * and 8 parts in flight took the same time, so the default starts low and grows (up to
 * {@link DEFAULT_S3_MAX_QUEUE_SIZE}) only where more parts pay off: a remote endpoint, where each
 * part waits round trips.
 */
export const DEFAULT_S3_QUEUE_SIZE = 4;
/** The most parts of one file in flight the default `queueSize` grows to. */
export const DEFAULT_S3_MAX_QUEUE_SIZE = MAX_ADAPTIVE_PARTS_IN_FLIGHT;
/** S3's smallest allowed part (all parts but the last). */
export const MIN_S3_PART_SIZE = 5 * 1024 * 1024;
/** S3's largest allowed part. */
export const MAX_S3_PART_SIZE = 5 * 1024 * 1024 * 1024;
/** S3's largest number of parts in one multipart upload. */
export const MAX_S3_PARTS = 10_000;

/**
 * Options of the `s3://` artifact store. Every field is optional: unset fields come from
 * MLflow's env vars, then the defaults below. Credentials come from the AWS SDK's default chain
 * (`AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`, `AWS_PROFILE` and `~/.aws/*`, SSO, web identity,
 * container and instance metadata) unless `credentials` is given.
 *
 * Memory: each file being uploaded holds about `partSize × queueSize` bytes (one buffer per
 * part in flight, reused for the next part), 32 MiB with the defaults. When the number of parts
 * in flight grows (see `maxQueueSize`), the extra buffers come from one budget shared by every
 * file of the process: all part buffers together stay within 128 MiB
 * ({@link PART_BUFFER_BUDGET_BYTES}; each file's `queueSize` share counts toward it but is always granted).
 *
 * @example
 * ```ts
 * const options: S3StoreOptions = { endpointUrl: 'http://minio:9000', partSize: 16 * 1024 * 1024, queueSize: 2 };
 * ```
 */
export interface S3StoreOptions {
  /**
   * Endpoint of an S3-compatible server (MinIO, Ceph, R2, moto, ...).
   * @default MLFLOW_S3_ENDPOINT_URL, else AWS_ENDPOINT_URL_S3, else AWS_ENDPOINT_URL, else the AWS profile's (`endpoint_url` of its `services` section's `s3`, else its own), as botocore; else AWS's endpoint for the region
   */
  endpointUrl?: string;
  /**
   * Skip TLS certificate verification against the endpoint.
   * @default MLFLOW_S3_IGNORE_TLS, else false
   */
  ignoreTls?: boolean;
  /**
   * Extra `PutObject` / `CreateMultipartUpload` parameters, e.g.
   * `{ ServerSideEncryption: 'aws:kms', SSEKMSKeyId: '...' }`. Same names as boto3's
   * `ExtraArgs`; they override the guessed `ContentType`.
   * @default MLFLOW_S3_UPLOAD_EXTRA_ARGS parsed as JSON, else none
   */
  uploadExtraArgs?: Record<string, unknown>;
  /**
   * AWS account id that must own the bucket; every request carries it, so S3 refuses to write
   * into a bucket someone else re-created under the same name.
   * @default MLFLOW_S3_EXPECTED_BUCKET_OWNER
   */
  expectedBucketOwner?: string;
  /**
   * Bucket addressing in URLs (see {@link S3AddressingStyle}).
   * @default MLFLOW_BOTO_CLIENT_ADDRESSING_STYLE, else 'auto'
   */
  addressingStyle?: S3AddressingStyle;
  /**
   * AWS region used for signing and for AWS's endpoint.
   * @default AWS_REGION, else AWS_DEFAULT_REGION, else the region of the AWS profile, else 'us-east-1'
   */
  region?: string;
  /** Static credentials instead of the SDK's default chain. @default the AWS SDK's default chain */
  credentials?: S3Credentials;
  /**
   * Size of one multipart part in bytes (at least 5 MiB, S3's minimum; at most 5 GiB, S3's
   * maximum, or 4 GiB on Node.js 20, whose Buffers hold no more). Files up to this size
   * go in a single `PutObject`. Raised automatically for files that would need more than
   * 10,000 parts.
   * @default 8 MiB (8388608)
   */
  partSize?: number;
  /**
   * Parts of one file in flight at the start. Left unset, the number adapts: it starts at 4
   * and grows by half (up to `maxQueueSize`, 16 by default) while more parts in flight bring
   * more throughput (a remote endpoint, where each part waits round trips and TCP slow start),
   * steps back when a step brings nothing (loopback, where the server is the limit), and halves
   * on a throttling answer (503 SlowDown). A value you set is kept fixed, unless you also set
   * `maxQueueSize`.
   * @default 4 (adaptive)
   */
  queueSize?: number;
  /**
   * The most parts of one file in flight the adaptive number may grow to, from `queueSize`.
   * Set it equal to `queueSize` to pin the number; buffers beyond `queueSize` always stay
   * within the process-wide part-buffer budget (128 MiB), whatever this says.
   * @default 16 when `queueSize` is unset; else `queueSize` (fixed)
   */
  maxQueueSize?: number;
}

/** {@link S3StoreOptions} with env vars and defaults applied. */
export interface ResolvedS3Config {
  /**
   * Custom endpoint from the option or the env vars, if any (no trailing slash). The store adds
   * the AWS config file's, which only the SDK reads, once it is loaded.
   */
  endpointUrl?: string;
  /**
   * Where {@link endpointUrl} came from, as messages name it: `s3.endpointUrl` (the option),
   * `MLFLOW_S3_ENDPOINT_URL`, `AWS_ENDPOINT_URL_S3`, `AWS_ENDPOINT_URL`, or the AWS config file.
   */
  endpointSource?: string;
  /**
   * True when `AWS_IGNORE_CONFIGURED_ENDPOINT_URLS` is `true`: neither `AWS_ENDPOINT_URL_S3` /
   * `AWS_ENDPOINT_URL` nor the AWS config file's `endpoint_url` is used (botocore's
   * `ignore_configured_endpoint_urls`; the SDK is told so too). The option and
   * `MLFLOW_S3_ENDPOINT_URL` still are: MLflow passes it to boto3 as `endpoint_url`.
   */
  ignoreConfiguredEndpointUrls: boolean;
  ignoreTls: boolean;
  uploadExtraArgs: Record<string, unknown>;
  expectedBucketOwner?: string;
  addressingStyle: S3AddressingStyle;
  /** What {@link addressingStyle} means for the AWS SDK's `forcePathStyle`, as botocore decides it. */
  forcePathStyle: boolean;
  /** Region from the option or env; `undefined` means "the profile's, else us-east-1". */
  region?: string;
  credentials?: S3Credentials;
  partSize: number;
  queueSize: number;
  /** The most parts in flight {@link queueSize} may grow to; equal to it, the number is fixed. */
  maxQueueSize: number;
}

/**
 * `ExtraArgs` boto3 accepts for uploads (`S3Transfer.ALLOWED_UPLOAD_ARGS`), minus the per-file
 * checksum values and sizes, which cannot be constant across files.
 */
const ALLOWED_UPLOAD_ARGS = new Set([
  'ACL',
  'CacheControl',
  'ChecksumAlgorithm',
  'ContentDisposition',
  'ContentEncoding',
  'ContentLanguage',
  'ContentType',
  'ExpectedBucketOwner',
  'Expires',
  'GrantFullControl',
  'GrantRead',
  'GrantReadACP',
  'GrantWriteACP',
  'Metadata',
  'ObjectLockLegalHoldStatus',
  'ObjectLockMode',
  'ObjectLockRetainUntilDate',
  'RequestPayer',
  'ServerSideEncryption',
  'StorageClass',
  'SSECustomerAlgorithm',
  'SSECustomerKey',
  'SSECustomerKeyMD5',
  'SSEKMSKeyId',
  'SSEKMSEncryptionContext',
  'Tagging',
  'WebsiteRedirectLocation',
]);
/** Timestamps boto3 takes as strings; the JS SDK wants `Date`s. */
const DATE_ARGS = new Set(['Expires', 'ObjectLockRetainUntilDate']);
/** Values that are keys and must never be logged. */
const SECRET_ARGS = new Set(['SSECustomerKey', 'SSEKMSEncryptionContext']);

const ADDRESSING_STYLES: readonly S3AddressingStyle[] = ['path', 'virtual', 'auto'];

/**
 * Applies env vars and defaults to {@link S3StoreOptions} and checks every value, so a bad
 * setting fails before any byte is read.
 *
 * @example
 * ```ts
 * resolveS3Config({}, { MLFLOW_S3_ENDPOINT_URL: 'http://127.0.0.1:9000' }).forcePathStyle; // true
 * ```
 */
export function resolveS3Config(options: S3StoreOptions = {}, env: Env = process.env): ResolvedS3Config {
  const endpoint = endpointSetting(options.endpointUrl, env);
  const endpointUrl = endpoint && checkS3EndpointUrl(endpoint.raw, endpoint.setting);
  const addressingStyle = resolveAddressingStyle(options.addressingStyle, env);
  const uploadExtraArgs =
    options.uploadExtraArgs !== undefined
      ? checkUploadExtraArgs(options.uploadExtraArgs, 'uploadExtraArgs')
      : parseUploadExtraArgs(envString('MLFLOW_S3_UPLOAD_EXTRA_ARGS', env));
  const partSize = options.partSize ?? DEFAULT_S3_PART_SIZE;
  // Each part (and a file that goes in one PutObject) is read into one Buffer, and Node 20 caps
  // a Buffer at 4 GiB, below S3's 5 GiB part (LARGEST_RANGE_BYTES).
  const largestPart = Math.min(MAX_S3_PART_SIZE, LARGEST_RANGE_BYTES);
  if (!Number.isInteger(partSize) || partSize < MIN_S3_PART_SIZE || partSize > largestPart) {
    const upTo = largestPart < MAX_S3_PART_SIZE ? 'the largest Buffer this Node.js can allocate; each part is read into one' : "5 GiB, S3's largest part";
    throw new InvalidArgumentError('s3.partSize', `s3.partSize must be an integer from ${MIN_S3_PART_SIZE} (5 MiB, S3's minimum part) to ${largestPart} (${upTo}), got ${partSize}.`);
  }
  const queueSize = options.queueSize ?? DEFAULT_S3_QUEUE_SIZE;
  if (!Number.isInteger(queueSize) || queueSize < 1) {
    throw new InvalidArgumentError('s3.queueSize', `s3.queueSize must be an integer >= 1, got ${queueSize}.`);
  }
  // A queueSize the user chose is kept fixed unless a maximum is given too.
  const maxQueueSize = options.maxQueueSize ?? options.queueSize ?? DEFAULT_S3_MAX_QUEUE_SIZE;
  if (!Number.isInteger(maxQueueSize) || maxQueueSize < queueSize) {
    throw new InvalidArgumentError('s3.maxQueueSize', `s3.maxQueueSize must be an integer >= s3.queueSize (${queueSize}), got ${maxQueueSize}.`);
  }
  if (options.credentials) {
    registerSecret(options.credentials.secretAccessKey);
    registerSecret(options.credentials.sessionToken);
  }
  return {
    endpointUrl,
    ...(endpointUrl !== undefined ? { endpointSource: endpoint!.setting } : {}),
    ignoreTls: options.ignoreTls ?? envBool('MLFLOW_S3_IGNORE_TLS', env) ?? false,
    uploadExtraArgs,
    expectedBucketOwner: options.expectedBucketOwner ?? envString('MLFLOW_S3_EXPECTED_BUCKET_OWNER', env),
    addressingStyle,
    forcePathStyle: forcePathStyleFor(addressingStyle, endpointUrl),
    ignoreConfiguredEndpointUrls: ignoresConfiguredEndpoints(env),
    region: checkRegion(options, env),
    credentials: options.credentials,
    partSize,
    queueSize,
    maxQueueSize,
  };
}

/** botocore's `validate_region_name`: what it refuses (InvalidRegionError) before any request. */
const REGION_NAME = /^(?![0-9]+$)(?!-)[a-zA-Z0-9-]{1,63}(?<!-)$/;

/**
 * The region given (option, `AWS_REGION`, `AWS_DEFAULT_REGION`), refused as botocore refuses it
 * when it is no region name: `"us-west-2 "` (a `.env` file's trailing space) or `us-west-2\r`
 * otherwise failed late inside the SDK, outside the error tree, with no word on where it came from.
 */
function checkRegion(options: Pick<S3StoreOptions, 'region'>, env: Env): string | undefined {
  const [region, setting] =
    options.region !== undefined
      ? [options.region, 's3.region']
      : envString('AWS_REGION', env) !== undefined
        ? [envString('AWS_REGION', env)!, 'AWS_REGION']
        : [envString('AWS_DEFAULT_REGION', env), 'AWS_DEFAULT_REGION'];
  if (region === undefined || REGION_NAME.test(region)) return region;
  throw new ConfigError(`${setting} ${JSON.stringify(region)} is not an AWS region name.`, {
    issues: [{ path: setting, message: 'not a region name (letters, digits and "-")' }],
    hint: `Set ${setting} to a region such as us-east-1, without spaces or quotes (botocore refuses it too).`,
  });
}

/**
 * botocore's rule: with a custom (non-accelerate) endpoint, path style unless `virtual` is
 * asked for; otherwise path style only when asked for. The SDK then picks virtual-hosted
 * style for DNS-compatible bucket names and path style for the rest, as botocore does.
 */
export function forcePathStyleFor(style: S3AddressingStyle, endpointUrl: string | undefined): boolean {
  if (endpointUrl !== undefined && !/(^|\.)s3-accelerate(\.dualstack)?\.amazonaws\.com$/i.test(hostOf(endpointUrl))) {
    return style !== 'virtual';
  }
  return style === 'path';
}

function hostOf(url: string): string {
  try {
    return new URL(url).hostname;
  } catch {
    return '';
  }
}

/** What to set instead; `minio:9000` (the URL parser reads `minio:` as a scheme) is a forgotten http://. */
function endpointHint(raw: string, setting: string): string {
  const hostAndPort = /^[a-zA-Z][a-zA-Z0-9-]*(?:\.[a-zA-Z0-9-]+)*:\d{1,5}(?:\/\S*)?$/.test(raw);
  const guess = hostAndPort ? `Did you mean http://${raw}? ` : '';
  return `${guess}Set ${setting} to the S3 endpoint's http(s):// address, e.g. http://127.0.0.1:9000 for a local MinIO, or unset it for AWS.`;
}

/**
 * The endpoint setting in force and where it came from. MLflow passes `endpoint_url` from
 * `MLFLOW_S3_ENDPOINT_URL` only, and `None` when it is unset; botocore then takes
 * `AWS_ENDPOINT_URL_S3`, else `AWS_ENDPOINT_URL` (unless `AWS_IGNORE_CONFIGURED_ENDPOINT_URLS`),
 * and counts that endpoint as custom, so path style. The AWS SDK reads those two as well, but on
 * its own it would address `bucket.minio:9000`: the endpoint is resolved here, so that the
 * addressing style, `describe()` and the error hints follow it.
 */
function endpointSetting(option: string | undefined, env: Env): { raw: string; setting: string } | undefined {
  if (option !== undefined) return { raw: option, setting: 's3.endpointUrl' };
  const mlflow = envString('MLFLOW_S3_ENDPOINT_URL', env);
  if (mlflow !== undefined) return { raw: mlflow, setting: 'MLFLOW_S3_ENDPOINT_URL' };
  if (ignoresConfiguredEndpoints(env)) return undefined;
  for (const name of ['AWS_ENDPOINT_URL_S3', 'AWS_ENDPOINT_URL']) {
    const value = envString(name, env);
    if (value !== undefined && value.trim() !== '') return { raw: value, setting: name };
  }
  return undefined;
}

/** `AWS_IGNORE_CONFIGURED_ENDPOINT_URLS`, read as botocore's `ensure_boolean` does: "true" in any case is true, anything else false (never an error). */
function ignoresConfiguredEndpoints(env: Env): boolean {
  return envString('AWS_IGNORE_CONFIGURED_ENDPOINT_URLS', env)?.trim().toLowerCase() === 'true';
}

/**
 * Checks an endpoint URL found in `setting` (the option, an env var, the AWS config file) and
 * returns it without the trailing slash; `undefined` when it is blank. Not an http(s) URL: a
 * `ConfigError` naming the setting, with a hint (a forgotten `http://` is guessed).
 *
 * @example
 * ```ts
 * checkS3EndpointUrl('http://127.0.0.1:9000/', 'MLFLOW_S3_ENDPOINT_URL'); // 'http://127.0.0.1:9000'
 * ```
 */
export function checkS3EndpointUrl(raw: string, setting: string): string | undefined {
  if (raw.trim() === '') return undefined;
  const where = setting === 's3.endpointUrl' ? 'Option s3.endpointUrl' : /^[A-Z0-9_]+$/.test(setting) ? `Environment variable ${setting}` : `The ${setting}`;
  let parsed: URL;
  try {
    parsed = new URL(raw.trim());
  } catch (cause) {
    // Masked: a URL that does not parse may still carry userinfo with a password.
    throw new ConfigError(`${where} must be an http(s) URL such as http://127.0.0.1:9000, got "${redact(raw)}".`, {
      issues: [{ path: setting, message: 'expected an http(s) URL' }],
      hint: endpointHint(raw.trim(), setting),
      cause,
    });
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
    throw new ConfigError(`${where} must use http or https, got "${parsed.protocol}".`, {
      issues: [{ path: setting, message: 'expected an http(s) URL' }],
      hint: endpointHint(raw.trim(), setting),
    });
  }
  return raw.trim().replace(/\/+$/, '');
}

function resolveAddressingStyle(option: S3AddressingStyle | undefined, env: Env): S3AddressingStyle {
  if (option !== undefined) {
    if (!ADDRESSING_STYLES.includes(option)) {
      throw new InvalidArgumentError('s3.addressingStyle', `s3.addressingStyle must be one of path, virtual, auto; got "${String(option)}".`);
    }
    return option;
  }
  const raw = envString('MLFLOW_BOTO_CLIENT_ADDRESSING_STYLE', env)?.trim().toLowerCase();
  if (raw === undefined || raw === '') return 'auto';
  if (!ADDRESSING_STYLES.includes(raw as S3AddressingStyle)) {
    throw new ConfigError(`Environment variable MLFLOW_BOTO_CLIENT_ADDRESSING_STYLE must be path, virtual or auto, got "${env.MLFLOW_BOTO_CLIENT_ADDRESSING_STYLE}".`, {
      issues: [{ path: 'MLFLOW_BOTO_CLIENT_ADDRESSING_STYLE', message: 'expected path, virtual or auto' }],
      hint: 'Set MLFLOW_BOTO_CLIENT_ADDRESSING_STYLE to path (MinIO and most S3-compatible stores), virtual or auto, or unset it for auto.',
    });
  }
  return raw as S3AddressingStyle;
}

/** Parses `MLFLOW_S3_UPLOAD_EXTRA_ARGS` (a JSON object, as MLflow reads it with `json.loads`). */
function parseUploadExtraArgs(raw: string | undefined): Record<string, unknown> {
  if (raw === undefined || raw.trim() === '') return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch (error) {
    // Neither V8's message nor the SyntaxError goes along: the message quotes the text around
    // the fault ('..."omerKey": c2VjcmV0a2"...'), a piece of an SSE-C key that no redaction
    // knows yet (the key is registered only once parsed). Its offset is safe to show.
    const position = /at position (\d+)/.exec((error as Error).message)?.[1];
    throw new ConfigError(`Environment variable MLFLOW_S3_UPLOAD_EXTRA_ARGS is not valid JSON${position !== undefined ? ` (at character ${position})` : ''}.`, {
      hint: 'Set it to a JSON object such as {"ServerSideEncryption": "AES256"}, with every name and string value in double quotes.',
      issues: [{ path: 'MLFLOW_S3_UPLOAD_EXTRA_ARGS', message: 'expected a JSON object' }],
    });
  }
  return checkUploadExtraArgs(parsed, 'MLFLOW_S3_UPLOAD_EXTRA_ARGS');
}

function checkUploadExtraArgs(value: unknown, source: string): Record<string, unknown> {
  const fromEnv = source === 'MLFLOW_S3_UPLOAD_EXTRA_ARGS';
  const setting = fromEnv ? 'MLFLOW_S3_UPLOAD_EXTRA_ARGS' : 's3.uploadExtraArgs';
  const fail = (message: string, path = source): never => {
    const text = fromEnv ? `Environment variable MLFLOW_S3_UPLOAD_EXTRA_ARGS ${message}` : `Option s3.uploadExtraArgs ${message}`;
    throw new ConfigError(text, {
      issues: [{ path, message }],
      hint: `Fix ${setting}: an object of boto3 upload arguments as MLflow passes them (names are case-sensitive; dates as ISO strings), e.g. {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": "<key id>"}.`,
    });
  };
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return fail('must be a JSON object such as {"ServerSideEncryption": "AES256"}.');
  }
  const out: Record<string, unknown> = {};
  for (const [key, raw] of Object.entries(value as Record<string, unknown>)) {
    if (!ALLOWED_UPLOAD_ARGS.has(key)) {
      fail(`has "${key}", which is not an upload argument. Allowed: ${[...ALLOWED_UPLOAD_ARGS].join(', ')}.`, `${source}.${key}`);
    }
    if (DATE_ARGS.has(key)) {
      const date = typeof raw === 'string' || typeof raw === 'number' ? new Date(raw) : undefined;
      if (!date || Number.isNaN(date.getTime())) fail(`has "${key}" = ${JSON.stringify(raw)}, which is not a date.`, `${source}.${key}`);
      out[key] = date;
      continue;
    }
    if (key === 'Metadata') {
      if (typeof raw !== 'object' || raw === null || Array.isArray(raw) || Object.values(raw).some((v) => typeof v !== 'string')) {
        fail('has "Metadata" that is not an object of strings.', `${source}.Metadata`);
      }
    } else if (typeof raw !== 'string') {
      // A key's value is never shown, even a malformed one: it is still (part of) the key.
      fail(`has "${key}" = ${SECRET_ARGS.has(key) ? `a ${Array.isArray(raw) ? 'list' : raw === null ? 'null' : typeof raw}` : JSON.stringify(raw)}; expected a string.`, `${source}.${key}`);
    }
    if (SECRET_ARGS.has(key)) registerSecret(raw as string);
    out[key] = raw;
  }
  return out;
}
