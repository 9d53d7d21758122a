/**
 * `uploadConversionArtifacts`: an ONNX model and its external-data files.
 *
 * @module
 */
import { dirname } from 'node:path';
import type { RegisterModelResult } from '../registry/register-model.js';
import type { UploadResult } from '../uploader/result.js';
import { checkLocalPath } from '../uploader/plan.js';
import { findOnnxExternalData } from '../model/onnx-external-data.js';
import { checkStageRegister, registerStageUpload, stageOptions, withStageUploader, type StageHelper, type StageHelperOptions, type StageRegisterOptions } from './stage-uploader.js';

/** Options of {@link uploadConversionArtifacts}. */
export interface ConversionArtifactsOptions extends StageHelperOptions {
  /** The `.onnx` model file. */
  onnxPath: string;
  /**
   * Also register the uploaded model (the `onnx/` folder) as a new version of this registered
   * model, with MLflow 3 lineage (see docs/registry.md). Needs a tracking server.
   * @default no registration
   */
  register?: StageRegisterOptions;
}

/** What {@link uploadConversionArtifacts} returns: the upload's result, plus the version when `register` was given. */
export type ConversionArtifactsResult = UploadResult & {
  /** The registered version; absent without `register`, or when the upload did not happen (skipped, failed, dry run). */
  registeredModel?: RegisterModelResult;
};

/** uploadConversionArtifacts() as its options are checked: a field of these options not listed here is a compile error. */
const CONVERSION_HELPER: StageHelper<ConversionArtifactsOptions> = {
  name: 'uploadConversionArtifacts',
  stage: 'conversion',
  fields: { onnxPath: true, register: true },
};

/**
 * Uploads a converted ONNX model under the `conversion` stage config (kind `onnxModel`), with
 * its external-data files (see `findOnnxExternalData`: `<name>.onnx.data`, `<name>.onnx_data`,
 * `<name>.data`, and every file the model names), as one operation: everything lands under
 * `<conversion.onnxModel.artifactPath>/` (`onnx/`) with the same relative layout as on disk, so
 * the downloaded model loads as it is.
 *
 * With `register`, the uploaded folder then becomes a new version of that registered model
 * (`result.registeredModel`).
 *
 * @throws {LocalPathError} when `onnxPath` is not a file, or names an external-data file that is missing.
 * @throws {RegistryError} when `register` has a bad name or alias (before any upload), or registering fails.
 * @throws {InvalidArgumentError} when `register` has a bad tag, `idempotencyKey` or `readyTimeoutMs` (before any upload).
 * @example
 * ```ts
 * const result = await uploadConversionArtifacts({ onnxPath: 'out/model.onnx' });
 * result.files.map((f) => f.artifactPath); // ['onnx/model.onnx.data', 'onnx/model.onnx']
 * const registered = await uploadConversionArtifacts({ onnxPath: 'out/model.onnx', register: { name: 'fraud-classifier', alias: 'candidate' } });
 * registered.registeredModel?.modelUri; // 'models:/fraud-classifier/4'
 * ```
 */
export async function uploadConversionArtifacts(options: ConversionArtifactsOptions): Promise<ConversionArtifactsResult> {
  const { onnxPath, register, ...rest } = stageOptions(options, CONVERSION_HELPER);
  checkStageRegister(register, rest);
  const model = await checkLocalPath(onnxPath, 'file', 'uploadConversionArtifacts');
  const externalData = await findOnnxExternalData(model);
  const result = await withStageUploader(CONVERSION_HELPER, rest, (uploader) =>
    uploader.uploadFiles([model, ...externalData], { kind: 'onnxModel', baseDir: dirname(model) }),
  );
  const registeredModel = await registerStageUpload(register, result, rest);
  return registeredModel ? { ...result, registeredModel } : result;
}
