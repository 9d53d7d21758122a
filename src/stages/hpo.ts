/**
 * `uploadHpoArtifacts`: the best trial's checkpoint archive (or one trial's) with its manifest.
 *
 * @module
 */
import { basename, posix } from 'node:path';
import { InvalidArgumentError } from '../core/errors.js';
import type { CheckpointManifest } from '../archive/manifest.js';
import { checkArtifactPath } from '../uploader/plan.js';
import type { UploadResult } from '../uploader/result.js';
import { stageOptions, withStageUploader, type StageHelper, type StageHelperOptions } from './stage-uploader.js';

/** Options of {@link uploadHpoArtifacts}: exactly one of `checkpointDir` and `archivePath`. */
export interface HpoArtifactsOptions extends StageHelperOptions {
  /** A checkpoint directory: archived first (tar.gz + manifest, in the resume journal's `archives/`, or a temp directory without a journal), then uploaded. */
  checkpointDir?: string;
  /** An archive made by `createCheckpointArchive`, uploaded as it is. */
  archivePath?: string;
  /**
   * The archive's manifest, or the path of its JSON, for `archivePath`.
   * @default the `<name>.manifest.json` beside the archive, if any
   */
  manifest?: CheckpointManifest | string;
  /**
   * Makes this one trial's checkpoint (kind `trialCheckpoints`) instead of the best trial's
   * (kind `bestTrialArchive`): it goes to `<hpo.trialCheckpoints.artifactPath>/<trialId>/<archive name>`,
   * e.g. `trials/17/best_trial_checkpoint.tar.gz`. One path segment (no `/`); a number must be
   * a trial number, an integer from 0 up. A string goes into the path in its composed Unicode
   * form (NFC): `'cafe\u0301'` (decomposed, as macOS file names give it) and `'caf\u00e9'` are
   * one trial, in one folder `trials/café/`.
   */
  trialId?: string | number;
  /** gzip level for `checkpointDir`, 0–9 (refused with `archivePath`, uploaded as it is). @default 1 */
  level?: number;
}

/** uploadHpoArtifacts() as its options are checked: a field of these options not listed here is a compile error. */
const HPO_HELPER: StageHelper<HpoArtifactsOptions> = {
  name: 'uploadHpoArtifacts',
  stage: 'hpo',
  fields: { checkpointDir: true, archivePath: true, manifest: true, trialId: true, level: true },
};

/**
 * Uploads an HPO sweep's checkpoint archive under the `hpo` stage config, with its manifest
 * beside it and verification on. Without `trialId` it is the best trial's archive (kind
 * `bestTrialArchive`, at `best_trial_checkpoint.tar.gz`); with one it is that trial's (kind
 * `trialCheckpoints`, at `trials/<trialId>/...`, in the id's composed Unicode form, NFC). When two trials report the same best
 * checkpoint at the same time, it is uploaded once and both get the result.
 *
 * @throws {InvalidArgumentError} unless exactly one of `checkpointDir` and `archivePath` is given, for `manifest` without
 *   `archivePath` or `level` without `checkpointDir`, or for a bad `trialId`
 *   (holding `/`; a number that is not an integer from 0 up; neither string nor number).
 * @throws {LocalPathError} `INVALID_ARTIFACT_PATH` for a `trialId` MLflow refuses as a path
 *   segment (`..`, `#`, `%2F`, `?`), as for any artifact path; the hint says to pass another.
 * @example
 * ```ts
 * const result = await uploadHpoArtifacts({ checkpointDir: 'sweep/trial-17/checkpoint' });
 * result.manifest?.verification.status; // 'verified'
 * ```
 */
