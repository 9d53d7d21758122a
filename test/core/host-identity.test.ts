/**
 * "Same host" means "same pid namespace": the owner checks against a real process in another
 * pid namespace sharing this machine's hostname, as a container started with `--network host`
 * is. The child runs under `unshare --pid --fork --mount-proc` (with `--user --map-root-user`
 * when not root) and is given, through the namespace's `ns_last_pid`, a pid that no process has
 * here: judged by hostname alone, its live temp file and locks read as a dead process's.
 *
 * The child runs the code under test bundled with esbuild (as test/uploader/journal.test.ts
 * does). Without `unshare` the test is skipped with a loud warning locally and FAILS when
 * CI=true, like the real-server tests (test/support/servers.ts).
 */
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { build } from 'esbuild';
import * as z from 'zod';
import { beforeAll, describe, expect, it } from 'vitest';
import { removeDeadOwnersTempFiles } from '../../src/core/atomic-write.js';
import { INITIAL_PID_NAMESPACE, ownerHost, ownerHostOf, readPidNamespace } from '../../src/core/host-identity.js';
import { JsonStateFile } from '../../src/core/json-state-file.js';
import { sweepDestinationLocks } from '../../src/uploader/destination-lock.js';

describe('owner host identity', () => {
  it('is the hostname in the initial pid namespace or where it cannot be read, hostname and namespace inode elsewhere', () => {
    expect(ownerHostOf('trainer', INITIAL_PID_NAMESPACE)).toBe('trainer');
    expect(ownerHostOf('trainer', undefined)).toBe('trainer');
    expect(ownerHostOf('trainer', 'pid:[4026532451]')).toBe('trainer/pidns:4026532451');
    // Not a pid namespace link (an odd /proc): what it was before.
    expect(ownerHostOf('trainer', 'garbage')).toBe('trainer');
  });

  it('is this process\'s own: read from /proc/self/ns/pid on Linux, once', () => {
    const namespace = readPidNamespace();
    if (process.platform === 'linux') expect(namespace).toMatch(/^pid:\[\d+\]$/);
    expect(ownerHost()).toBe(ownerHostOf(hostname(), namespace));
  });
});

const isCi = process.env.CI === 'true' || process.env.CI === '1';
const isRoot = process.getuid?.() === 0;
/** `unshare` with what this user needs to own a new pid namespace (and set its next pid). */
const UNSHARE = ['unshare', ...(isRoot ? [] : ['--user', '--map-root-user']), '--pid', '--fork', '--mount-proc'];

/** Why a child cannot be run in a new pid namespace here, or `undefined` when it can. */
function unshareUnavailable(): string | undefined {
  const probe = spawnSync(UNSHARE[0]!, [...UNSHARE.slice(1), 'sh', '-c', 'echo 299 > /proc/sys/kernel/ns_last_pid'], { encoding: 'utf8' });
  if (probe.error) return probe.error.message;
  return probe.status === 0 ? undefined : `${UNSHARE.join(' ')} exited ${probe.status}: ${probe.stderr.trim()}`;
}

/** A describe block that needs `unshare` (see the module comment). */
function describeWithPidNamespaces(name: string, fn: () => void): void {
  const reason = process.platform === 'linux' ? unshareUnavailable() : `not Linux (${process.platform})`;
  if (reason === undefined) {
    describe(name, fn);
    return;
  }
  if (isCi) {
    describe(name, () => {
      it('needs a new pid namespace (unshare)', () => {
        throw new Error(`CI=true: the pid namespace tests must run, but unshare is unavailable: ${reason}`);
      });
    });
    return;
  }
  process.stderr.write(`\n!!! SKIPPED "${name}": cannot run a child in a new pid namespace (${reason})\n`);
  describe.skip(name, fn);
}

/** The pid of a process that has exited here (spawned, waited for). */
const deadPid = () => spawnSync(process.execPath, ['-e', '']).pid!;

/** What the child holds, all at once, until told to let go (one line on its stdin). */
const CHILD = `
const [bundle, dir, journalDir, stateFilePath] = process.argv.slice(1);
const { tempFileName, holdDestinationLock, stateFile } = await import(bundle);
const { writeFileSync } = await import('node:fs');
const { join } = await import('node:path');
// A temp file being written (the file: store's, a conversion's: named by its owner).
writeFileSync(join(dir, tempFileName('x.tmp-')), 'in progress');
// A destination lock: this process uploads an archive and its manifest to one destination.
const lock = await holdDestinationLock(journalDir, 'the destination');
// The state file's lock, held while the change is made.
const letGo = new Promise((resolve) => process.stdin.once('data', resolve));
await stateFile(stateFilePath).update(async () => {
  process.stdout.write(JSON.stringify({ pid: process.pid }) + '\\n');
  await letGo;
  return { state: { writtenBy: 'child' }, result: undefined };
});
await lock.release();
`;

