/**
 * Running a test file without root's privileges, for the cases root cannot see: root reads
 * every file, so "an unreadable file" is only unreadable to someone else. CI runs as root, and
 * skipping those tests there would leave them unrun where it counts.
 *
 * {@link dropRootForGood} makes the current test process `nobody` (real and effective uid and
 * gid, no supplementary groups), for good: the library checks readability with access(2),
 * which looks at the REAL uid, so a temporary seteuid would not do. That is safe because
 * vitest's `forks` pool runs every test file in a fresh process (checked), and coverage still
 * counts: the worker hands its V8 coverage to the main process over IPC. Call it once the
 * fixtures exist (owned by `nobody`, see {@link giveToNobody}, so the file can clean them up).
 * Not root: nothing to drop; a mode-000 file is just as unreadable to the current user.
 *
 * The child-process variant, with the built package as `nobody`, is
 * test/stores/unreadable-as-user.test.ts.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, chownSync, copyFileSync, lstatSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

/** `nobody`'s uid and gid on Debian and most Linux systems. */
export const NOBODY = 65534;

export const isRoot = process.getuid?.() === 0;

/** Hands `path` (recursively) to `nobody`, when root. */
export function giveToNobody(path: string): void {
  if (!isRoot) return;
  chownSync(path, NOBODY, NOBODY);
  if (lstatSync(path).isDirectory()) for (const name of readdirSync(path)) giveToNobody(join(path, name));
}

/** Turns this test process into `nobody` for the rest of its life, when root; see the module doc. */
export function dropRootForGood(): void {
  if (!isRoot) return;
  if (!process.setuid || !process.setgid || !process.setgroups) throw new Error('dropRootForGood needs a forked test process (vitest pool `forks`)');
  process.setgroups([]);
  process.setgid(NOBODY);
  process.setuid(NOBODY);
  if (process.getuid?.() !== NOBODY || process.geteuid?.() !== NOBODY) throw new Error('could not drop root');
}

/**
 * A node binary `nobody` can run: this one, unless it sits where `nobody` cannot reach it (CI's
 * Node 22, 24 and 26 live under root's 0700 home); then a copy of it in `dir`.
 */
export function nodeForNobody(dir: string): string {
  if (!isRoot) return process.execPath;
  if (spawnSync(process.execPath, ['--version'], { uid: NOBODY, gid: NOBODY }).status === 0) return process.execPath;
  const copy = join(dir, 'node');
  copyFileSync(process.execPath, copy);
  chmodSync(copy, 0o755);
  return copy;
}
