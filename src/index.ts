/**
 * artifact-uploader: one dependable way for every stage of an ML pipeline to publish its
 * artifacts. This file is the whole public surface, names exported one by one: what users call,
 * and the types those signatures name. Internals (HTTP client, retry engine, glob, path and
 * tensor helpers, format constants) stay unexported; tests import them from their modules.
 *
 * @packageDocumentation
 */

// ── core: errors, retry settings, logging ──
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
  RegistryError,
} from './core/errors.js';
export type { ErrorOptions, ConfigIssue, LocalPathErrorCode, VerificationMismatch, RegistryErrorCode, StageUploadBeforeRegistration, UploadedBeforeRegistration } from './core/errors.js';
export { resolveRetryOptions } from './core/retry.js';
export type { RetryOptions, ResolvedRetryOptions, RetryEvent } from './core/retry.js';
export { createStreamLogger } from './core/logger.js';
export type { Logger, LogLevel } from './core/logger.js';
export type { TlsOptions } from './core/http.js';
export type { Env } from './core/env.js';

// ── config ──
export { STAGES, ARTIFACT_KINDS, describeConfigSchema } from './config/schema.js';
export type {
  StageName,
  ArtifactKind,
  TrackingConfig,
  TrackingConfigInput,
  StageConfig,
  StageConfigBase,
  TrainingConfig,
  ConversionConfig,
  BenchmarkConfig,
  HpoConfig,
  HubConfig,
  ArtifactKindConfig,
  ConfigKeyDescription,
  PartialStage,
} from './config/schema.js';
export {
  loadTrackingConfig,
  resolveTrackingConfig,
  isArtifactEnabled,
  getArtifactConfig,
} from './config/load.js';
export type { LoadTrackingConfigOptions, ResolvedTrackingConfig, ConfigOverride, EffectiveArtifactConfig } from './config/load.js';

// ── run ──
export { getMlflowRunId, resolveMlflowRunId, activeRun, withRun } from './run/run-context.js';
export type { ActiveRun, RunIdSource } from './run/run-context.js';
export { startRun, endRun, withNewRun } from './run/start-run.js';
export type { StartRunOptions, EndRunOptions } from './run/start-run.js';

// ── mlflow ──
export { resolveMlflowConnection } from './mlflow/connection.js';
export type { MlflowConnection, MlflowConnectionOptions } from './mlflow/connection.js';
export type { AzureMlWorkspace } from './mlflow/azureml-workspace.js';
export { createTrackingClient } from './mlflow/tracking-client.js';
export type {
  TrackingClient,
  TrackingRequestOptions,
  Experiment,
  Run,
  RunInfo,
  RunStatus,
  Metric,
  MetricInput,
  ParamValue,
  CreateRunInput,
  UpdateRunInput,
  LogBatchInput,
  ArtifactFileInfo,
  ArtifactListing,
} from './mlflow/tracking-types.js';

// ── stores ──
export { resolveArtifactStore } from './stores/resolve.js';
export type { ResolveArtifactStoreOptions } from './stores/resolve.js';
export { listArtifactsRecursive } from './stores/artifact-store.js';
export type { ArtifactStore, ArtifactEntry, UploadFileOptions, UploadFileResult, MultipartOptions, StoreOptions, EarlierUpload, LostUpload, AbandonedUpload, PreviousMultipartUpload, StoredPart, StoreResumeToken } from './stores/artifact-store.js';
// s3:// artifact roots: option types only (the store itself is picked by the artifact URI).
export type { S3StoreOptions, S3AddressingStyle, S3Credentials } from './stores/s3-config.js';
// gs:// artifact roots: the option types, and the resume hooks a crash-resume journal uses.
export type { GcsStoreOptions } from './stores/gcs-config.js';
export type { GcsUploadFileOptions, GcsUploadFileResult } from './stores/gcs-store.js';
export type { GcsResumableSession, GcsSessionStatus, GcsObjectResource } from './stores/gcs-resumable.js';
// wasbs:// and abfss:// artifact roots: option types only, as for s3://.
export type { AzureStoreOptions, AzureTokenCredential } from './stores/azure-config.js';

// ── archive ──
export { createCheckpointArchive, DEFAULT_COMPRESSION_LEVEL } from './archive/create-checkpoint-archive.js';
export type { CreateCheckpointArchiveOptions, ArchiveProgressEvent, ArchiveEntryInfo } from './archive/create-checkpoint-archive.js';
export { shouldSkipFile, findSkipRule, DEFAULT_SKIP_RULES } from './archive/should-skip-file.js';
export type { SkipRule, SkipCategory } from './archive/should-skip-file.js';
export { writeManifest, readManifest, manifestFileName } from './archive/manifest.js';
export type {
  CheckpointManifest,
  ManifestFile,
  ManifestSymlink,
  ManifestSkippedEntry,
  ManifestSkipReason,
  ManifestVerification,
  ManifestVerificationMismatch,
} from './archive/manifest.js';

