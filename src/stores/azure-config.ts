/**
 * Configuration of the Azure artifact stores, read the way MLflow's Python client reads it:
 * `wasbs://` as `azure_blob_artifact_repo.py` does (`AZURE_STORAGE_CONNECTION_STRING`, then
 * `AZURE_STORAGE_ACCESS_KEY`, then `DefaultAzureCredential`), `abfss://` as
 * `azure_data_lake_artifact_repo.py` does (`AZURE_STORAGE_SAS_TOKEN`, then
 * `DefaultAzureCredential`), and `MLFLOW_ARTIFACT_UPLOAD_DOWNLOAD_TIMEOUT` for both. Options win
 * over env vars. No Azure SDK type appears here, so this module (and the public option types)
 * load without the optional peer dependencies.
 *
 * @module
 */
import { MAX_TIMER_MS } from '../core/abort.js';
import { envNumber, envString, type Env } from '../core/env.js';
import { ConfigError, InvalidArgumentError } from '../core/errors.js';
import { redact, registerSasSignature, registerSecret } from '../core/logger.js';
import { unquote } from '../core/unquote.js';
import { joinArtifactPath } from '../mlflow/artifacts-api.js';
import type { AzureTokenCredential } from '../mlflow/azureml-auth.js';
import type { ObjectNameLimit } from './artifact-store.js';

const MiB = 1024 * 1024;

/** 8 MiB blocks: small enough to retry cheaply, large enough to keep the request count low. */
export const DEFAULT_AZURE_BLOCK_SIZE = 8 * MiB;
/** Blocks of one file in flight at once; memory per file is `blockSize × concurrency`. */
export const DEFAULT_AZURE_CONCURRENCY = 4;
/** MLflow's `_DEFAULT_TIMEOUT` of both Azure repositories: 10 minutes per request. */
export const DEFAULT_AZURE_REQUEST_TIMEOUT_SECONDS = 600;
/** Azure's largest number of committed blocks in one block blob. */
export const MAX_AZURE_BLOCKS = 50_000;
/** Azure's largest block (service version 2019-12-12 and later). */
export const MAX_AZURE_BLOCK_SIZE = 4000 * MiB;
/** Azure's largest single-request `Put Blob`. */
export const MAX_AZURE_SINGLE_PUT_SIZE = 5000 * MiB;
/**
 * Azure Storage's limit on blob names: 1,024 characters ("Naming and Referencing Containers,
 * Blobs, and Metadata"), for `wasbs://`, `abfss://` and the blobs of an Azure ML workspace
 * alike. Azurite does not check it.
 */
export const AZURE_BLOB_NAME_LIMIT: ObjectNameLimit = { name: 'Azure blob name', max: 1024, unit: 'characters' };

// One credential type for the storage stores and Azure ML workspaces (declared where the workspace's token source is).
export type { AzureTokenCredential } from '../mlflow/azureml-auth.js';

/**
 * Options of the `wasbs://` and `abfss://` artifact stores. Every field is optional: unset
 * fields come from MLflow's env vars, then the defaults below.
 *
 * Credentials, first match wins, as in MLflow:
 * - `wasbs://`: `connectionString`, `accountKey`, `credential`, then `@azure/identity`'s
 *   `DefaultAzureCredential`;
 * - `abfss://`: `sasToken`, `credential`, then `DefaultAzureCredential`.
 *
 * Memory: each file being uploaded holds at most about `blockSize × concurrency` bytes (one
 * buffer per block in flight, reused for the next block), 32 MiB with the defaults; a file up
 * to `maxSinglePutSize` is read into one buffer.
 *
 * @example
 * ```ts
 * const options: AzureStoreOptions = { blockSize: 16 * 1024 * 1024, concurrency: 2 };
 * ```
 */
