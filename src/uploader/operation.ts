/**
 * Operation: what one call asks for, built once per public method of `ArtifactUploader`
 * ({@link fileOperation}, {@link directoryOperation}, {@link checkpointOperation},
 * {@link archiveOperation}, {@link directoryArchiveOperation}). Stage helpers build operations too,
 * so that they can check every path of theirs before the first upload, with the one `stat` the
 * operation keeps. An operation knows its kind (checked once, in
 * {@link Operation.check}), its local checks (one `stat` per path, kept for planning), how it
 * plans against the config (the kind's artifact path worked out once, by `artifactKindConfig`),
 * and which transfer it needs.
 *
 * @module
 */
import { createHash } from '../core/node-crypto.js';
import { open, stat } from 'node:fs/promises';
import { basename, dirname, join, posix } from 'node:path';
import { InvalidArgumentError, LocalPathError, toLocalPathError } from '../core/errors.js';
import { checkCompressionLevel } from '../archive/create-checkpoint-archive.js';
import { checkManifest, manifestFileName, readManifest, type CheckpointManifest } from '../archive/manifest.js';
import { artifactKindConfig, assertArtifactKind } from '../config/load.js';
import type { ArtifactKind, StageName, TrackingConfig } from '../config/schema.js';
import {
  assertCallOptions,
  DEFAULT_ARCHIVE_NAME,
  DEFAULT_KINDS,
  type ArchiveAndUploadCheckpointCallOptions,
  type FilterOptions,
  type OperationOptions,
  type UploadCheckpointArchiveCallOptions,
  type UploadCheckpointCallOptions,
  type UploadDirectoryCallOptions,
  type UploadFilesCallOptions,
} from './options.js';
import { checkArtifactPath, globList, inspectLocalPath, pathFilters, planFiles, planLocalDirectory, type CheckedLocalPath, type LocalPlan, type PathFilters, type PlannedFile } from './plan.js';
import { assertManifestNameFree, manifestArtifactPathOf, transferArchive, transferDirectoryAsArchive, type TransferContext, type TransferOutcome } from './transfer.js';

/**
 * The artifact paths a planned operation writes (an archive and its manifest, else its files),
 * as the store checks them before anything is sent.
 *
 * @example
 * ```ts
 * store.checkArtifactPaths?.(storedArtifactPaths(planned));
 * ```
 */
export function storedArtifactPaths(planned: Pick<PlannedOperation, 'stored' | 'local'>): readonly string[] {
  return planned.stored ?? planned.local.files.map((file) => file.artifactPath);
}

/** One operation, as the pipeline sees it. */
export interface Operation {
  method: string;
  kind: ArtifactKind | undefined;
  /** False when the caller asked to ignore the config switch (`skipIfDisabled: false`). */
  honourConfig: boolean;
  options: OperationOptions;
  /** Default of `verify` for this method. */
  verifyByDefault: boolean;
  /**
   * The checks that need no config: the kind is one of the stage's, the local paths exist and
   * are files or directories as the method expects. Throws programmer errors. Runs once; the
   * plan reuses what it found.
   */
  check(): Promise<void>;
  /** Planning (throws programmer errors: bad names, escaping symlinks, a manifest of another archive). */
  plan(config: TrackingConfig): Promise<PlannedOperation>;
  /** The config switch that applies: the kind's (with the stage's), or the stage's master switch. */
  configSwitch(config: TrackingConfig): { enabled: boolean; disabledBy?: string | undefined };
}

/** An operation planned against the config. */
export interface PlannedOperation {
  /** Destination of the operation, for the result. */
  artifactPath: string;
  local: LocalPlan;
  /** The files as a dry run reports them (the plan, or the archive a directory becomes). */
  shown: PlannedFile[];
  /** What, besides the files' identities, changes the outcome (options), for deduplication. */
  identity: string;
  /**
   * The artifact paths the transfer writes, when they are not those of `local.files` (an archive
   * and its manifest): the store checks them before anything is sent.
   * @default the artifact paths of `local.files`
   */
  stored?: readonly string[] | undefined;
  /** The transfer; `undefined` uploads `local.files` with `transferFiles`. */
  transfer?: ((ctx: TransferContext) => Promise<TransferOutcome>) | undefined;
  /** The directory whose files are uploaded (or archived), if any: the resume journal may not be inside it. */
  directory?: string | undefined;
}

