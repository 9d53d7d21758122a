/**
 * Runs one test server so that it cannot outlive the process that started it, however that
 * process ends (SIGKILL included): `node server-watchdog.mjs <command> [args...]`.
 *
 * The starter spawns this script detached, so the script leads a process group of its own, and
 * the server (started here, not detached) and every worker it forks (gunicorn, uvicorn) stay in
 * that group. The starter holds the write end of this script's stdin and never writes to it: when
 * the starter exits, the kernel closes that pipe and stdin ends. Then, or on SIGTERM, SIGINT or
 * SIGHUP, the whole group gets SIGTERM, and SIGKILL 5 s later if the server is still there.
 * Plain JavaScript, run by `node` itself: no loader in between that could fail first.
 *
 * The exit code is the server's (128 + signal number when a signal ended it). Output goes to
 * the starter's stdout and stderr (the server's log file).
 */
import { spawn } from 'node:child_process';
import { constants } from 'node:os';

const [command, ...args] = process.argv.slice(2);
if (!command) {
  process.stderr.write('usage: node server-watchdog.mjs <command> [args...]\n');
  process.exit(2);
}

const starter = process.ppid;
const server = spawn(command, args, { stdio: ['ignore', 'inherit', 'inherit'] });
let stopping = false;

/** Signals this script's process group: the server, its workers, and this script (which survives SIGTERM, see below). */
function signalGroup(signal) {
  try {
    process.kill(-process.pid, signal);
  } catch {
    // The group is empty already.
  }
}

function stop(reason) {
  if (stopping) return;
  stopping = true;
  process.stderr.write(`[watchdog] ${reason}: stopping ${command} (pid ${server.pid}) and its process group\n`);
  signalGroup('SIGTERM');
  // This script dies with the group then; the starter is gone or no longer waits for a code.
  setTimeout(() => signalGroup('SIGKILL'), 5000);
}

server.on('error', (error) => {
  process.stderr.write(`[watchdog] cannot start ${command}: ${error.message}\n`);
  process.exit(127);
});
server.on('exit', (code, signal) => {
  // Workers the server left behind go with it (they got SIGTERM too if we are stopping).
  if (!stopping) signalGroup('SIGTERM');
  process.exit(code ?? 128 + (constants.signals[signal] ?? 0));
});

// A handler for each signal keeps this script alive when it signals its own group.
for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP']) process.on(signal, () => stop(signal));
process.stdin.on('data', () => {});
process.stdin.on('end', () => stop('the test process is gone (stdin closed)'));
process.stdin.on('error', () => stop('the test process is gone (stdin failed)'));
// In case stdin is not the starter's pipe (a caller that passed its own): the starter's death re-parents this script.
setInterval(() => {
  if (process.ppid !== starter) stop('the test process is gone (re-parented)');
}, 1000).unref();
