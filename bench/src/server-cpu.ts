/**
 * The servers' own CPU time during a measurement: "the server is the limit" only counts when the
 * server's CPU says so. Each server the bench starts runs in its own process group, led by its
 * idle watchdog (test/support/server-watchdog.mjs; uvicorn's workers, the `mlflow server` wrapper
 * and moto all stay in it), so a server's CPU is the sum of user + system time over its group,
 * read from `/proc/<pid>/stat`, children that already exited and were reaped included (`cutime` +
 * `cstime`). Linux only; elsewhere nothing is recorded.
 *
 * Beside the CPU, the servers' wake-ups: voluntary context switches summed over every thread
 * (`/proc/<pid>/task/<tid>/status`), i.e. how often a server thread went to sleep for want of
 * work. A server that always finds a full socket reads the most per wake-up; more wake-ups per
 * GiB for the same bytes mean the client let its socket run dry (a thread that exited during
 * the measurement takes its count with it, so this is a floor).
 */
import { readdirSync, readFileSync } from 'node:fs';
import type { Measurement } from './measure.js';

/** Clock ticks per second of `/proc/<pid>/stat` times (`getconf CLK_TCK`, 100 on Linux). */
const CLOCK_TICKS = 100;

/**
 * The `/proc/<pid>/stat` fields (after the command name) of every process in the given process
 * groups (or with one of those pids), by pid; `undefined` where `/proc` cannot be read.
 */
function groupProcesses(groups: readonly number[]): Map<string, string[]> | undefined {
  if (groups.length === 0) return undefined;
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return undefined;
  }
  const wanted = new Set(groups);
  const found = new Map<string, string[]>();
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
    } catch {
      continue; // exited meanwhile
    }
    // The command name may hold spaces and parentheses: the fields start after the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (wanted.has(Number(fields[2])) || wanted.has(Number(entry))) found.set(entry, fields);
  }
  return found;
}

/**
 * CPU time (user + system) so far of every process in the given process groups (or with one of
 * those pids), ms; `undefined` where `/proc` cannot be read.
 */
export function processGroupCpuMs(groups: readonly number[]): number | undefined {
  const processes = groupProcesses(groups);
  if (!processes) return undefined;
  let ticks = 0;
  // utime, stime, cutime, cstime: fields 14-17 of proc(5), 11-14 here.
  for (const fields of processes.values()) ticks += Number(fields[11]) + Number(fields[12]) + Number(fields[13]) + Number(fields[14]);
  return (ticks * 1000) / CLOCK_TICKS;
}

/**
 * Voluntary context switches so far of every thread of every process in the given process
 * groups (or with one of those pids); `undefined` where `/proc` cannot be read.
 */
export function processGroupWakeups(groups: readonly number[]): number | undefined {
  const processes = groupProcesses(groups);
  if (!processes) return undefined;
  let switches = 0;
  for (const pid of processes.keys()) {
    let threads: string[];
    try {
      threads = readdirSync(`/proc/${pid}/task`);
    } catch {
      continue; // exited meanwhile
    }
    for (const thread of threads) {
      try {
        const status = readFileSync(`/proc/${pid}/task/${thread}/status`, 'utf8');
        switches += Number(/^voluntary_ctxt_switches:\s+(\d+)/m.exec(status)?.[1] ?? 0);
      } catch {
        // exited meanwhile
      }
    }
  }
  return switches;
}

/**
 * Runs one measurement and adds the CPU the given servers spent meanwhile (`serverCpuMs`) and
 * how often their threads slept (`serverWakeups`).
 */
export async function withServerCpu(groups: readonly number[], measure: () => Promise<Measurement>): Promise<Measurement> {
  const before = processGroupCpuMs(groups);
  const wakeupsBefore = processGroupWakeups(groups);
  const m = await measure();
  const after = processGroupCpuMs(groups);
  const wakeupsAfter = processGroupWakeups(groups);
  return {
    ...m,
    ...(before !== undefined && after !== undefined ? { serverCpuMs: after - before } : {}),
    ...(wakeupsBefore !== undefined && wakeupsAfter !== undefined ? { serverWakeups: wakeupsAfter - wakeupsBefore } : {}),
  };
}

/**
 * Waits until the given servers are idle: less than `idleMs` of CPU over one `intervalMs` step
 * (e.g. moto still storing the parts that had arrived when a client was killed), bounded by
 * `timeoutMs`. Returns at once where `/proc` cannot be read.
 */
export async function untilIdle(groups: readonly number[], options: { intervalMs?: number; idleMs?: number; timeoutMs?: number } = {}): Promise<void> {
  const { intervalMs = 200, idleMs = 10, timeoutMs = 20_000 } = options;
  let last = processGroupCpuMs(groups);
  if (last === undefined) return;
  for (const deadline = Date.now() + timeoutMs; Date.now() < deadline; ) {
    await new Promise((r) => setTimeout(r, intervalMs));
    const now = processGroupCpuMs(groups);
    if (now === undefined || now - last < idleMs) return;
    last = now;
  }
}
