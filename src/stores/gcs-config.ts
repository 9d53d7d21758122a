/**
 * Configuration of the `gs://` artifact store, read the way MLflow's `GCSArtifactRepository`
 * (`mlflow/store/artifact/gcs_artifact_repo.py`) and the `google-cloud-storage` client under it
 * read it: `MLFLOW_GCS_UPLOAD_CHUNK_SIZE`, `MLFLOW_ARTIFACT_UPLOAD_DOWNLOAD_TIMEOUT`,
 * `STORAGE_EMULATOR_HOST`, `API_ENDPOINT_OVERRIDE` and `GOOGLE_APPLICATION_CREDENTIALS`.
 * Options win over env vars. No Google SDK type appears here, so this module (and the public
 * option types) load without the optional peer dependency.
 *
 * @module
 */
import { envNumber, envString, type Env } from '../core/env.js';
import { ConfigError, InvalidArgumentError } from '../core/errors.js';
import { MAX_TIMER_MS } from '../core/abort.js';

/** GCS's granularity: every chunk of a resumable upload but the last is a multiple of 256 KiB. */
export const GCS_CHUNK_MULTIPLE = 256 * 1024;
/**
 * 100 MiB: `google-cloud-storage`'s `_DEFAULT_CHUNKSIZE`, what MLflow uploads with when
 * `MLFLOW_GCS_UPLOAD_CHUNK_SIZE` is unset. Chunks stream from the file, so this bounds what one
 * retry re-sends, not memory.
 */
export const DEFAULT_GCS_CHUNK_SIZE = 100 * 1024 * 1024;
/** 8 MiB: `google-cloud-storage`'s `_MAX_MULTIPART_SIZE`; larger files go as a resumable upload. */
export const DEFAULT_GCS_RESUMABLE_THRESHOLD = 8 * 1024 * 1024;
/** 60 s: `google-cloud-storage`'s `_DEFAULT_TIMEOUT`, MLflow's default for GCS requests. */
export const DEFAULT_GCS_TIMEOUT_MS = 60_000;
/** What "no timeout" (`MLFLOW_ARTIFACT_UPLOAD_DOWNLOAD_TIMEOUT=-1`) becomes: the largest timer Node allows (~24.8 days). */
export const GCS_NO_TIMEOUT_MS = MAX_TIMER_MS;
/** The public endpoint (`https://storage.googleapis.com`). */
export const DEFAULT_GCS_ENDPOINT = 'https://storage.googleapis.com';

/**
 * Options of the `gs://` artifact store. Every field is optional: unset fields come from the
 * env vars MLflow and `google-cloud-storage` read, then the defaults below. Credentials are
 * Google's Application Default Credentials (see {@link GcsStoreOptions.keyFilename}).
 *
 * @example
 * ```ts
 * const options: GcsStoreOptions = { chunkSize: 16 * 1024 * 1024, resumableThreshold: 32 * 1024 * 1024 };
 * ```
 */
export interface GcsStoreOptions {
  /**
   * Base URL of the JSON API (scheme and host, e.g. `http://127.0.0.1:9023` for an emulator).
   * This option is used without credentials unless {@link useAuthWithCustomEndpoint} is set;
   * `API_ENDPOINT_OVERRIDE` with credentials unless it is `false` (as MLflow's client, whose
   * `use_auth_w_custom_endpoint` defaults to true); `STORAGE_EMULATOR_HOST` never with any.
   * @default STORAGE_EMULATOR_HOST, else API_ENDPOINT_OVERRIDE, else https://storage.googleapis.com
   */
  apiEndpoint?: string;
  /**
   * Send credentials to a custom endpoint (never to `STORAGE_EMULATOR_HOST`), as
   * `google-cloud-storage`'s `use_auth_w_custom_endpoint`.
   * @default false for the {@link apiEndpoint} option; true for `API_ENDPOINT_OVERRIDE`, as in MLflow
   */
  useAuthWithCustomEndpoint?: boolean;
  /**
   * A service account or other credentials JSON file, instead of the search Application Default
   * Credentials does (this variable, `gcloud auth application-default login`'s file, then the
   * metadata server on GCE, GKE, Cloud Run, ...).
   * @default GOOGLE_APPLICATION_CREDENTIALS, else Application Default Credentials
   */
  keyFilename?: string;
  /**
   * Size of one chunk of a resumable upload, in bytes: a multiple of 256 KiB (GCS's rule; the
   * Python client refuses anything else too). Chunks stream from the file, so memory does not
   * grow with it; a failed chunk is re-sent whole.
   * @default MLFLOW_GCS_UPLOAD_CHUNK_SIZE, else 104857600 (100 MiB, google-cloud-storage's default)
   */
  chunkSize?: number;
  /**
   * Files up to this size go in one request (`uploadType=multipart`); larger ones as a
   * resumable upload in {@link chunkSize} chunks. Only tests have a reason to change it.
   * @default 8388608 (8 MiB, google-cloud-storage's `_MAX_MULTIPART_SIZE`)
   */
  resumableThreshold?: number;
  /**
   * Per-request timeout in milliseconds (an idle timeout: a request that makes no progress
   * for this long is abandoned and retried).
   * @default MLFLOW_ARTIFACT_UPLOAD_DOWNLOAD_TIMEOUT (seconds; -1 means none), else 60000 (google-cloud-storage's default)
   */
  timeoutMs?: number;
}

