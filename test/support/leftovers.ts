/**
 * What a test run that was killed half-way left behind, found and removed by the next run's
 * global setup. Each server's watchdog (test/support/server-watchdog.mjs) stops it when the run
 * dies, but a SIGKILL of the run's whole process tree takes the watchdogs too: their servers
 * then live on, re-parented to pid 1, and so do the run's temp dirs.
 * - Processes: every process startProcess starts carries `ARTIFACT_UPLOADER_TEST_RUN_OWNER`, its
 *   starter's pid and start time (run-owner.ts), in its environment (its children inherit it),
 *   so a process whose starter is gone is ours beyond doubt (a reused pid has another start
 *   time, and an unrelated process has no such variable). Linux only (`/proc`).
 * - Temp dirs: each run dir holds a {@link RUN_DIR_OWNER_FILE} naming its run. The run's temp
 *   root (run-temp-root.ts) is one, and everything the run's tests made in their temp dir is
 *   inside it; a run dir of a live run (another checkout's tests running now) is never touched.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ownerAlive, ownerId, RUN_OWNER_VAR } from './run-owner.js';

/** The file in a run dir that names the run owning it. */
export const RUN_DIR_OWNER_FILE = '.au-test-run-owner';

/** A new temp dir `<parent>/<prefix>XXXXXX` marked as this run's, so a later run removes it if this one is killed. */
export function makeRunDir(prefix: string, parent: string = tmpdir()): string {
  const dir = mkdtempSync(join(parent, prefix));
  writeFileSync(join(dir, RUN_DIR_OWNER_FILE), ownerId() ?? String(process.pid));
  return dir;
}

/**
 * SIGKILLs the processes of test runs that are gone and removes their run dirs (those made by
 * {@link makeRunDir} in `parent` with one of `prefixes`). Returns what it removed, for the log.
 */
export function sweepLeftovers(prefixes: readonly string[], parent: string = tmpdir()): { processes: number[]; dirs: string[] } {
  const processes = leftoverProcesses();
  for (const pid of processes) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // Gone meanwhile.
    }
  }
  const dirs: string[] = [];
  for (const entry of readdirSync(parent)) {
    if (!prefixes.some((prefix) => entry.startsWith(prefix))) continue;
    const dir = join(parent, entry);
    let owner: string;
    try {
      owner = readFileSync(join(dir, RUN_DIR_OWNER_FILE), 'utf8').trim();
    } catch {
      continue; // Not marked (another user's, or made before marking began): not ours to judge.
    }
    if (ownerAlive(owner)) continue;
    rmSync(dir, { recursive: true, force: true });
    dirs.push(dir);
  }
  return { processes, dirs };
}

/** Pids of processes started by startProcess (or their children) for a starter that is no longer running. */
function leftoverProcesses(): number[] {
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return [];
  }
  const marker = `${RUN_OWNER_VAR}=`;
  const found: number[] = [];
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue;
    let environ: string;
    try {
      environ = readFileSync(`/proc/${entry}/environ`, 'utf8');
    } catch {
      continue; // Exited meanwhile, or another user's.
    }
    const owner = environ.split('\0').find((variable) => variable.startsWith(marker))?.slice(marker.length);
    if (owner && !ownerAlive(owner)) found.push(Number(entry));
  }
  return found;
}
