/**
 * MLflow's rules for registered model names, aliases and registry tags
 * (`mlflow/utils/validation.py`: `_validate_model_name`, `_validate_model_alias_name`,
 * `_validate_model_alias_name_reserved`), checked before any request so that a bad value
 * fails with a {@link RegistryError} that says what to write instead.
 *
 * @module
 */
import { posix } from 'node:path';
import { InvalidArgumentError, RegistryError } from '../core/errors.js';
import { characterCount } from './tracking-validation.js';

/** MLflow's limits for the Model Registry. */
export const REGISTRY_LIMITS = Object.freeze({
  /**
   * The `registered_models.name` column, `String(256)` (the versions', aliases' and tags' `name`
   * columns too). MLflow's validation does not check it: SQLite keeps a longer name, PostgreSQL
   * and MySQL refuse it when the registered model is created, which a registration does after
   * the files were copied. Counted in characters (code points), as Python and those databases do.
   */
  registeredModelNameLength: 256,
  /**
   * The `model_versions.description` column, `String(5000)`. MLflow does not check it either:
   * PostgreSQL and MySQL refuse a longer description at `model-versions/create`, after the
   * files were copied and the registered model made.
   */
  versionDescriptionLength: 5000,
  /** `MAX_REGISTERED_MODEL_ALIAS_LENGTH`. */
  aliasLength: 255,
  /** `MAX_MODEL_REGISTRY_TAG_KEY_LENGTH`. */
  tagKeyLength: 250,
  /** `MAX_MODEL_REGISTRY_TAG_VALUE_LENGTH`. */
  tagValueLength: 100_000,
});

/**
 * A name MLflow takes as missing: `model_name.strip() == ""`, Python's whitespace, which is not
 * JavaScript's `trim()` (Python's has U+001C..U+001F and U+0085, not U+FEFF).
 */