/** {@link GcsStoreOptions} with env vars and defaults applied. */
export interface ResolvedGcsConfig {
  /** JSON API base URL, no trailing slash. */
  apiEndpoint: string;
  /** Where {@link apiEndpoint} came from. */
  endpointSource: 'option' | 'STORAGE_EMULATOR_HOST' | 'API_ENDPOINT_OVERRIDE' | 'default';
  /** True when requests carry credentials (Application Default Credentials). */
  authenticated: boolean;
  keyFilename?: string;
  chunkSize: number;
  resumableThreshold: number;
  timeoutMs: number;
  /** Settings that were read but are not honoured, with why (logged once by the store). */
  warnings: string[];
}

/**
 * Applies env vars and defaults to {@link GcsStoreOptions} and checks every value, so a bad
 * setting fails before any byte is read.
 *
 * @example
 * ```ts
 * resolveGcsConfig({}, { STORAGE_EMULATOR_HOST: 'http://127.0.0.1:9023' }).authenticated; // false
 * ```
 */
export function resolveGcsConfig(options: GcsStoreOptions = {}, env: Env = process.env): ResolvedGcsConfig {
  const warnings: string[] = [];
  const endpoint = resolveEndpoint(options.apiEndpoint, env);
  const chunkSize = options.chunkSize ?? envNumber('MLFLOW_GCS_UPLOAD_CHUNK_SIZE', env, { min: 1, integer: true }) ?? DEFAULT_GCS_CHUNK_SIZE;
  if (!Number.isInteger(chunkSize) || chunkSize <= 0 || chunkSize % GCS_CHUNK_MULTIPLE !== 0) {
    const message = `must be a positive multiple of ${GCS_CHUNK_MULTIPLE} bytes (256 KiB, GCS's chunk granularity), got ${chunkSize}`;
    if (options.chunkSize !== undefined) throw new InvalidArgumentError('gcs.chunkSize', `gcs.chunkSize ${message}.`);
    throw new ConfigError(`Environment variable MLFLOW_GCS_UPLOAD_CHUNK_SIZE ${message}.`, {
      hint: 'Use e.g. 8388608 (8 MiB) or 104857600 (100 MiB), or unset it.',
      issues: [{ path: 'MLFLOW_GCS_UPLOAD_CHUNK_SIZE', message: 'expected a positive multiple of 262144' }],
    });
  }
  const resumableThreshold = options.resumableThreshold ?? DEFAULT_GCS_RESUMABLE_THRESHOLD;
  if (!Number.isInteger(resumableThreshold) || resumableThreshold < 0) {
    throw new InvalidArgumentError('gcs.resumableThreshold', `gcs.resumableThreshold must be an integer >= 0, got ${resumableThreshold}.`);
  }
  let timeoutMs = options.timeoutMs;
  if (timeoutMs !== undefined) {
    if (!(timeoutMs > 0)) throw new InvalidArgumentError('gcs.timeoutMs', `gcs.timeoutMs must be a number > 0, got ${timeoutMs}.`);
  } else {
    const seconds = envNumber('MLFLOW_ARTIFACT_UPLOAD_DOWNLOAD_TIMEOUT', env, { integer: true });
    if (seconds !== undefined && seconds !== -1 && seconds <= 0) {
      throw new ConfigError(`Environment variable MLFLOW_ARTIFACT_UPLOAD_DOWNLOAD_TIMEOUT must be a number of seconds > 0, or -1 for none, got "${env.MLFLOW_ARTIFACT_UPLOAD_DOWNLOAD_TIMEOUT}".`, {
        issues: [{ path: 'MLFLOW_ARTIFACT_UPLOAD_DOWNLOAD_TIMEOUT', message: 'expected seconds > 0, or -1' }],
        hint: 'Set MLFLOW_ARTIFACT_UPLOAD_DOWNLOAD_TIMEOUT to the seconds a request may take (e.g. 300), -1 for no timeout, or unset it for the default (60).',
      });
    }
    timeoutMs = seconds === undefined ? DEFAULT_GCS_TIMEOUT_MS : seconds === -1 ? GCS_NO_TIMEOUT_MS : seconds * 1000;
  }
  // Held at Node's largest timer, as -1 is: above it a timer fires after 1 ms, so a "no timeout"
  // value (MLFLOW_ARTIFACT_UPLOAD_DOWNLOAD_TIMEOUT=3000000) cut off every request at once.
  timeoutMs = Math.min(Math.ceil(timeoutMs), MAX_TIMER_MS);
  if (envString('MLFLOW_GCS_DEFAULT_TIMEOUT', env) !== undefined) {
    warnings.push(
      'MLFLOW_GCS_DEFAULT_TIMEOUT is deprecated and no longer read by MLflow (nor by artifact-uploader); set MLFLOW_ARTIFACT_UPLOAD_DOWNLOAD_TIMEOUT (seconds, -1 for none) instead.',
    );
  }
  // MLflow's `storage.Client()` authenticates to API_ENDPOINT_OVERRIDE (google-cloud-storage's
  // `use_auth_w_custom_endpoint=True` by default) and never to STORAGE_EMULATOR_HOST. Sent
  // anonymously, every request to a private endpoint of a real bucket was refused.
  const authenticated =
    endpoint.source === 'default' ||
    (endpoint.source === 'API_ENDPOINT_OVERRIDE' && options.useAuthWithCustomEndpoint !== false) ||
    (endpoint.source === 'option' && options.useAuthWithCustomEndpoint === true);
  return {
    apiEndpoint: endpoint.url,
    endpointSource: endpoint.source,
    authenticated,
    keyFilename: options.keyFilename ?? envString('GOOGLE_APPLICATION_CREDENTIALS', env),
    chunkSize,
    resumableThreshold,
    timeoutMs,
    warnings,
  };
}