export async function uploadHpoArtifacts(options: HpoArtifactsOptions): Promise<UploadResult> {
  const { checkpointDir, archivePath, manifest, trialId, level, ...rest } = stageOptions(options, HPO_HELPER);
  if ((checkpointDir === undefined) === (archivePath === undefined)) {
    throw new InvalidArgumentError('checkpointDir', 'uploadHpoArtifacts() needs exactly one of `checkpointDir` (archived, then uploaded) and `archivePath` (uploaded as it is).');
  }
  if (manifest !== undefined && archivePath === undefined) {
    throw new InvalidArgumentError('manifest', '`manifest` goes with `archivePath`: for `checkpointDir` the manifest is written while archiving.');
  }
  // Ignored, it would leave the caller believing the archive was recompressed at that level.
  if (level !== undefined && checkpointDir === undefined) {
    throw new InvalidArgumentError('level', '`level` goes with `checkpointDir`: an `archivePath` is uploaded as it is, at the level it was made with. Nothing was uploaded.', {
      hint: 'Drop `level`, or pass it to createCheckpointArchive when the archive is made.',
    });
  }
  const trial = trialId === undefined ? undefined : trialSegment(trialId);
  if (typeof trialId === 'string' && trial !== trialId) {
    rest.logger?.info(`trialId ${JSON.stringify(trialId)} is stored under its composed (NFC) spelling, trials/${trial}/, as every spelling of it is.`);
  }
  return withStageUploader(HPO_HELPER, rest, async (uploader) => {
    let artifactPath: string | undefined;
    if (trial !== undefined) {
      const config = await uploader.loadConfig();
      const name = archivePath !== undefined ? basename(archivePath) : posix.basename(config.hpo.bestTrialArchive.artifactPath);
      // The archive's own name goes into the path: a bad one is the file's to rename. Checked as
      // part of `artifactPath`, the error told the caller to change an option they never passed.
      if (archivePath !== undefined) checkArtifactPath(name, 'archivePath', { allowEmpty: false, fileNames: true });
      artifactPath = posix.join(config.hpo.trialCheckpoints.artifactPath, trial, name);
    }
    const kind = trial !== undefined ? ('trialCheckpoints' as const) : ('bestTrialArchive' as const);
    if (archivePath !== undefined) {
      return uploader.uploadCheckpointArchive(archivePath, { kind, artifactPath, manifest });
    }
    return uploader.archiveAndUploadCheckpoint(checkpointDir!, { kind, artifactPath, level });
  });
}

/** What to pass instead of a `trialId` that names no trial. */
const TRIAL_ID_HINT = "Pass the trial's number or id (e.g. `trial.number`); leave `trialId` out for the best trial's archive.";

/**
 * `trialId` as the one artifact path segment it becomes, refused before anything is sent when
 * it cannot name a trial. `String()` turned a failed lookup into a folder: `NaN` (a metric
 * parsed as the id), `-1` (the "no best trial yet" of many sweep loops), `null` and objects
 * (`[object Object]`) were uploaded to `trials/NaN/`, `trials/-1/`, `trials/null/`.
 */
function trialSegment(trialId: string | number): string {
  if (typeof trialId === 'number') {
    if (!Number.isSafeInteger(trialId) || trialId < 0) {
      throw new InvalidArgumentError('trialId', `\`trialId\` ${String(trialId)} is not a trial number (an integer from 0 up). Nothing was uploaded.`, {
        hint: TRIAL_ID_HINT,
      });
    }
    return String(trialId);
  }
  if (typeof trialId !== 'string') {
    throw new InvalidArgumentError('trialId', `\`trialId\` must be a string or a number, got ${trialId === null ? 'null' : typeof trialId}. Nothing was uploaded.`, {
      hint: TRIAL_ID_HINT,
    });
  }
  if (trialId.includes('/')) {
    throw new InvalidArgumentError('trialId', `\`trialId\` ${JSON.stringify(trialId)} contains "/"; it must be one artifact path segment. Nothing was uploaded.`, {
      hint: 'Use letters, digits, "-" and "_".',
    });
  }
  // One trial, one folder. The same name reaches us in two spellings: decomposed (NFD, `e` +
  // U+0301) from a macOS file or folder name, composed (NFC, U+00E9) from nearly everything else.
  // MLflow and every store keep an artifact path's bytes as given (so do we, for file names and
  // `artifactPath`: they name files), so the two spellings were two folders that look the same
  // in the MLflow UI, and a trial resumed under the other spelling (another machine, the CLI
  // fed a folder name) neither found its resume journal records nor replaced its archive. The
  // composed form is the one kept: what Linux, Windows and keyboards produce.
  const composed = trialId.normalize('NFC');
  checkArtifactPath(composed, 'trialId', { allowEmpty: false });
  return composed;
}
