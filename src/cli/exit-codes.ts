/**
 * The CLI's exit codes, and the one function that maps an error to one. docs/cli.md lists them
 * and a test holds the page to this object.
 *
 * @module
 */
import {
  AbortedError,
  ConfigError,
  ConversionError,
  HttpStatusError,
  HubError,
  InvalidArgumentError,
  InvalidModelStructureError,
  LocalPathError,
  MissingDependencyError,
  ModelDirectoryError,
  ModelValidationError,
  PublicHubInTestError,
  RegistryError,
  SafetensorsError,
  UnsupportedArtifactStoreError,
} from '../core/errors.js';

/**
 * Exit codes of `artifact-uploader`. Pipelines branch on these: 1 is worth retrying later,
 * 2 and 3 are not (the call or the model must change first).
 *
 * @example
 * ```ts
 * if (exitCode === EXIT_CODES.INVALID_MODEL) console.error('fix the model, then publish again');
 * ```
 */
export const EXIT_CODES = Object.freeze({
  /** Everything was uploaded (or published), or skipped as configured (disabled, no run, dry run). */
  OK: 0,
  /** An upload, publish or server call failed for a reason that may pass (network, timeout, 5xx, 408/429), after retries. */
  FAILED: 1,
  /**
   * Bad arguments or options, an invalid config file or env var, a missing or unusable path, or
   * a request the server refused for good (401/403/404 and other 4xx except 408 and 429).
   */
  USAGE: 2,
  /** The model is invalid (validation errors, corrupt safetensors, no known layout, not convertible). */
  INVALID_MODEL: 3,
  /** Interrupted by SIGINT or SIGTERM (128 + 2, the shell convention). */
  INTERRUPTED: 130,
});

/** One of the {@link EXIT_CODES}. */
export type ExitCode = (typeof EXIT_CODES)[keyof typeof EXIT_CODES];

const USAGE_ERRORS = [
  InvalidArgumentError,
  ConfigError,
  LocalPathError,
  UnsupportedArtifactStoreError,
  MissingDependencyError,
  ModelDirectoryError,
  PublicHubInTestError,
];
const MODEL_ERRORS = [ModelValidationError, InvalidModelStructureError, SafetensorsError, ConversionError];

/** 4xx answers that may pass on their own (timeout, rate limit); every other 4xx needs a change. */
const TRANSIENT_CLIENT_STATUSES = new Set([408, 429]);

/**
 * The exit code an error stands for: usage/config/path errors and requests the server refused
 * for good (4xx other than 408/429: bad credentials, no such run, no permission) → 2, model
 * errors → 3, an abort the user asked for → 130, anything else (network, timeouts, 5xx,
 * verification, bugs) → 1.
 */
export function exitCodeForError(error: unknown, interrupted = false): ExitCode {
  if (error instanceof AbortedError && interrupted) return EXIT_CODES.INTERRUPTED;
  if (USAGE_ERRORS.some((type) => error instanceof type)) return EXIT_CODES.USAGE;
  // A version left behind by a failure, or a registration that failed after the stage's upload:
  // the failure says whether it may pass on its own.
  if (error instanceof RegistryError && (error.code === 'REGISTRY_INCOMPLETE' || error.code === 'REGISTRY_AFTER_UPLOAD')) return exitCodeForError(error.cause, interrupted);
  // A registration the call must change (name, alias, source, server) vs one that may pass (the server's own failure).
  if (error instanceof RegistryError) return error.code === 'REGISTRY_VERSION_FAILED' || error.code === 'REGISTRY_VERSION_TIMEOUT' ? EXIT_CODES.FAILED : EXIT_CODES.USAGE;
  if (MODEL_ERRORS.some((type) => error instanceof type)) return EXIT_CODES.INVALID_MODEL;
  const status = error instanceof HttpStatusError || error instanceof HubError ? error.status : undefined;
  if (status !== undefined && status >= 400 && status < 500 && !TRANSIENT_CLIENT_STATUSES.has(status)) return EXIT_CODES.USAGE;
  return EXIT_CODES.FAILED;
}
