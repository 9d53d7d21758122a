/**
 * Real child processes running the built package (dist/), for the crash tests: start one, wait
 * until it says it reached the point to kill it at, SIGKILL it. Nothing of the child's `finally`
 * blocks runs, exactly as with `kill -9` or the OOM killer.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** `dist/index.js` and `dist/cli.js` of this checkout (built by `npm run build`; `npm test` builds). */
export const DIST_INDEX = fileURLToPath(new URL('../../dist/index.js', import.meta.url));
export const DIST_CLI = fileURLToPath(new URL('../../dist/cli.js', import.meta.url));

export function assertBuilt(): void {
  if (!existsSync(DIST_INDEX) || !existsSync(DIST_CLI)) throw new Error('dist/ is missing: run `npm run build` (npm test does it)');
}

/**
 * A statement for a child's script that blocks its whole process (event loop included) for a
 * minute, so that it sits still, mid-write, until the test kills it.
 */
export const FREEZE = 'Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 60_000);';

export interface KillableChild {
  child: ChildProcess;
  pid: number;
  /** Writes `line` to the child's stdin (started with `stdin: true`): a barrier the test lifts. */
  send(line: string): void;
  /** Resolves when the child printed `line` on stdout (rejects when it exits first). */
  waitFor(line: string, timeoutMs?: number): Promise<void>;
  /** SIGKILL, and wait for the exit. */
  kill(): Promise<void>;
  output(): string;
}

/**
 * Starts `node --input-type=module -e <script>` (or `node <args>` when `script` is an array);
 * with `stdin`, its stdin is a pipe the test writes to ({@link KillableChild.send}).
 */
export function startChild(script: string | string[], options: { env?: NodeJS.ProcessEnv; cwd?: string; stdin?: boolean } = {}): KillableChild {
  const args = Array.isArray(script) ? script : ['--input-type=module', '-e', script];
  const child = spawn(process.execPath, args, { env: { ...process.env, ...options.env }, cwd: options.cwd, stdio: [options.stdin ? 'pipe' : 'ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return {
    child,
    pid: child.pid!,
    send: (line) => {
      if (!child.stdin) throw new Error('the child was started without stdin: true');
      child.stdin.write(`${line}\n`);
    },
    output: () => out,
    waitFor(line, timeoutMs = 60_000) {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`child did not print "${line}" in ${timeoutMs} ms:\n${out}`)), timeoutMs);
        const check = () => {
          if (out.split('\n').includes(line)) {
            clearTimeout(timer);
            resolve();
          }
        };
        child.stdout!.on('data', check);
        child.once('exit', (code, signal) => {
          clearTimeout(timer);
          if (!out.split('\n').includes(line)) reject(new Error(`child exited (${code ?? signal}) before "${line}":\n${out}`));
        });
        check();
      });
    },
    async kill() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    },
  };
}
