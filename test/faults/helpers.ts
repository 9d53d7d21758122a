/**
 * Helpers shared by the fault, bad-input and secrets suites: runs created over REST, temp dirs
 * removed after each test, a logger that keeps every line, and the uploader options every
 * suite wants (fast retries, an empty environment, no config file from the working dir).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach } from 'vitest';
import type { Logger } from '../../src/core/logger.js';
import type { RetryOptions } from '../../src/core/retry.js';

const tempDirs: string[] = [];

/** A temp dir removed after the current test. */
export async function tempDir(prefix = 'au-faults-'): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  tempDirs.push(dir);
  return dir;
}

afterEach(async () => {
  await Promise.all(tempDirs.splice(0).map((d) => rm(d, { recursive: true, force: true })));
});

/** Marks a run deleted (MLflow keeps it, lifecycle_stage = deleted). */
export async function deleteRun(trackingUrl: string, runId: string): Promise<void> {
  const res = await fetch(`${trackingUrl}/api/2.0/mlflow/runs/delete`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ run_id: runId }),
  });
  if (!res.ok) throw new Error(`runs/delete: ${res.status} ${await res.text()}`);
}

/** Every artifact path of a run (recursive listing over REST). */
export async function listRunArtifacts(trackingUrl: string, runId: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (path: string): Promise<void> => {
    const url = new URL(`${trackingUrl}/api/2.0/mlflow/artifacts/list`);
    url.searchParams.set('run_id', runId);
    if (path) url.searchParams.set('path', path);
    const res = await fetch(url);
    if (!res.ok) throw new Error(`artifacts/list: ${res.status} ${await res.text()}`);
    const body = (await res.json()) as { files?: Array<{ path: string; is_dir: boolean }> };
    for (const f of body.files ?? []) {
      if (f.is_dir) await walk(f.path);
      else out.push(f.path);
    }
  };
  await walk('');
  return out.sort();
}

export interface CapturingLogger extends Logger {
  lines: string[];
}

/** A logger that keeps every line of every level, fields included. */
export function captureLogger(): CapturingLogger {
  const lines: string[] = [];
  const log = (level: string) => (message: string, fields?: Record<string, unknown>) => {
    lines.push(`${level} ${message}${fields ? ` ${JSON.stringify(fields)}` : ''}`);
  };
  return { lines, debug: log('debug'), info: log('info'), warn: log('warn'), error: log('error') };
}

/** Retries without sleeping, so fault tests take seconds, not minutes. */
export const FAST_RETRY: RetryOptions = { maxRetries: 10, backoffFactor: 0, backoffJitter: 0 };