/** What every builder is given: the uploader's stage. */
export interface OperationContext<S extends StageName> {
  stage: S;
  /** The function the user called, for error messages when it is not the method (a stage helper). @default the method */
  caller?: string | undefined;
}

type DefaultKinds = { [M in keyof typeof DEFAULT_KINDS]: { [S in StageName]: ArtifactKind<S> } };
const DEFAULTS: DefaultKinds = DEFAULT_KINDS;

/**
 * The kind a method answers to in `stage` when the call names none (see `DEFAULT_KINDS`).
 *
 * @example
 * ```ts
 * defaultKind('archive', 'hpo'); // 'bestTrialArchive'
 * ```
 */
export function defaultKind<S extends StageName>(method: keyof typeof DEFAULT_KINDS, stage: S): ArtifactKind<S> {
  return DEFAULTS[method][stage];
}

/** What distinguishes one operation from another; {@link defineOperation} adds the rest. */
interface OperationSpec<S extends StageName, T> {
  method: string;
  kind: ArtifactKind<S> | undefined;
  options: OperationOptions<S>;
  honourConfig: boolean;
  verifyByDefault: boolean;
  /** The local checks (after the kind's); what they find is handed to `plan`. */
  inspect(label: string): Promise<T>;
  plan(config: TrackingConfig, checked: T): Promise<PlannedOperation>;
}

/**
 * An operation from its spec: the kind checked once and the local checks run once (both in
 * `check()`, whose result `plan` reuses), and the config switch of the kind (with the stage's)
 * or of the stage alone.
 */
function defineOperation<S extends StageName, T>({ stage, caller }: OperationContext<S>, spec: OperationSpec<S, T>): Operation {
  let checked: Promise<T> | undefined;
  const check = () =>
    (checked ??= (async () => {
      assertCallOptions(spec.method, spec.options);
      if (spec.kind !== undefined) assertArtifactKind(stage, spec.kind);
      return spec.inspect(caller ?? spec.method);
    })());
  return {
    method: spec.method,
    kind: spec.kind,
    options: spec.options,
    honourConfig: spec.honourConfig,
    verifyByDefault: spec.verifyByDefault,
    check: async () => {
      await check();
    },
    plan: async (config) => spec.plan(config, await check()),
    configSwitch: (config) => {
      if (!config[stage].enabled) return { enabled: false, disabledBy: `${stage}.enabled` };
      if (spec.kind !== undefined && !artifactKindConfig(config, stage, spec.kind).enabled) return { enabled: false, disabledBy: `${stage}.${spec.kind}.enabled` };
      return { enabled: true };
    },
  };
}

/** The artifact directory of a call: the option, else the kind's path, else the root. */
function destination<S extends StageName>(config: TrackingConfig, stage: S, kind: ArtifactKind<S> | undefined, option: string | undefined): string {
  if (option !== undefined) return checkArtifactPath(option, 'artifactPath');
  return kind === undefined ? '' : artifactKindConfig(config, stage, kind).artifactPath;
}

/** Default artifact path of an archive: the `bestTrialArchive` path is a file path, the other kinds' are directories. */
function archiveDestination<S extends StageName>(config: TrackingConfig, stage: S, kind: ArtifactKind<S>, option: string | undefined, fileName: string): string {
  if (option !== undefined) return checkArtifactPath(option, 'artifactPath', { allowEmpty: false });
  const configured = artifactKindConfig(config, stage, kind).artifactPath;
  return checkArtifactPath(kind === 'bestTrialArchive' ? configured : posix.join(configured, fileName), 'artifactPath', { allowEmpty: false, fileNames: true });
}