function resolveEndpoint(option: string | undefined, env: Env): { url: string; source: ResolvedGcsConfig['endpointSource'] } {
  const candidates: Array<[string | undefined, ResolvedGcsConfig['endpointSource']]> = [
    [option, 'option'],
    [envString('STORAGE_EMULATOR_HOST', env), 'STORAGE_EMULATOR_HOST'],
    [envString('API_ENDPOINT_OVERRIDE', env), 'API_ENDPOINT_OVERRIDE'],
  ];
  for (const [raw, source] of candidates) {
    if (raw === undefined || raw.trim() === '') continue;
    return { url: checkEndpoint(raw.trim(), source), source };
  }
  return { url: DEFAULT_GCS_ENDPOINT, source: 'default' };
}

/**
 * An endpoint URL without a trailing slash. `STORAGE_EMULATOR_HOST` "despite its name includes
 * the scheme" (google-cloud-storage); a bare `host:port` is taken as `http://`, as the Node
 * client does.
 */
function endpointHint(source: ResolvedGcsConfig['endpointSource']): string {
  return `Set ${source === 'option' ? 'gcs.apiEndpoint' : source} to the GCS endpoint's http(s):// address (host:port alone means http://), e.g. http://127.0.0.1:9023 for an emulator, or unset it for Google's.`;
}

function checkEndpoint(raw: string, source: ResolvedGcsConfig['endpointSource']): string {
  const where = source === 'option' ? 'Option gcs.apiEndpoint' : `Environment variable ${source}`;
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(raw) ? raw : `http://${raw}`;
  let parsed: URL;
  try {
    parsed = new URL(withScheme);
  } catch (cause) {
    throw new ConfigError(`${where} must be an http(s) URL such as http://127.0.0.1:9023, got "${raw}".`, {
      issues: [{ path: source === 'option' ? 'gcs.apiEndpoint' : source, message: 'expected an http(s) URL' }],
      hint: endpointHint(source),
      cause,
    });
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
    throw new ConfigError(`${where} must use http or https, got "${parsed.protocol}".`, {
      issues: [{ path: source === 'option' ? 'gcs.apiEndpoint' : source, message: 'expected an http(s) URL' }],
      hint: endpointHint(source),
    });
  }
  return withScheme.replace(/\/+$/, '');
}
