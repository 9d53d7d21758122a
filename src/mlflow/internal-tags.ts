/**
 * The tags artifact-uploader writes for itself, on runs, logged models and model versions: one
 * list for every path, so that what one path leaves out of its results, or refuses from a
 * caller, no other path forgets. Each path used to keep its own: the run create path knew only
 * the create id, and let a caller's tag under that key through to the server, which answered
 * `runs/create` with a 400 and an SQL dump (the key sent twice).
 *
 * @module
 */
import { InvalidArgumentError } from '../core/errors.js';

/**
 * The version tag that holds the caller's `idempotencyKey`; later calls find the version by it.
 *
 * @example
 * ```ts
 * // Python: client.search_model_versions("name='fraud-classifier' and tags.`artifact_uploader.idempotency_key` = 'job-42'")
 * const filter = `name='fraud-classifier' and tags.\`${IDEMPOTENCY_KEY_TAG}\` = 'job-42'`;
 * ```
 */
export const IDEMPOTENCY_KEY_TAG = 'artifact_uploader.idempotency_key';

/**
 * The tag that makes a create safe to retry (`runs/create`, a logged model's create): a fresh id
 * per create, looked for before a retry so that an attempt whose answer was lost (the server made
 * the entity) is found instead of made twice, and removed once the entity is known. A process
 * killed in between leaves it there (earlier releases set it on model versions too); nothing
 * reads it later, and it is safe to delete.
 *
 * @example
 * ```ts
 * const filter = `tags.\`${CREATE_ID_TAG}\` = '${createId}'`;
 * ```
 * @internal
 */
export const CREATE_ID_TAG = 'artifact_uploader.create_id';

/**
 * The logged-model tag that holds the exact name of the registered model a registration made the
 * logged model for. The logged model's own name cannot say it: MLflow refuses `. % " '` there, so
 * `fraud.classifier` and `fraud_classifier` both get the logged model name `fraud_classifier`,
 * and a call for one took the other's logged models (sharing an idempotency key) for its own.
 * Not one of {@link INTERNAL_TAGS}: it is set on logged models only, whose tags no caller gives
 * and no result returns, so a caller's run or version tag of that key overwrites nothing.
 *
 * @example
 * ```ts
 * // Python: client.search_logged_models(experiment_ids=[exp_id], filter_string="tags.`artifact_uploader.registered_model` = 'fraud.classifier'")
 * const filter = `tags.\`${REGISTERED_MODEL_TAG}\` = 'fraud.classifier'`;
 * ```
 * @internal
 */
export const REGISTERED_MODEL_TAG = 'artifact_uploader.registered_model';

/**
 * Every tag of {@link IDEMPOTENCY_KEY_TAG} and {@link CREATE_ID_TAG}: left out of the tags a
 * result returns (they are ours, the `tags` are the caller's), and refused as a caller's tag
 * (it would overwrite what exactly-once relies on).
 *
 * @example
 * ```ts
 * INTERNAL_TAGS.has('artifact_uploader.create_id'); // true
 * ```
 * @internal
 */
export const INTERNAL_TAGS: ReadonlySet<string> = new Set([IDEMPOTENCY_KEY_TAG, CREATE_ID_TAG]);

/**
 * `tags` without {@link INTERNAL_TAGS}.
 *
 * @example
 * ```ts
 * withoutInternalTags({ stage: 'training', 'artifact_uploader.create_id': 'a1' }); // { stage: 'training' }
 * ```
 * @internal
 */
export function withoutInternalTags(tags: Readonly<Record<string, string>>): Record<string, string> {
  return Object.fromEntries(Object.entries(tags).filter(([key]) => !INTERNAL_TAGS.has(key)));
}

/**
 * Refuses a caller's tag under one of {@link INTERNAL_TAGS}, before anything is sent.
 *
 * @throws {InvalidArgumentError} naming `argument`, with a hint (`idempotencyKey` is how the
 *   idempotency key is given).
 * @example
 * ```ts
 * assertNoInternalTags(['team', 'stage'], 'tags'); // ok
 * assertNoInternalTags(['artifact_uploader.create_id'], 'tags'); // throws
 * ```
 * @internal
 */
export function assertNoInternalTags(keys: Iterable<string>, argument: string): void {
  for (const key of keys) {
    if (!INTERNAL_TAGS.has(key)) continue;
    throw new InvalidArgumentError(argument, `Tag key ${JSON.stringify(key)} is artifact-uploader's own: it would overwrite what exactly-once relies on.`, {
      hint: 'Give your own tag another key, e.g. "job_id"; an idempotency key for a registration goes in idempotencyKey (--idempotency-key on the command line).',
    });
  }
}
