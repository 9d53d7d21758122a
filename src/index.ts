/**
 * artifact-uploader: one dependable way for every stage of an ML pipeline to publish its
 * artifacts. This file is the whole public surface; names are exported one by one.
 *
 * @packageDocumentation
 */

// core: errors, retry policy, HTTP, logging
export {
  ArtifactUploaderError,
  isArtifactUploaderError,
  InvalidArgumentError,
  ConfigError,
  LocalPathError,
  RemoteError,
  NetworkError,
  RequestTimeoutError,
  AbortedError,
  HttpStatusError,
  MlflowApiError,
  InvalidResponseError,
  UnsupportedArtifactStoreError,
  MissingDependencyError,
  VerificationError,
  ModelDirectoryError,
  InvalidModelStructureError,
  SafetensorsError,
  ModelValidationError,
  ConversionError,
  HubError,
  PublicHubInTestError,
} from './core/errors.js';
export type { ErrorOptions, ConfigIssue, LocalPathErrorCode, VerificationMismatch } from './core/errors.js';
export { resolveRetryOptions, isRetryableError, withRetry, DEFAULT_RETRY_OPTIONS } from './core/retry.js';
export type { RetryOptions, ResolvedRetryOptions, RetryEvent, WithRetryOptions } from './core/retry.js';
export { silentLogger, createStreamLogger, redact } from './core/logger.js';
export type { Logger, LogLevel } from './core/logger.js';
export { HttpClient } from './core/http.js';
export type { HttpAuth, TlsOptions, HttpClientOptions, HttpRequest, HttpResponse, RequestBody } from './core/http.js';

// ── config ──

// ── run ──

// ── mlflow ──

// ── stores ──

// ── archive ──

// ── uploader ──

// ── stages ──

// ── model ──

// ── hub ──