export interface AzureStoreOptions {
  /**
   * A storage connection string (`DefaultEndpointsProtocol=https;AccountName=...;AccountKey=...`,
   * or one with `BlobEndpoint=` and `SharedAccessSignature=`). `wasbs://` only, as in MLflow; its
   * endpoint is used whatever account the URI names. Redacted from logs and errors.
   * @default AZURE_STORAGE_CONNECTION_STRING
   */
  connectionString?: string;
  /**
   * The storage account key (base64) of the account the URI names. `wasbs://` only. Redacted.
   * @default AZURE_STORAGE_ACCESS_KEY
   */
  accountKey?: string;
  /**
   * A SAS token (`sv=...&sig=...`, with or without the leading `?`) for the account. `abfss://`
   * only, as in MLflow. Redacted. A whole SAS URL (`https://...?sv=...`) is refused with a
   * `ConfigError`: give only its query part.
   * @default AZURE_STORAGE_SAS_TOKEN
   */
  sasToken?: string;
  /**
   * A token credential to use instead of `DefaultAzureCredential` (e.g. a
   * `ManagedIdentityCredential` of `@azure/identity`). Needs the RBAC role
   * "Storage Blob Data Contributor" on the container.
   * @default `new DefaultAzureCredential()` from `@azure/identity`
   */
  credential?: AzureTokenCredential;
  /**
   * The Blob service endpoint to send requests to instead of `https://<account>.blob.<suffix>`
   * (a private endpoint, or Azurite: `http://127.0.0.1:10000/devstoreaccount1`). With a
   * connection string its own endpoint is used and this is ignored.
   * @default from the URI
   */
  blobEndpoint?: string;
  /**
   * Block size in bytes for files above `maxSinglePutSize`. Grown automatically (whole MiB) for
   * files that would need more than 50,000 blocks (Azure's limit).
   * @default 8388608 (8 MiB)
   */
  blockSize?: number;
  /**
   * Largest file, in bytes, sent as one `Put Blob` request; larger files go up in blocks.
   * @default blockSize
   */
  maxSinglePutSize?: number;
  /**
   * Blocks of one file in flight at once.
   * @default 4
   */
  concurrency?: number;
  /**
   * How long one request (a `Put Blob`, a block, the block list) may take, in seconds, before it
   * is cut off and retried: MLflow passes the same value as the timeout of every request.
   * @default MLFLOW_ARTIFACT_UPLOAD_DOWNLOAD_TIMEOUT, else 600
   */
  requestTimeoutSeconds?: number;
}

/** Which of the two URI shapes. */
export type AzureUriKind = 'wasbs' | 'abfss';

/** A parsed `wasbs://` or `abfss://` artifact URI. */
export interface AzureArtifactLocation {
  kind: AzureUriKind;
  /** The container (`wasbs`) or file system (`abfss`), the same thing on the Blob endpoint. */
  container: string;
  /** The storage account. */
  account: string;
  /** The host suffix after the account, e.g. `blob.core.windows.net` or `dfs.core.windows.net`. */
  suffix: string;
  /** Blob name prefix of the run's artifact root (no leading or trailing `/`; may be empty). */
  rootPath: string;
  /** `https://<account>.blob.<...>`: where Blob requests go unless an endpoint is configured. */
  blobAccountUrl: string;
}

/**
 * Parses a `wasbs://` or `abfss://` artifact URI as MLflow does:
 * - `wasbs://<container>@<account>.blob.core.(windows.net|chinacloudapi.cn|usgovcloudapi.net)/<path>`
 *   (`AzureBlobArtifactRepository.parse_wasbs_uri`, the path taken as-is);
 * - `abfss://<filesystem>@<account>.<any suffix>/<path>` (`_parse_abfss_uri`, the path
 *   percent-decoded as Python's `unquote` does: a `%` that starts no escape is kept). Its Blob
 *   endpoint is the same suffix with `dfs` replaced by `blob`.
 *
 * @example
 * ```ts
 * parseAzureUri('wasbs://ml@acct.blob.core.windows.net/mlflow/1/abc/artifacts');
 * // { kind: 'wasbs', container: 'ml', account: 'acct', suffix: 'blob.core.windows.net', rootPath: 'mlflow/1/abc/artifacts', ... }
 * ```
 */
