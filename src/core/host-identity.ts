/**
 * Which "host" a pid belongs to, for every owner check of this library: temp file names
 * (`atomic-write.ts`), lock files (`json-state-file.ts`, `lock-breaker.ts`, the journal's
 * destination and staging locks) and the owners of journal records and Hub publishes. An owner of
 * our host is judged by its pid (`process.kill(pid, 0)`: gone means dead, at once); another
 * host's only by age, since its pids say nothing here.
 *
 * **Same host means same pid namespace.** A pid means something only in its pid namespace. Two
 * containers on one machine that share a hostname (Docker's `--network host` gives a container
 * the machine's) but not a pid namespace (the default) cannot see each other's processes: judged
 * by hostname alone, container A found container B's live upload dead, swept B's temp file from
 * under it and broke B's lock (two writers to one destination). So the identity is
 * - `hostname()` in the machine's initial pid namespace, and where the namespace cannot be read
 *   (macOS, Windows, a Linux without /proc): what it was before, so nothing changes outside
 *   containers, and the locks and temp files of earlier versions are still judged by pid there;
 * - `<hostname>/pidns:<inode>` in any other pid namespace (a container), e.g.
 *   `trainer/pidns:4026532451`: two containers sharing a hostname are two hosts to each other, and
 *   the processes of one container (sharing its namespace) one host.
 *
 * **What reads as another host's now** (judged by age, never by pid: the safe direction, a live
 * owner is never taken for dead, a dead one waits longer), inside a container only:
 * - what an earlier version wrote there (plain hostname): temp files go after a day
 *   (`removeStaleTempFiles`; the journal directory's sweep takes any after a minute), the state
 *   file's lock after `lockStaleMs` (30 s), a destination lock once not refreshed for 5
 *   minutes, a staging lock, a journal record or log (`ownerStaleMs`) and a Hub publish
 *   (`staleUploadMs`) once not refreshed for 10 minutes;
 * - what a restarted container's predecessor left, when the new pid namespace got another inode:
 *   the same waits apply.
 *
 * **A restarted container may be this host again.** The kernel hands out a freed namespace inode
 * again (fs/proc/generic.c, `proc_alloc_inum`: an IDA, lowest free number first; two `unshare
 * --pid` in a row on a quiet machine get the same one), so a container restarted with its
 * hostname kept can have its predecessor's identity, and run its Node process as pid 1 again.
 * That is why an owner of this process's own pid is judged by time, not by pid: a file last
 * written before this process started is a predecessor's (`touchedByThisProcess` in
 * atomic-write.ts), as it was before this module.
 *
 * Users read this in docs/resume.md ("Which processes are this host's").
 *
 * @module
 */
import { readlinkSync } from 'node:fs';
import { hostname } from 'node:os';

/**
 * What `/proc/self/ns/pid` points to in the machine's initial pid namespace. The kernel gives
 * the initial namespaces fixed inode numbers: `PROC_PID_INIT_INO = 0xEFFFFFFCU` (4026531836) in
 * include/linux/proc_ns.h, since Linux 3.8 (commit 98f842e675f9, "proc: Use fixed inode numbers
 * for the initial namespaces"; systemd's src/basic/linux/nsfs.h repeats it).
 */
export const INITIAL_PID_NAMESPACE = 'pid:[4026531836]';

/**
 * Reads what `/proc/self/ns/pid` points to (`pid:[<inode>]`), or `undefined` where it cannot be
 * read (not Linux, no /proc).
 *
 * @example
 * ```ts
 * readPidNamespace(); // 'pid:[4026531836]' outside containers on Linux
 * ```
 */
export function readPidNamespace(): string | undefined {
  try {
    return readlinkSync('/proc/self/ns/pid');
  } catch {
    return undefined;
  }
}

/**
 * The owner identity of a process on host `host` whose pid namespace link reads `pidNamespace`
 * (see the module comment): the host name in the initial namespace or when unknown, the host
 * name and the namespace's inode otherwise.
 *
 * @example
 * ```ts
 * ownerHostOf('trainer', 'pid:[4026531836]'); // 'trainer'
 * ownerHostOf('trainer', 'pid:[4026532451]'); // 'trainer/pidns:4026532451'
 * ownerHostOf('trainer', undefined); // 'trainer' (macOS, Windows)
 * ```
 */
export function ownerHostOf(host: string, pidNamespace: string | undefined): string {
  const inode = pidNamespace === undefined || pidNamespace === INITIAL_PID_NAMESPACE ? undefined : /^pid:\[(\d+)\]$/.exec(pidNamespace)?.[1];
  return inode === undefined ? host : `${host}/pidns:${inode}`;
}

let thisOwnerHost: string | undefined;

/**
 * This process's host for ownership: what it writes as the `host` of a lock or record it owns
 * (hashed into its temp file names), and what an owner's `host` must equal for its pid to be
 * checked. Read once, on first use (one `hostname` and one `readlink`): neither changes under a
 * running process in a way its earlier locks could follow.
 *
 * @example
 * ```ts
 * const gone = owner.host === ownerHost() && !processAlive(owner.pid);
 * ```
 */
export function ownerHost(): string {
  return (thisOwnerHost ??= ownerHostOf(hostname(), readPidNamespace()));
}
