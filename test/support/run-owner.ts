/**
 * Who owns a test run's servers, temp dirs and checkout lock, told apart from a later process
 * that got the same pid: `<pid>:<start time>` (the start time in clock ticks since boot, field 22
 * of `/proc/<pid>/stat`; where there is no `/proc`, the pid alone and `?`).
 */
import { readFileSync } from 'node:fs';

/** Set in the environment of every process startProcess starts: the starter's {@link ownerId}. */
export const RUN_OWNER_VAR = 'ARTIFACT_UPLOADER_TEST_RUN_OWNER';

/** `<pid>:<start time>` of `pid` (this process by default), or undefined when no such process runs. */
export function ownerId(pid: number = process.pid): string | undefined {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT' && !procMounted()) return pidAlive(pid) ? `${pid}:?` : undefined;
    return undefined;
  }
  // The command name (field 2) is in parentheses and may hold spaces: count from the last ')'.
  const startTime = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  return `${pid}:${startTime}`;
}

/** Whether the process an {@link ownerId} names is still running (the same process, not a reused pid). */
export function ownerAlive(owner: string): boolean {
  const pid = Number(owner.split(':')[0]);
  return Number.isInteger(pid) && pid > 0 && ownerId(pid) === owner;
}

function procMounted(): boolean {
  try {
    readFileSync('/proc/self/stat');
    return true;
  } catch {
    return false;
  }
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
