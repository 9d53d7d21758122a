/**
 * Running the CLI in-process (so coverage counts it) with captured stdout/stderr, a temp
 * working directory and an environment with nothing of the developer's in it.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { onTestFinished } from 'vitest';
import { runCli } from '../../src/cli/program.js';
import { tempDirEnv } from '../support/run-temp-root.js';

export interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
  /** stdout parsed as the one JSON document (fails the test when it is not exactly one). */
  json<T = Record<string, any>>(): T;
}

export interface CliOptions {
  env?: Record<string, string | undefined>;
  cwd?: string;
  isTTY?: boolean;
  signal?: AbortSignal;
}

/** A temp directory removed when the current test ends. */
export function tempDir(prefix = 'au-cli-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/**
 * A minimal environment: no MLFLOW_*, HF_* or ARTIFACT_UPLOADER_* of the developer's; HOME and
 * the temp dir are the test run's (so a spawned CLI's journal and temp files stay in its root).
 */
export function baseEnv(extra: Record<string, string | undefined> = {}): Record<string, string | undefined> {
  return { PATH: process.env.PATH, HOME: process.env.HOME, ...tempDirEnv(), USER: 'cli-tester', ...extra };
}

/** Runs `artifact-uploader <argv>` in-process. */
export async function cli(argv: string[], options: CliOptions = {}): Promise<CliRun> {
  let stdout = '';
  let stderr = '';
  const code = await runCli(argv, {
    stdout: { write: (text: string) => (stdout += text) },
    stderr: { write: (text: string) => (stderr += text) },
    env: options.env ?? baseEnv(),
    cwd: options.cwd,
    isTTY: options.isTTY,
    signal: options.signal,
  });
  return {
    code,
    stdout,
    stderr,
    json<T>() {
      const text = stdout.trim();
      if (!text.startsWith('{') || !text.endsWith('}')) throw new Error(`stdout is not one JSON document:\n${stdout}\n--- stderr ---\n${stderr}`);
      return JSON.parse(text) as T;
    },
  };
}
