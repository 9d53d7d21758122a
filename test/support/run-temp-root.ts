/**
 * One temp root per test run, so that a run leaves nothing in the machine's temp dir: the global
 * setup makes `<tmpdir>/au-test-<pid>-XXXXXX` and points TMPDIR, TMP and TEMP at it, before the
 * servers and the test workers start. Node's os.tmpdir() and Python's tempfile read TMPDIR, so
 * every temp dir of the run lands inside it: the tests' own (`mkdtemp(join(tmpdir(), ...))`),
 * the CLI children's, the docs examples', the Python cross-checks', the mlflow and moto
 * servers'. The teardown removes the root whole, whatever a test forgot to clean up; the root
 * of a run killed before its teardown (SIGKILL) is removed by the next run's leftovers sweep
 * (leftovers.ts), which knows it from its owner file and never touches a live run's.
 *
 * The root is world-writable with the sticky bit, like /tmp, because tests that drop root to
 * `nobody` (unprivileged.ts) make their temp dirs there too.
 */
import { chmodSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { makeRunDir } from './leftovers.js';

/** `au-test-<pid>-XXXXXX`: the prefix the leftovers sweep looks for. */
export const RUN_ROOT_PREFIX = 'au-test-';

const TEMP_VARS = ['TMPDIR', 'TMP', 'TEMP'] as const;

export interface RunTempRoot {
  /** The root directory (the new os.tmpdir()). */
  root: string;
  /** The temp dir before {@link enterRunTempRoot} (where the root lives). */
  outerTmpdir: string;
  /** Puts TMPDIR, TMP and TEMP back and removes the root with everything in it. */
  leave(): void;
}

/** Makes this run's temp root (marked as this process's) and points TMPDIR, TMP and TEMP at it. */
export function enterRunTempRoot(outerTmpdir: string): RunTempRoot {
  const root = makeRunDir(`${RUN_ROOT_PREFIX}${process.pid}-`, outerTmpdir);
  chmodSync(root, 0o1777);
  const saved = TEMP_VARS.map((name) => [name, process.env[name]] as const);
  for (const name of TEMP_VARS) process.env[name] = root;
  return {
    root,
    outerTmpdir,
    leave() {
      for (const [name, value] of saved) {
        if (value === undefined) delete process.env[name];
        else process.env[name] = value;
      }
      // A child a test left running may still write into it: retry a few times (ENOTEMPTY).
      rmSync(root, { recursive: true, force: true, maxRetries: 5, retryDelay: 200 });
    },
  };
}

/**
 * TMPDIR, TMP and TEMP as this process has them (the run's root, in a test): for a child started
 * with a minimal environment, whose temp dirs would otherwise land in /tmp and stay there.
 */
export function tempDirEnv(): { TMPDIR: string; TMP: string; TEMP: string } {
  const dir = tmpdir();
  return { TMPDIR: dir, TMP: dir, TEMP: dir };
}
