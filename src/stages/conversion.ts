/**
 * `uploadConversionArtifacts`: an ONNX model and its external-data files.
 *
 * @module
 */
import { dirname } from 'node:path';
import type { UploadResult } from '../uploader/result.js';
import { checkLocalPath } from '../uploader/plan.js';
import { findOnnxExternalData } from '../model/onnx-external-data.js';
import { withStageUploader, type StageHelperOptions } from './stage-uploader.js';

/** Options of {@link uploadConversionArtifacts}. */
export interface ConversionArtifactsOptions extends StageHelperOptions {
  /** The `.onnx` model file. */
  onnxPath: string;
}

/**
 * Uploads a converted ONNX model under the `conversion` stage config (kind `onnxModel`), with
 * its external-data files (see `findOnnxExternalData`: `<name>.onnx.data`, `<name>.onnx_data`,
 * `<name>.data`, and every file the model names), as one operation: everything lands under
 * `<conversion.onnxModel.artifactPath>/` (`onnx/`) with the same relative layout as on disk, so
 * the downloaded model loads as it is.
 *
 * @throws {LocalPathError} when `onnxPath` is not a file, or names an external-data file that is missing.
 * @example
 * ```ts
 * const result = await uploadConversionArtifacts({ onnxPath: 'out/model.onnx' });
 * result.files.map((f) => f.artifactPath); // ['onnx/model.onnx.data', 'onnx/model.onnx']
 * ```
 */
export async function uploadConversionArtifacts(options: ConversionArtifactsOptions): Promise<UploadResult> {
  const { onnxPath, ...rest } = options;
  const model = await checkLocalPath(onnxPath, 'file', 'uploadConversionArtifacts');
  const externalData = await findOnnxExternalData(model);
  return withStageUploader('conversion', 'uploadConversionArtifacts', rest, (uploader) =>
    uploader.uploadFiles([model, ...externalData], { kind: 'onnxModel', baseDir: dirname(model) }),
  );
}
