/**
 * MLflow's credentials file, `~/.mlflow/credentials`: an INI file whose `[mlflow]` section may
 * hold `mlflow_tracking_username` and `mlflow_tracking_password`. MLflow's Python client reads
 * it (`mlflow/utils/credentials.py`) and lets `MLFLOW_TRACKING_USERNAME` /
 * `MLFLOW_TRACKING_PASSWORD` win field by field, so a team that keeps its password there gets
 * the same Basic auth from this library as from `mlflow`.
 *
 * The parser follows Python's `configparser` defaults for what such a file holds: `[section]`
 * headers, `key = value` or `key: value`, keys case-insensitive, values trimmed, whole-line
 * comments starting with `#` or `;`, indented lines continuing the previous value. A file that
 * is missing, unreadable or has no `[mlflow]` section gives nothing, as in MLflow.
 *
 * @module
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { homeDirectory, type Env } from '../core/env.js';

/** What the credentials file holds for the `[mlflow]` section (each field may be missing). */
export interface MlflowFileCredentials {
  username?: string;
  password?: string;
  /** The file read, for messages. */
  path: string;
}

/**
 * The default path, `$HOME/.mlflow/credentials`. With an injected environment (not
 * `process.env`) only its own `HOME` counts, so tests never read the developer's real file.
 * No home at all (HOME unset, a uid without a passwd entry) means no file, as in MLflow.
 */
export function defaultCredentialsPath(env: Env): string | undefined {
  const home = env.HOME ?? (env === process.env ? homeDirectory() : undefined);
  return home ? join(home, '.mlflow', 'credentials') : undefined;
}

/**
 * Reads `mlflow_tracking_username` / `mlflow_tracking_password` from an MLflow credentials file.
 * Returns `undefined` when the file is missing or unreadable or has no `[mlflow]` section.
 *
 * @example
 * ```ts
 * const creds = readMlflowCredentialsFile('/home/me/.mlflow/credentials');
 * creds?.username; // 'alice'
 * ```
 */
export function readMlflowCredentialsFile(path: string): MlflowFileCredentials | undefined {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
  const section = parseIniSections(text).get('mlflow');
  if (!section) return undefined;
  const username = section.get('mlflow_tracking_username');
  const password = section.get('mlflow_tracking_password');
  return { path, ...(username ? { username } : {}), ...(password ? { password } : {}) };
}

/** Sections (names as written) to keys (lower-cased, as configparser does) to values. */
function parseIniSections(text: string): Map<string, Map<string, string>> {
  const sections = new Map<string, Map<string, string>>();
  let current: Map<string, string> | undefined;
  let lastKey: string | undefined;
  for (const raw of text.replace(/^\uFEFF/, '').split(/\r?\n/)) {
    const trimmed = raw.trim();
    if (trimmed === '' || trimmed.startsWith('#') || trimmed.startsWith(';')) {
      continue;
    }
    // An indented line continues the previous value (configparser's multi-line values).
    if (/^\s/.test(raw) && current && lastKey !== undefined) {
      current.set(lastKey, `${current.get(lastKey)}\n${trimmed}`.trim());
      continue;
    }
    const header = /^\[([^\]]+)\]$/.exec(trimmed);
    if (header) {
      current = sections.get(header[1]!) ?? new Map<string, string>();
      sections.set(header[1]!, current);
      lastKey = undefined;
      continue;
    }
    const pair = /^([^=:]+?)\s*[=:]\s*(.*)$/.exec(trimmed);
    if (pair && current) {
      lastKey = pair[1]!.toLowerCase();
      current.set(lastKey, pair[2]!);
    }
  }
  return sections;
}
