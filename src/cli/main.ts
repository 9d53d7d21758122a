// The `artifact-uploader` bin: runs the CLI with the real process's I/O (see program.ts).
import { EXIT_CODES } from './exit-codes.js';
import { asksForHelpOrVersion, runCli } from './program.js';

/** 128 + SIGPIPE: the status a Unix tool killed by a closed pipe exits with (`yes | head`). */
const EXIT_BROKEN_PIPE = 141;

const argv = process.argv.slice(2);

// Node ignores SIGPIPE, so a write into a closed pipe surfaces as an EPIPE 'error' event, which
// unhandled kills the process with a stack trace. End quietly instead, as other tools do.
// Any other write error (ENOSPC: `> result.json` on a full disk, EIO) loses the result: say so
// in one line on stderr and exit 1 (or the command's own failure code), without a stack trace.
process.stdout.on('error', (error: NodeJS.ErrnoException) => {
  // Help and version only print: a reader that stops early (`--help | head`) got all it wanted.
  // Worked out here, on a closed pipe only: it builds the program a second time.
  if (error.code === 'EPIPE') process.exit(asksForHelpOrVersion(argv) ? 0 : EXIT_BROKEN_PIPE);
  process.stderr.write(`error: stdout cannot be written (${error.message}); the result of this command is lost. Free space on the disk stdout goes to, or write it elsewhere, and run again.\n`);
  process.exit(typeof process.exitCode === 'number' && process.exitCode !== 0 ? process.exitCode : 1);
});
// A stderr that cannot be written (closed pipe, full disk under `2>> job.log`) leaves nowhere to
// report anything, and must not stop an upload over a log line: keep going, the exit code tells.
process.stderr.on('error', () => undefined);

// The first SIGINT/SIGTERM stops the command, which cleans up on its way out (runCli says so).
// A second one is the user saying "now" (docker compose's "press Ctrl+C again to force", and the
// Command Line Interface Guidelines, clig.dev: a second Ctrl-C skips a long cleanup). It
// used to kill the process the default way, mid-cleanup, without a word of what was left; now
// runCli reports that (forceSignal) and the process exits at once, without waiting for cleanup.
const interrupt = new AbortController();
const force = new AbortController();
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    if (!interrupt.signal.aborted) return interrupt.abort(new Error(`received ${signal}`));
    force.abort(new Error(`received ${signal}`));
    process.exit(EXIT_CODES.INTERRUPTED);
  });
}
process.exitCode = await runCli(argv, {
  stdout: process.stdout,
  stderr: process.stderr,
  env: process.env,
  isTTY: process.stderr.isTTY === true,
  columns: process.stderr.columns,
  signal: interrupt.signal,
  forceSignal: force.signal,
});