const PYTHON_BLANK = /^[\t\n\v\f\r\x1c-\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*$/u;

const NAME_HINT = 'Use letters, digits, ".", "-", "_" and spaces, e.g. "llama-lora" or "fraud.classifier"; MLflow refuses "/" and ":".';

/**
 * Characters MLflow 3.17 accepts in a registered model name but which no `models:/` URI can
 * carry to it: Python's `urlparse` ends the path at `?` (and `%`-escapes are not decoded, so
 * there is no way around it), drops tabs and line breaks anywhere in the URI, and
 * `split_models_uri` reads `models:/a@b/3` as alias `b` of model `a` (file `3` of it). The
 * URI in our result would then load nothing, or another model. `#` is fine: the models:/
 * parsers read it with `allow_fragments=False`.
 */
const UNADDRESSABLE_IN_MODELS_URI = /[?@\t\n\r]/;
const UNADDRESSABLE_WHY: Record<string, string> = {
  '?': 'Python reads the rest of the URI as a query',
  '@': 'Python reads models:/<name>/<version> as an alias of the model named by what precedes "@"',
};

/**
 * Checks a registered model name as MLflow does: not blank (Python's whitespace), at most 256
 * characters (its database column), no `/` or `:`, and already in normal path form (no `.`/`..` segments, no leading `/`, no doubled separators); and, beyond
 * MLflow, none of `?`, `@`, tab or line break, which MLflow stores but no `models:/` URI can
 * address (the `modelUri` of a registration would load nothing, or another model).
 *
 * @throws {RegistryError} `REGISTRY_INVALID_NAME`.
 * @example
 * ```ts
 * assertRegisteredModelName('llama-lora'); // ok
 * assertRegisteredModelName('team/llama'); // throws REGISTRY_INVALID_NAME
 * ```
 */
export function assertRegisteredModelName(name: unknown): asserts name is string {
  const fail = (why: string, hint = NAME_HINT) => {
    throw new RegistryError('REGISTRY_INVALID_NAME', `Registered model name ${JSON.stringify(name)} is invalid: ${why}.`, {
      hint,
      ...(typeof name === 'string' ? { modelName: name } : {}),
    });
  };
  if (typeof name !== 'string' || PYTHON_BLANK.test(name)) fail('it is empty');
  const text = name as string;
  const length = characterCount(text);
  if (length > REGISTRY_LIMITS.registeredModelNameLength) {
    fail(
      `it has ${length} characters, more than the ${REGISTRY_LIMITS.registeredModelNameLength} MLflow's database keeps`,
      `Shorten it to at most ${REGISTRY_LIMITS.registeredModelNameLength} characters: MLflow's registered_models.name column is VARCHAR(${REGISTRY_LIMITS.registeredModelNameLength}), and PostgreSQL and MySQL servers refuse a longer name (SQLite keeps it).`,
    );
  }
  if (text.includes('/') || text.includes(':')) fail('names cannot contain "/" or ":"');
  const unaddressable = UNADDRESSABLE_IN_MODELS_URI.exec(text);
  if (unaddressable) {
    fail(
      `MLflow stores it, but no models:/ URI can name its versions (${JSON.stringify(unaddressable[0])}: ${UNADDRESSABLE_WHY[unaddressable[0]] ?? 'a tab or line break, which Python drops from URIs'})`,
      `Replace ${JSON.stringify(unaddressable[0])}, e.g. by "-" or "_": Python's mlflow.artifacts.download_artifacts and mlflow.pyfunc.load_model read a version by models:/<name>/<version> (the modelUri returned), which must name the model.`,
    );
  }
  const norm = posix.normalize(text);
  if (norm !== text || norm === '.' || norm.startsWith('..')) fail('it is not a plain name (".", ".." or a path)');
}

/**
 * Checks an alias as MLflow does: letters, digits, `_` and `-`, at most 255 characters ({@link characterCount}), and
 * neither `latest` nor a version alias such as `v3` (both reserved).
 *
 * @throws {RegistryError} `REGISTRY_INVALID_ALIAS`.
 * @example
 * ```ts
 * assertModelAlias('champion'); // ok
 * assertModelAlias('v2');       // throws: reserved
 * ```
 */
export function assertModelAlias(alias: unknown): asserts alias is string {
  const fail = (why: string) => {
    throw new RegistryError('REGISTRY_INVALID_ALIAS', `Alias ${JSON.stringify(alias)} is invalid: ${why}.`, {
      hint: 'Use letters, digits, "_" and "-", e.g. "champion" or "staging"; "latest" and "v<number>" are reserved by MLflow.',
    });
  };
  if (typeof alias !== 'string' || alias === '') fail('it is empty');
  const text = alias as string;
  // MLflow's `^[\w\-]*$` is a Python `re` on str: its `\w` takes any letter or digit, "campeón" too.
  if (!/^[\p{L}\p{N}_-]+$/u.test(text)) fail('only letters, digits, "_" and "-" are allowed');
  if (characterCount(text) > REGISTRY_LIMITS.aliasLength) fail(`it is longer than ${REGISTRY_LIMITS.aliasLength} characters`);
  if (text.toLowerCase() === 'latest') fail('"latest" is reserved');
  if (/^[vV]\p{Nd}+$/u.test(text)) fail('version aliases ("v<number>") are reserved');
}

/**
 * Checks registry tags as MLflow 3.17 does (`_validate_model_version_tag`): keys not empty, of
 * its characters (`^[/\w.\- :]*$`: a key of spaces passes, a tab or another blank does not), in
 * normal path form and up to 250 characters; values up to 100,000 (lengths counted as MLflow
 * counts them: {@link characterCount}). Returns them as a list.
 *
 * @throws {InvalidArgumentError} for a bad key or value.
 * @example
 * ```ts
 * registryTagList({ stage: 'conversion' }, 'tags'); // [{ key: 'stage', value: 'conversion' }]
 * ```
 */
export function registryTagList(tags: Record<string, string> | undefined, argument: string): Array<{ key: string; value: string }> {
  if (tags === undefined) return [];
  if (tags === null || typeof tags !== 'object' || Array.isArray(tags)) {
    throw new InvalidArgumentError(argument, `${argument} must be an object of string values.`);
  }
  return Object.entries(tags).map(([key, value]) => {
    // Each refusal says what is wrong: a blank key was refused as "must be 1 to 250 characters",
    // which a key of three spaces (kept by MLflow) or a tab (a character MLflow refuses) is.
    if (key === '') {
      throw new InvalidArgumentError(argument, 'Tag key "" is empty. MLflow refuses it (as a name, it resolves to ".").', {
        hint: 'Give the tag a key, e.g. "stage"; if the key comes from a variable, check that it is set.',
      });
    }
    const keyLength = characterCount(key);
    if (keyLength > REGISTRY_LIMITS.tagKeyLength) {
      throw new InvalidArgumentError(argument, `Tag key ${JSON.stringify([...key].slice(0, 40).join(''))}... has ${keyLength} characters; MLflow allows at most ${REGISTRY_LIMITS.tagKeyLength}.`, {
        hint: `Shorten the key to at most ${REGISTRY_LIMITS.tagKeyLength} characters; long text belongs in the tag's value (up to ${REGISTRY_LIMITS.tagValueLength} characters).`,
      });
    }
    // MLflow's `_validate_tag_name`, which the server applies to a version's tags only after the
    // version was made: checked here so that a bad key fails before anything is uploaded or made.
    if (!TAG_KEY_PATTERN.test(key)) {
      throw new InvalidArgumentError(argument, `Tag key ${JSON.stringify(key)} has characters MLflow refuses.`, {
        hint: 'Tag keys may only contain letters, digits, "_", "-", ".", " ", ":" and "/", e.g. "stage" or "eval/dataset".',
      });
    }
    if (tagKeyNotUnique(key)) {
      throw new InvalidArgumentError(argument, `Tag key ${JSON.stringify(key)} would be stored as another name on disk, which MLflow refuses.`, {
        hint: 'Remove leading or trailing "/", "//", "./" and "../" segments, e.g. "eval/dataset" instead of "/eval/dataset".',
      });
    }
    if (typeof value !== 'string' || characterCount(value) > REGISTRY_LIMITS.tagValueLength) {
      throw new InvalidArgumentError(argument, `Tag ${JSON.stringify(key)} must have a string value of at most ${REGISTRY_LIMITS.tagValueLength} characters.`, {
        hint: 'Convert numbers and booleans with String(value).',
      });
    }
    return { key, value };
  });
}

/** MLflow's tag key characters (`validate_param_and_metric_name`: `^[/\w.\- :]*$`, its `\w` being Unicode). */
const TAG_KEY_PATTERN = /^[/\p{L}\p{N}_.\- :]+$/u;

/** Python's `posixpath.normpath(key) != key` and friends (MLflow's `path_not_unique`). */
function tagKeyNotUnique(key: string): boolean {
  if (key.startsWith('/') || key.endsWith('/') || key.includes('//')) return true;
  return key.split('/').some((segment) => segment === '.' || segment === '..');
}

/** What an idempotency key may hold: it goes into MLflow search filters, so no quotes or spaces. */
export const IDEMPOTENCY_KEY_PATTERN = /^[\w.:@/+=-]{1,250}$/u;

/**
 * Checks an idempotency key: 1 to 250 of letters, digits and `_ . : @ / + = -`.
 *
 * @throws {InvalidArgumentError} for anything else.
 * @example
 * ```ts
 * assertIdempotencyKey(`convert-${process.env.CI_JOB_ID}`);
 * ```
 */
export function assertIdempotencyKey(key: unknown): asserts key is string {
  if (typeof key !== 'string' || !IDEMPOTENCY_KEY_PATTERN.test(key)) {
    throw new InvalidArgumentError('idempotencyKey', `idempotencyKey ${JSON.stringify(key)} is invalid: use 1 to 250 letters, digits and _ . : @ / + = -.`, {
      hint: 'Derive it from something stable for the job, e.g. `${pipelineId}-${stepName}`, or a UUID kept across retries.',
    });
  }
}