/** Include/exclude of a directory call: the option's `include` replaces the config's, `exclude` adds to it. */
function filtersFor(config: TrackingConfig, stage: StageName, options: FilterOptions): PathFilters {
  const include = options.include !== undefined ? globList(options.include, 'include') : config[stage].include;
  const exclude = [...config[stage].exclude, ...globList(options.exclude, 'exclude')];
  return pathFilters(include, exclude);
}

/**
 * `uploadFile` / `uploadFiles`: files, each to `<artifactPath>/<name>` (or its path relative to `baseDir`).
 *
 * @example
 * ```ts
 * const operation = fileOperation({ stage: 'training' }, 'uploadFile', ['out/metrics.json'], { kind: 'metrics' });
 * ```
 */
export function fileOperation<S extends StageName>(
  context: OperationContext<S>,
  method: 'uploadFile' | 'uploadFiles',
  paths: readonly string[],
  options: UploadFilesCallOptions<S>,
): Operation {
  return defineOperation(context, {
    method,
    kind: options.kind,
    options,
    honourConfig: true,
    verifyByDefault: false,
    inspect: async (label) => {
      const files: CheckedLocalPath[] = [];
      for (const path of paths) files.push(await inspectLocalPath(path, 'file', label));
      const baseDir = options.baseDir === undefined ? undefined : (await inspectLocalPath(options.baseDir, 'directory', label)).path;
      return { files, baseDir };
    },
    plan: async (config, { files, baseDir }) => {
      const dir = destination(config, context.stage, options.kind, options.artifactPath);
      const local = planFiles(files, dir, baseDir);
      const artifactPath = method === 'uploadFile' ? local.files[0]!.artifactPath : dir;
      return { artifactPath, local, shown: local.files, identity: method };
    },
  });
}

/**
 * `uploadDirectory`: a directory's files, file by file, under `artifactPath` (else the kind's
 * path, else the root); the config switch applies, the default skip list only when asked.
 *
 * @example
 * ```ts
 * const operation = directoryOperation({ stage: 'benchmark' }, 'out/eval', { artifactPath: 'eval' });
 * ```
 */
export function directoryOperation<S extends StageName>(context: OperationContext<S>, dir: string, options: UploadDirectoryCallOptions<S>): Operation {
  return walkOperation(context, 'uploadDirectory', dir, options, { kind: options.kind, honourConfig: true, skipDefaultFiles: options.skipDefaultFiles ?? false });
}

/**
 * `uploadCheckpoint`: a checkpoint directory, file by file, under the kind's path (the stage's
 * checkpoint kind by default), the default skip list applied.
 *
 * @example
 * ```ts
 * const operation = checkpointOperation({ stage: 'training' }, 'out/checkpoint-500', {});
 * ```
 */
export function checkpointOperation<S extends StageName>(context: OperationContext<S>, dir: string, options: UploadCheckpointCallOptions<S>): Operation {
  return walkOperation(context, 'uploadCheckpoint', dir, options, {
    kind: options.kind ?? defaultKind('checkpoint', context.stage),
    honourConfig: options.skipIfDisabled ?? true,
    skipDefaultFiles: options.skipDefaultFiles ?? true,
  });
}

/** A directory operation, file by file. */
function walkOperation<S extends StageName>(
  context: OperationContext<S>,
  method: 'uploadDirectory' | 'uploadCheckpoint',
  dir: string,
  options: OperationOptions<S> & FilterOptions & { artifactPath?: string | undefined },
  settings: { kind: ArtifactKind<S> | undefined; honourConfig: boolean; skipDefaultFiles: boolean },
): Operation {
  return defineOperation(context, {
    method,
    kind: settings.kind,
    options,
    honourConfig: settings.honourConfig,
    verifyByDefault: false,
    inspect: async (label) => (await inspectLocalPath(dir, 'directory', label)).path,
    plan: async (config, directory) => {
      const artifactPath = destination(config, context.stage, settings.kind, options.artifactPath);
      const filters = filtersFor(config, context.stage, options);
      const local = await planLocalDirectory(directory, { artifactPath, filters, skipDefaultFiles: settings.skipDefaultFiles });
      return { artifactPath, local, shown: local.files, identity: method, directory };
    },
  });
}