// ── uploader ──
export { ArtifactUploader } from './uploader/artifact-uploader.js';
export { DEFAULT_KINDS } from './uploader/options.js';
export type {
  ArtifactUploaderOptions,
  OperationOptions,
  FilterOptions,
  UploadFileCallOptions,
  UploadFilesCallOptions,
  UploadDirectoryCallOptions,
  UploadCheckpointCallOptions,
  UploadCheckpointArchiveCallOptions,
  ArchiveAndUploadCheckpointCallOptions,
} from './uploader/options.js';
export type {
  UploadResult,
  UploadedFile,
  SkippedFile,
  UploadMetrics,
  UploaderStats,
  UploadVerification,
  UploadSkipReason,
  UploadFailureReason,
} from './uploader/result.js';
export type { UploadProgressEvent, UploadPhase } from './uploader/progress.js';
export { planDirectory } from './uploader/plan.js';
export type { PlanDirectoryOptions, UploadPlan, PlannedFile, SkippedPath, PathFilter, PathFilterEntry } from './uploader/plan.js';
export { uploadPlannedFiles } from './uploader/transfer.js';
export type { UploadPlannedFilesOptions, FileUploadOutcome } from './uploader/transfer.js';

// ── resume ──
export {
  UploadJournal,
  JournalEntry,
  resolveJournalDir,
  localFileIdentity,
  JOURNAL_DIR_ENV,
  DEFAULT_JOURNAL_MAX_AGE_MS,
  DEFAULT_JOURNAL_MAX_ENTRIES,
  DEFAULT_JOURNAL_MAX_BYTES,
} from './uploader/journal.js';
export type {
  UploadJournalOptions,
  JournalKey,
  JournalLookup,
  JournalRecord,
  JournalPart,
  JournalMultipart,
  JournalResumeToken,
  JournalListEntry,
  JournalClearOptions,
  JournalClearResult,
  LocalFileIdentity,
} from './uploader/journal.js';

// ── stages ──
export { uploadTrainingArtifacts } from './stages/training.js';
export type { TrainingArtifactsOptions, TrainingArtifactsResult } from './stages/training.js';
export { uploadConversionArtifacts } from './stages/conversion.js';
export type { ConversionArtifactsOptions, ConversionArtifactsResult } from './stages/conversion.js';
export { uploadBenchmarkArtifacts } from './stages/benchmark.js';
export type { BenchmarkArtifactsOptions } from './stages/benchmark.js';
export { uploadHpoArtifacts } from './stages/hpo.js';
export type { HpoArtifactsOptions } from './stages/hpo.js';
export type { StageHelperOptions, StageRegisterOptions } from './stages/stage-uploader.js';

// ── registry (public: registerModel and the shapes it names) ──
export { registerModel, IDEMPOTENCY_KEY_TAG, DEFAULT_READY_TIMEOUT_MS } from './registry/register-model.js';
export type { RegisterModelOptions, RegisterModelResult } from './registry/register-model.js';
export type { ModelVersionStatus } from './mlflow/registry-types.js';

// ── model ──
export { resolveModelDir } from './model/resolve-model-dir.js';
export type { ResolveModelDirOptions, ResolvedModelDir, ModelDirCandidate } from './model/resolve-model-dir.js';
export { detectModelFormat, inspectModelDir } from './model/detect-format.js';
export type { ModelFormat, LoraFlavour, ModelLayout, ModelDirInspection } from './model/detect-format.js';
export {
  validateModelArtifacts,
  DEFAULT_PLACEHOLDER_PATTERNS,
} from './model/validate.js';
export type { ValidateModelOptions, ModelValidationReport, ModelValidationChecks } from './model/validate.js';
export type { ModelFile } from './model/list-model-files.js';
export { findOnnxExternalData } from './model/onnx-external-data.js';
export { convertMlxLoraToPeft } from './model/convert-mlx-to-peft.js';
export type { ConvertMlxLoraOptions, MlxToPeftConversion } from './model/convert-mlx-to-peft.js';
export type { PeftLoraConfig } from './model/peft-adapter.js';
export {
  readSafetensorsHeader,
  openSafetensors,
  createSafetensorsWriter,
  writeSafetensorsFile,
  SAFETENSORS_DTYPE_BITS,
} from './model/safetensors.js';
export type {
  SafetensorsDtype,
  SafetensorsHeader,
  SafetensorsTensorInfo,
  SafetensorsReader,
  SafetensorsWriter,
  SafetensorsTensorSpec,
  SafetensorsTensorData,
  ReadSafetensorsOptions,
  WriteSafetensorsOptions,
} from './model/safetensors.js';

// ── hub ──
export { publishToHub } from './hub/publish.js';
export type { PublishToHubOptions, PublishResult, PublishStatus, PublishedFile, PublishPhase, PublishProgressEvent } from './hub/publish.js';
export { PublishTracker, publishOnce } from './hub/publish-tracker.js';
export type {
  PublishTrackerOptions,
  TrackerStatusOptions,
  PublishStatusReport,
  UnifiedPublishStatus,
  TrainingState,
  RecordedError,
  PublishOnceResult,
} from './hub/publish-tracker.js';
export { assertHubAllowed, detectTestRunner, isPublicHubUrl } from './hub/test-guard.js';
export type { HubGuardOptions, TestRunnerProbe } from './hub/test-guard.js';