let bundle: string;

describeWithPidNamespaces('owners in another pid namespace sharing the hostname (a container with --network host)', () => {
  beforeAll(async () => {
    bundle = join(mkdtempSync(join(tmpdir(), 'au-pidns-bundle-')), 'owners.mjs');
    const root = resolve(__dirname, '../..');
    await build({
      stdin: {
        contents: [
          "export { tempFileName } from './src/core/atomic-write.ts';",
          "export { holdDestinationLock } from './src/uploader/destination-lock.ts';",
          "import * as z from 'zod';",
          "import { JsonStateFile } from './src/core/json-state-file.ts';",
          'export const stateFile = (path) => new JsonStateFile(path, async () => z.record(z.string(), z.unknown()), { empty: () => ({}) });',
        ].join('\n'),
        resolveDir: root,
        loader: 'ts',
      },
      bundle: true,
      platform: 'node',
      format: 'esm',
      target: 'node20',
      outfile: bundle,
      absWorkingDir: root,
      logLevel: 'silent',
    });
  }, 60_000);

  it('are not judged by their pid here: their live temp file, destination lock and state file lock stay', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'au-pidns-'));
    const journalDir = join(dir, 'journal');
    const stateFilePath = join(dir, 'state.json');
    // The child's pid in its namespace: one that no process has in ours.
    const pid = deadPid();
    const script = `echo ${pid - 1} > /proc/sys/kernel/ns_last_pid && "$0" --input-type=module -e "$1" "$2" "$3" "$4" "$5"; exit $?`;
    const child: ChildProcessWithoutNullStreams = spawn(UNSHARE[0]!, [...UNSHARE.slice(1), 'sh', '-c', script, process.execPath, CHILD, pathToFileURL(bundle).href, dir, journalDir, stateFilePath]);
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const exited = new Promise<number | null>((resolveExit) => child.on('close', resolveExit));
    // The barrier: the child holds all three once it reported.
    const reported = await new Promise<{ pid: number }>((resolveLine, reject) => {
      let out = '';
      child.stdout.on('data', (chunk: Buffer) => {
        out += chunk.toString();
        if (out.includes('\n')) resolveLine(JSON.parse(out.split('\n')[0]!) as { pid: number });
      });
      void exited.then((code) => reject(new Error(`child exited ${code} before holding anything: ${stderr}`)));
    });
    try {
      expect(reported.pid).toBe(pid);
      const temp = readdirSync(dir).find((name) => name.startsWith('x.tmp-'))!;
      // (A broken lock's folder goes with it, once empty.)
      const destinationLocks = () => (existsSync(join(journalDir, 'destinations')) ? readdirSync(join(journalDir, 'destinations')).filter((name) => name.endsWith('.lock')) : []);
      expect(destinationLocks()).toHaveLength(1);
      const stateLock = readFileSync(`${stateFilePath}.lock`, 'utf8');

      // The sweeps and a waiting writer of this namespace: the child is alive, nothing of it goes.
      expect(await removeDeadOwnersTempFiles(dir, 'x.tmp-')).toEqual([]);
      expect(readFileSync(join(dir, temp), 'utf8')).toBe('in progress');
      await sweepDestinationLocks(journalDir);
      expect(destinationLocks()).toHaveLength(1);
      const ours = new JsonStateFile<Record<string, unknown>>(stateFilePath, async () => z.record(z.string(), z.unknown()), { empty: () => ({}) });
      await ours.breakStaleLock();
      expect(readFileSync(`${stateFilePath}.lock`, 'utf8')).toBe(stateLock);
    } finally {
      child.stdin.end('go\n');
    }
    expect(await exited).toBe(0);
    // Its change went through under the lock it kept, and it let go of everything it held.
    expect(JSON.parse(readFileSync(stateFilePath, 'utf8'))).toEqual({ writtenBy: 'child' });
    expect(existsSync(`${stateFilePath}.lock`)).toBe(false);
    expect(existsSync(join(journalDir, 'destinations'))).toBe(false);
  });
});