/**
 * `uploadCheckpointArchive`: an archive file and its manifest beside it.
 *
 * @example
 * ```ts
 * const operation = archiveOperation({ stage: 'hpo' }, 'out/best.tar.gz', {});
 * ```
 */
export function archiveOperation<S extends StageName>(context: OperationContext<S>, archivePath: string, options: UploadCheckpointArchiveCallOptions<S>): Operation {
  const { method, kind, ...basics } = archiveBasics(context, 'uploadCheckpointArchive', options);
  return defineOperation(context, {
    method,
    kind,
    ...basics,
    inspect: async (label) => checkGzipArchive(await inspectLocalPath(archivePath, 'file', label), label),
    plan: async (config, { path: localPath, size }) => {
      const artifactPath = archiveDestination(config, context.stage, kind, options.artifactPath, basename(localPath));
      const manifest = await loadManifest(options.manifest, localPath, size);
      const archive: PlannedFile = { localPath, artifactPath, size };
      return {
        artifactPath,
        local: { files: [archive], skipped: [], skippedBytes: 0, skippedFiles: 0, skippedDirectories: 0, warnings: [] },
        shown: [archive],
        stored: manifest ? [artifactPath, manifestArtifactPathOf(artifactPath)] : [artifactPath],
        identity: `${method}:${manifest ? sha256(JSON.stringify(manifest)) : 'no-manifest'}`,
        transfer: async (ctx) => {
          if (manifest) await assertManifestNameFree(ctx, archive.artifactPath);
          return transferArchive(ctx, archive, manifest);
        },
      };
    },
  });
}

/**
 * `archiveAndUploadCheckpoint`: a directory archived (tar.gz + manifest) at transfer time, then
 * uploaded like an archive.
 *
 * @example
 * ```ts
 * const operation = directoryArchiveOperation({ stage: 'hpo' }, 'runs/trial-7/checkpoint', {});
 * ```
 */
export function directoryArchiveOperation<S extends StageName>(
  context: OperationContext<S>,
  dir: string,
  options: ArchiveAndUploadCheckpointCallOptions<S>,
): Operation {
  const { method, kind, ...basics } = archiveBasics(context, 'archiveAndUploadCheckpoint', options);
  return defineOperation(context, {
    method,
    kind,
    ...basics,
    inspect: async (label) => {
      // With the path: refused at transfer time, a bad level came after the run lookup and the
      // archive's staging directory (left behind in the journal), and a dry run passed it.
      checkCompressionLevel(options.level);
      return (await inspectLocalPath(dir, 'directory', label)).path;
    },
    plan: async (config, directory) => {
      const artifactPath = archiveDestination(config, context.stage, kind, options.artifactPath, DEFAULT_ARCHIVE_NAME);
      const filters = filtersFor(config, context.stage, options);
      const local = await planLocalDirectory(directory, { artifactPath: '', filters, skipDefaultFiles: true, archived: true });
      const totalBytes = local.files.reduce((n, f) => n + f.size, 0);
      return {
        artifactPath,
        local,
        // What a dry run shows: the archive this directory becomes (its size before compression).
        shown: [{ localPath: directory, artifactPath, size: totalBytes }],
        stored: [artifactPath, manifestArtifactPathOf(artifactPath)],
        identity: `${method}:${JSON.stringify([filters.include, filters.exclude, options.level ?? null])}`,
        transfer: (ctx) => transferDirectoryAsArchive(ctx, { directory, artifactPath, filters, level: options.level }),
        directory,
      };
    },
  });
}

