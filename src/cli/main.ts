// The `artifact-uploader` bin: runs the CLI with the real process's I/O (see program.ts).
import { runCli } from './program.js';

const controller = new AbortController();
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => controller.abort(new Error(`received ${signal}`)));
process.exitCode = await runCli(process.argv.slice(2), { stdout: process.stdout, stderr: process.stderr, env: process.env, isTTY: process.stderr.isTTY === true, columns: process.stderr.columns, signal: controller.signal });
