/**
 * The Python side of the test suite: a venv with the pinned packages of test/requirements.txt
 * (and one of test/azureml-requirements.txt for the azureml-mlflow plugin, whose pins clash
 * with the main one), created once per machine under the user's cache dir and keyed by the
 * requirements file's hash, so repeated runs reuse it and a changed pin installs afresh. Safe when two test runs
 * start at once (a lock directory serialises the install).
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);
const here = dirname(fileURLToPath(import.meta.url));
export const REQUIREMENTS_FILE = resolve(here, '..', 'requirements.txt');
/** The azureml-mlflow plugin's venv (it pins mlflow-skinny<=3.15). */
export const AZUREML_REQUIREMENTS_FILE = resolve(here, '..', 'azureml-requirements.txt');

/** Where venvs live: $ARTIFACT_UPLOADER_TEST_CACHE, else $XDG_CACHE_HOME/artifact-uploader, else ~/.cache/artifact-uploader. */
export function cacheRoot(): string {
  return (
    process.env.ARTIFACT_UPLOADER_TEST_CACHE ??
    join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'artifact-uploader')
  );
}

/** The venv directory for the current content of a requirements file (the main one by default). */
export function venvDir(requirements: string = REQUIREMENTS_FILE): string {
  const hash = createHash('sha256').update(readFileSync(requirements)).digest('hex').slice(0, 16);
  const name = requirements === REQUIREMENTS_FILE ? 'venv' : `venv-${basename(requirements, '.txt')}`;
  return join(cacheRoot(), `${name}-${hash}`);
}

export function venvBin(name: string, requirements: string = REQUIREMENTS_FILE): string {
  return join(venvDir(requirements), 'bin', name);
}

const LOCK_STALE_MS = 20 * 60_000;

/**
 * Makes sure the venv exists and is complete; installs it if not. Returns the venv path.
 * Throws with a readable message when Python is missing or the install fails.
 */
export async function ensurePythonEnv(log: (line: string) => void = () => {}, requirements: string = REQUIREMENTS_FILE): Promise<string> {
  const dir = venvDir(requirements);
  const marker = join(dir, '.complete');
  if (existsSync(marker)) return dir;

  const python = process.env.PYTHON ?? 'python3';
  try {
    await run(python, ['--version']);
  } catch (error) {
    throw new Error(`Python 3 is needed for the real-server tests and was not found as "${python}": ${(error as Error).message}`);
  }

  mkdirSync(cacheRoot(), { recursive: true });
  const lock = `${dir}.lock`;
  const deadline = Date.now() + 25 * 60_000;
  for (;;) {
    try {
      mkdirSync(lock);
      break;
    } catch {
      if (existsSync(marker)) return dir;
      try {
        if (Date.now() - statSync(lock).mtimeMs > LOCK_STALE_MS) rmSync(lock, { recursive: true, force: true });
      } catch {
        // The other installer just finished and removed it.
      }
      if (Date.now() > deadline) throw new Error(`Timed out waiting for another process installing ${dir} (lock ${lock}).`);
      await new Promise((r) => setTimeout(r, 2000));
    }
  }
  try {
    if (existsSync(marker)) return dir;
    log(`installing the test venv of ${basename(requirements)} into ${dir} (once per machine; a few minutes)...`);
    rmSync(dir, { recursive: true, force: true });
    await run(python, ['-m', 'venv', dir], { timeout: 5 * 60_000 });
    await run(join(dir, 'bin', 'python'), ['-m', 'pip', 'install', '--quiet', '--disable-pip-version-check', '-r', requirements], {
      timeout: 20 * 60_000,
      maxBuffer: 64 * 1024 * 1024,
    });
    writeFileSync(marker, new Date().toISOString());
    log('test venv ready');
    return dir;
  } finally {
    rmSync(lock, { recursive: true, force: true });
  }
}