/** What both archive operations share: the archive kind by default, the config switch unless `skipIfDisabled: false`, verification on. */
function archiveBasics<S extends StageName, M extends string>(
  context: OperationContext<S>,
  method: M,
  options: OperationOptions<S> & { skipIfDisabled?: boolean | undefined },
): { method: M; kind: ArtifactKind<S>; options: OperationOptions<S>; honourConfig: boolean; verifyByDefault: boolean } {
  return { method, kind: options.kind ?? defaultKind('archive', context.stage), options, honourConfig: options.skipIfDisabled ?? true, verifyByDefault: true };
}

/** The two bytes every gzip stream starts with (RFC 1952). */
const GZIP_MAGIC = [0x1f, 0x8b];

/**
 * `archive` (a regular file, checked) if it starts as a gzip stream does: a weights file, a
 * plain `.tar` or a `.zip` passed as the archive was uploaded as it was, verified, and left
 * for whoever unpacks it to find out. Checked before anything is sent; an empty file is refused too.
 */
async function checkGzipArchive(archive: CheckedLocalPath, method: string): Promise<CheckedLocalPath> {
  const head = Buffer.alloc(GZIP_MAGIC.length);
  let got = 0;
  if (archive.size > 0) {
    try {
      const handle = await open(archive.path, 'r');
      try {
        got = (await handle.read(head, 0, head.length, 0)).bytesRead;
      } finally {
        await handle.close();
      }
    } catch (error) {
      throw toLocalPathError(error, archive.path);
    }
  }
  if (got < GZIP_MAGIC.length || GZIP_MAGIC.some((byte, i) => head[i] !== byte)) {
    const found = archive.size === 0 ? 'is empty' : `starts with the bytes ${[...head.subarray(0, got)].map((b) => b.toString(16).padStart(2, '0')).join(' ')}, not gzip's 1f 8b`;
    throw new LocalPathError('NOT_A_GZIP_ARCHIVE', archive.path, `${method}() expects a gzip-compressed tar archive (.tar.gz), but ${archive.path} ${found}. Nothing was uploaded.`, {
      hint: 'Pass the .tar.gz written by createCheckpointArchive, or let archiveAndUploadCheckpoint() (uploadHpoArtifacts({ checkpointDir })) archive the checkpoint directory on the way.',
    });
  }
  return archive;
}

/** The manifest to upload: the one given, the file given, or the one beside the archive. */
async function loadManifest(option: CheckpointManifest | string | undefined, archivePath: string, archiveSize: number): Promise<CheckpointManifest | undefined> {
  let manifest: CheckpointManifest | undefined;
  if (typeof option === 'string') manifest = await readManifest(option);
  // Checked as a file's would be: a hand-made object with totals that disagree with its files passed.
  else if (option !== undefined) manifest = await checkManifest(option, 'The manifest given');
  else {
    // Up to 0.1.0 an upper-case suffix was not stripped (`A.TAR.GZ.manifest.json`): such a pair
    // on disk keeps its manifest rather than being uploaded without one.
    for (const name of new Set([manifestFileName(archivePath), `${basename(archivePath)}.manifest.json`])) {
      const beside = join(dirname(archivePath), name);
      if ((await stat(beside).catch(() => undefined))?.isFile()) {
        manifest = await readManifest(beside);
        break;
      }
    }
  }
  if (manifest === undefined) return undefined;
  if (typeof manifest !== 'object' || manifest === null || typeof manifest.archive?.size !== 'number') {
    throw new InvalidArgumentError('manifest', 'Expected `manifest` to be a checkpoint manifest (from createCheckpointArchive) or the path of its JSON file.');
  }
  if (manifest.archive.size !== archiveSize) {
    throw new InvalidArgumentError(
      'manifest',
      `The manifest describes an archive of ${manifest.archive.size} bytes (${manifest.archive.fileName}), but ${archivePath} has ${archiveSize} bytes.`,
      { hint: 'Pass the manifest createCheckpointArchive returned for this archive, or rebuild both.' },
    );
  }
  return manifest;
}

function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}