export function parseAzureUri(uri: string): AzureArtifactLocation {
  const trimmed = uri.trim();
  const scheme = /^([a-z]+):\/\//i.exec(trimmed)?.[1]?.toLowerCase();
  const rest = scheme ? trimmed.slice(scheme.length + 3) : '';
  const slash = rest.search(/[/?#]/);
  const netloc = slash === -1 ? rest : rest.slice(0, slash);
  const path = slash === -1 ? '' : rest.slice(slash).replace(/[?#].*$/, '');
  if (scheme === 'wasbs') {
    const match = /^([^@]+)@([^.]+)\.(blob\.core\.(?:windows\.net|chinacloudapi\.cn|usgovcloudapi\.net))$/i.exec(netloc);
    if (!match) {
      throw new InvalidArgumentError(
        'artifactUri',
        `${redact(uri)} is not a wasbs:// URI MLflow accepts: expected wasbs://<container>@<account>.blob.core.windows.net/<path> (or .blob.core.chinacloudapi.cn, .blob.core.usgovcloudapi.net).`,
      );
    }
    const [, container = '', account = '', suffix = ''] = match;
    return { kind: 'wasbs', container, account, suffix, rootPath: joinArtifactPath(path), blobAccountUrl: `https://${account}.${suffix}` };
  }
  if (scheme === 'abfss') {
    const match = /^([^@]+)@([^.]+)\.(.+)$/.exec(netloc);
    if (!match) {
      throw new InvalidArgumentError('artifactUri', `${redact(uri)} is not an abfss:// URI: expected abfss://<filesystem>@<account>.dfs.core.windows.net/<path>.`);
    }
    const [, container = '', account = '', suffix = ''] = match;
    const decoded = unquote(path);
    const blobSuffix = suffix.replace(/(^|\.)dfs\./i, '$1blob.');
    return { kind: 'abfss', container, account, suffix, rootPath: joinArtifactPath(decoded), blobAccountUrl: `https://${account}.${blobSuffix}` };
  }
  throw new InvalidArgumentError('artifactUri', `${redact(uri)} is not an Azure artifact URI; expected wasbs:// or abfss://.`);
}

/** Where the credential of a store comes from, first match wins (see {@link AzureStoreOptions}). */
export type AzureAuth =
  | { kind: 'connection-string'; connectionString: string; source: string }
  | { kind: 'account-key'; accountKey: string; source: string }
  | { kind: 'sas-token'; sasToken: string; source: string }
  | { kind: 'token-credential'; credential: AzureTokenCredential; source: string }
  | { kind: 'default-azure-credential'; source: string };

/** {@link AzureStoreOptions} with every default filled in and the credential chosen. */
export interface ResolvedAzureConfig {
  auth: AzureAuth;
  blobEndpoint?: string;
  blockSize: number;
  maxSinglePutSize: number;
  concurrency: number;
  requestTimeoutMs: number;
}

/**
 * Fills in {@link AzureStoreOptions} from the options, then MLflow's env vars, then defaults,
 * picks the credential in MLflow's order for the URI's shape, and checks every value before any
 * request. Secrets are registered with the redactor.
 *
 * @example
 * ```ts
 * const config = resolveAzureConfig('wasbs', {}, { AZURE_STORAGE_CONNECTION_STRING: 'UseDevelopmentStorage=true' });
 * config.auth.kind; // 'connection-string'
 * ```
 */
export function resolveAzureConfig(kind: AzureUriKind, options: AzureStoreOptions = {}, env: Env = process.env): ResolvedAzureConfig {
  const auth = resolveAuth(kind, options, env);
  let blobEndpoint: string | undefined;
  if (options.blobEndpoint !== undefined) {
    let parsed: URL;
    try {
      parsed = new URL(options.blobEndpoint);
    } catch {
      throw new InvalidArgumentError('blobEndpoint', `blobEndpoint must be an http(s):// URL, got "${redact(options.blobEndpoint)}".`);
    }
    if (parsed.protocol !== 'https:' && parsed.protocol !== 'http:') {
      throw new InvalidArgumentError('blobEndpoint', `blobEndpoint must be an http(s):// URL, got "${redact(options.blobEndpoint)}".`);
    }
    blobEndpoint = options.blobEndpoint.replace(/\/+$/, '');
  }
  return { auth, ...(blobEndpoint ? { blobEndpoint } : {}), ...resolveAzureTransferSettings(options, env) };
}

/** How block blobs are sent, whoever gave the credential: {@link ResolvedAzureConfig} without `auth` and `blobEndpoint`. */
export type AzureTransferSettings = Pick<ResolvedAzureConfig, 'blockSize' | 'maxSinglePutSize' | 'concurrency' | 'requestTimeoutMs'>;

/**
 * The block-upload settings of {@link AzureStoreOptions} (block size, single-put limit,
 * concurrency, request timeout), checked, with MLflow's env var and the defaults filled in. Shared
 * by the storage-account stores and the Azure ML store, whose credential is a SAS per file.
 *
 * @example
 * ```ts
 * resolveAzureTransferSettings({ blockSize: 4 * 1024 * 1024 }, {}).maxSinglePutSize; // 4194304
 * ```
 */
export function resolveAzureTransferSettings(options: AzureStoreOptions = {}, env: Env = process.env): AzureTransferSettings {
  const blockSize = options.blockSize ?? DEFAULT_AZURE_BLOCK_SIZE;
  checkInteger('blockSize', blockSize, 1, MAX_AZURE_BLOCK_SIZE);
  const maxSinglePutSize = options.maxSinglePutSize ?? blockSize;
  checkInteger('maxSinglePutSize', maxSinglePutSize, 0, MAX_AZURE_SINGLE_PUT_SIZE);
  const concurrency = options.concurrency ?? DEFAULT_AZURE_CONCURRENCY;
  checkInteger('concurrency', concurrency, 1, 64);
  if (options.requestTimeoutSeconds !== undefined && !(options.requestTimeoutSeconds > 0 && Number.isFinite(options.requestTimeoutSeconds))) {
    throw new InvalidArgumentError('requestTimeoutSeconds', `requestTimeoutSeconds must be a number > 0, got ${String(options.requestTimeoutSeconds)}.`);
  }
  // MLflow reads 0 as unset (`MLFLOW_ARTIFACT_UPLOAD_DOWNLOAD_TIMEOUT.get() or _DEFAULT_TIMEOUT`).
  const timeoutSeconds =
    options.requestTimeoutSeconds ||
    envNumber('MLFLOW_ARTIFACT_UPLOAD_DOWNLOAD_TIMEOUT', env, { min: 0 }) ||
    DEFAULT_AZURE_REQUEST_TIMEOUT_SECONDS;
  // Held at Node's largest timer (~24.8 days): above it AbortSignal.timeout fires after 1 ms, so a
  // "no timeout" value (MLFLOW_ARTIFACT_UPLOAD_DOWNLOAD_TIMEOUT=3000000) cut off every request at once.
  return { blockSize, maxSinglePutSize, concurrency, requestTimeoutMs: Math.min(Math.ceil(timeoutSeconds * 1000), MAX_TIMER_MS) };
}

function resolveAuth(kind: AzureUriKind, options: AzureStoreOptions, env: Env): AzureAuth {
  if (kind === 'wasbs') {
    if (options.sasToken !== undefined) {
      throw new InvalidArgumentError('sasToken', 'sasToken applies to abfss:// URIs only (as in MLflow); for wasbs:// put the SAS into a connection string (BlobEndpoint=...;SharedAccessSignature=...).');
    }
    const fromOption = options.connectionString;
    const connectionString = fromOption ?? envString('AZURE_STORAGE_CONNECTION_STRING', env);
    if (connectionString !== undefined) {
      registerConnectionStringSecrets(connectionString);
      return { kind: 'connection-string', connectionString, source: fromOption !== undefined ? 'the connectionString option' : 'AZURE_STORAGE_CONNECTION_STRING' };
    }
    const keyOption = options.accountKey;
    const accountKey = keyOption ?? envString('AZURE_STORAGE_ACCESS_KEY', env);
    if (accountKey !== undefined) {
      registerSecret(accountKey);
      return { kind: 'account-key', accountKey, source: keyOption !== undefined ? 'the accountKey option' : 'AZURE_STORAGE_ACCESS_KEY' };
    }
  } else {
    for (const name of ['connectionString', 'accountKey'] as const) {
      if (options[name] !== undefined) {
        throw new InvalidArgumentError(name, `${name} applies to wasbs:// URIs only (as in MLflow); for abfss:// use sasToken (AZURE_STORAGE_SAS_TOKEN) or an Entra ID credential.`);
      }
    }
    const fromOption = options.sasToken;
    const raw = fromOption ?? envString('AZURE_STORAGE_SAS_TOKEN', env);
    if (raw !== undefined) {
      const sasToken = raw.trim().replace(/^\?/, '');
      // A whole SAS URL passes the sig= check below, and was appended to the account URL after
      // a `?`: every request went to a URL Azure cannot read.
      if (/^[a-z][a-z0-9+.-]*:\/\//i.test(sasToken) || sasToken.includes('?')) {
        const source = fromOption !== undefined ? 'the sasToken option' : 'AZURE_STORAGE_SAS_TOKEN';
        throw new ConfigError(`${fromOption !== undefined ? 'The sasToken option' : 'AZURE_STORAGE_SAS_TOKEN'} holds a whole SAS URL, not a SAS token.`, {
          hint: `Give ${source} only the query part of the SAS URL, after its "?": "sv=...&sig=..." (the account comes from the abfss:// URI, or the blobEndpoint option).`,
          issues: [{ path: fromOption !== undefined ? 'sasToken' : 'AZURE_STORAGE_SAS_TOKEN', message: 'a URL, not the query string of a SAS' }],
        });
      }
      if (!/(^|&)sig=/.test(sasToken)) {
        throw new InvalidArgumentError(
          fromOption !== undefined ? 'sasToken' : 'AZURE_STORAGE_SAS_TOKEN',
          `${fromOption !== undefined ? 'The sasToken option' : 'AZURE_STORAGE_SAS_TOKEN'} is not a SAS token (no sig= parameter).`,
          { hint: 'Use the query string of a SAS URL, e.g. "sv=2022-11-02&ss=b&srt=co&sp=rwdlac&se=...&sig=...".' },
        );
      }
      registerSecret(sasToken);
      registerSasSignature(sasToken);
      return { kind: 'sas-token', sasToken, source: fromOption !== undefined ? 'the sasToken option' : 'AZURE_STORAGE_SAS_TOKEN' };
    }
  }
  if (options.credential !== undefined) {
    if (typeof options.credential?.getToken !== 'function') {
      throw new InvalidArgumentError('credential', 'credential must be a token credential of @azure/identity (an object with getToken()).');
    }
    return { kind: 'token-credential', credential: options.credential, source: 'the credential option' };
  }
  return { kind: 'default-azure-credential', source: 'DefaultAzureCredential (@azure/identity)' };
}

/**
 * A connection string rewritten into the form `@azure/storage-blob`'s `fromConnectionString`
 * parses, read the way MLflow's client reads it (`parse_connection_str` of azure-storage-blob for
 * Python): keys in any case, `BlobEndpoint` else `<DefaultEndpointsProtocol>://<AccountName>.blob.<EndpointSuffix>`
 * when both are given, else `https://<AccountName>.blob.<EndpointSuffix or core.windows.net>`,
 * and `AccountName` plus `AccountKey` before `SharedAccessSignature`. The JS SDK wants its keys
 * spelled exactly so, `DefaultEndpointsProtocol` beside an account key, an `EndpointSuffix`
 * without a `BlobEndpoint`, and a `BlobEndpoint` beside a SAS: without this it refused
 * connection strings MLflow uses, such as `AccountName=...;AccountKey=...` alone.
 * `UseDevelopmentStorage=true`, and a string with neither key nor SAS, are left for the SDK.
 *
 * @example
 * ```ts
 * normalizeAzureConnectionString('AccountName=acct;AccountKey=a2V5');
 * // 'DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=a2V5;BlobEndpoint=https://acct.blob.core.windows.net'
 * ```
 */
export function normalizeAzureConnectionString(connectionString: string): string {
  const trimmed = connectionString.trim();
  if (/^UseDevelopmentStorage=/i.test(trimmed)) return trimmed;
  const settings = new Map<string, string>();
  for (const part of trimmed.split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0) settings.set(part.slice(0, eq).trim().toUpperCase(), part.slice(eq + 1).trim());
  }
  const name = settings.get('ACCOUNTNAME');
  const key = settings.get('ACCOUNTKEY');
  const sas = settings.get('SHAREDACCESSSIGNATURE');
  const protocol = settings.get('DEFAULTENDPOINTSPROTOCOL');
  const suffix = settings.get('ENDPOINTSUFFIX');
  let endpoint = settings.get('BLOBENDPOINT');
  if (!endpoint && name) endpoint = protocol && suffix ? `${protocol}://${name}.blob.${suffix}` : `https://${name}.blob.${suffix ?? 'core.windows.net'}`;
  if (!endpoint) return trimmed;
  const endpointProtocol = /^([a-z][a-z0-9+.-]*):/i.exec(endpoint)?.[1] ?? 'https';
  if (name && key) return `DefaultEndpointsProtocol=${endpointProtocol};AccountName=${name};AccountKey=${key};BlobEndpoint=${endpoint}`;
  if (sas) return `${name ? `AccountName=${name};` : ''}BlobEndpoint=${endpoint};SharedAccessSignature=${sas}`;
  return trimmed;
}

/** Masks the account key and SAS signature of a connection string wherever they show up. */
function registerConnectionStringSecrets(connectionString: string): void {
  registerSecret(connectionString);
  for (const part of connectionString.split(';')) {
    const eq = part.indexOf('=');
    if (eq === -1) continue;
    const name = part.slice(0, eq).trim().toLowerCase();
    const value = part.slice(eq + 1).trim();
    if (name === 'accountkey') registerSecret(value);
    if (name === 'sharedaccesssignature') {
      registerSecret(value);
      registerSasSignature(value);
    }
  }
}

function checkInteger(name: string, value: number, min: number, max: number): void {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new InvalidArgumentError(name, `${name} must be an integer from ${min} to ${max}, got ${String(value)}.`);
  }
}

/**
 * The block size for a file of `size` bytes: the configured one, grown (in whole MiB) so the
 * file needs at most 50,000 blocks.
 *
 * @example
 * ```ts
 * effectiveBlockSize(10 * 2 ** 30, 8 * 2 ** 20); // 8 MiB: 1,280 blocks
 * ```
 */
export function effectiveBlockSize(size: number, blockSize: number): number {
  if (Math.ceil(size / blockSize) <= MAX_AZURE_BLOCKS) return blockSize;
  return Math.ceil(size / MAX_AZURE_BLOCKS / MiB) * MiB;
}
