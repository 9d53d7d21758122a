/**
 * The public shapes of MLflow 3's logged models and Model Registry entities, as
 * {@link MlflowRegistryClient} returns them: camelCase, tags as plain records, versions as
 * strings (MLflow's own spelling of them in URIs, `models:/name/3`). The wire shapes live in
 * `registry-schemas.ts`.
 *
 * @module
 */

/** A logged model's status, without MLflow's `LOGGED_MODEL_` prefix. */
export type LoggedModelStatus = 'PENDING' | 'READY' | 'FAILED' | 'UNSPECIFIED';

/** An MLflow 3 logged model (`POST /mlflow/logged-models`). */
export interface LoggedModel {
  /** `m-<32 hex>`, made by the server. */
  modelId: string;
  experimentId: string;
  name: string;
  /** Where its files live: `<experiment artifact location>/models/<model id>/artifacts`. */
  artifactUri: string;
  status: LoggedModelStatus;
  /** The run that produced it, when known. */
  sourceRunId?: string;
  tags: Record<string, string>;
}

/** A model version's registration status. */
export type ModelVersionStatus = 'PENDING_REGISTRATION' | 'FAILED_REGISTRATION' | 'READY';

/** A version of a registered model. */
export interface ModelVersion {
  /** The registered model's name. */
  name: string;
  /** The version number, as a string (`"3"`). */
  version: string;
  /** Where the files are, as given at creation (`models:/m-...` for a logged model). */
  source: string;
  /** The run that produced it, when known. */
  runId?: string;
  status: ModelVersionStatus;
  /** Why registration failed, when it did. */
  statusMessage?: string;
  /** Aliases pointing at this version. */
  aliases: string[];
  tags: Record<string, string>;
  description?: string;
}
