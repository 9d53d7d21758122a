/**
 * zod schemas of the Azure ML run-history artifact API's answers, after the `azureml-mlflow`
 * plugin's msrest models (`azureml/mlflow/_restclient/run_artifact/models/_models_py3.py`):
 * `BatchArtifactContentInformationResult`, `PaginatedArtifactList`,
 * `ArtifactContentInformation` and `ErrorResponse`. Only the fields we read are required. A leaf
 * module: zod loads when the first answer is parsed.
 *
 * @module
 */
import * as z from 'zod';

/** `ArtifactContentInformation`: where one artifact's bytes are (a SAS URL). */
export const contentInformationSchema = z.object({
  contentUri: z.string().min(1),
  origin: z.string().nullish(),
  container: z.string().nullish(),
  path: z.string().nullish(),
});

/** `RootError` inside an `ErrorResponse`. */
const rootErrorSchema = z.object({ code: z.string().nullish(), message: z.string().nullish() }).passthrough();

/** `ErrorResponse`: `{ error: RootError, ... }`. */
export const errorResponseSchema = z.object({ error: rootErrorSchema.nullish() }).passthrough();

/** `BatchArtifactContentInformationResult` of `POST .../artifacts/batch/metadata`. */
export const batchContentInformationSchema = z.object({
  artifacts: z.record(z.string(), z.unknown()).nullish(),
  artifactContentInformation: z.record(z.string(), contentInformationSchema).nullish(),
  errors: z.record(z.string(), errorResponseSchema).nullish(),
});

/** `PaginatedArtifactList` of `GET .../artifacts`. */
export const artifactListSchema = z.object({
  value: z.array(z.object({ path: z.string() }).passthrough()).nullish(),
  continuationToken: z.string().nullish(),
  nextLink: z.string().nullish(),
});

/** `TokenResult` of `GET .../runs/<id>/token` (the job token's refresh). */
export const tokenResultSchema = z.object({ token: z.string().min(1), expiryTimeUtc: z.string().nullish() });

// Answers are validated with the MLflow client's parser (an `InvalidResponseError` naming the fields).
export { parseMlflowResponse } from './schemas.js';
