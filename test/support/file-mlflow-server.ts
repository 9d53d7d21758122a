/**
 * An `mlflow server` of the test venv that one test file starts for itself, beside the global
 * setup's, for the few tests that need a server set up another way (an artifacts destination on
 * Azurite or the GCS emulator): the whole suite does not pay for its start. It runs under the
 * same watchdog as the global setup's servers (test/support/processes.ts), so it cannot outlive
 * the test process, and the file stops it when it ends.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll } from 'vitest';
import { mlflowServerSpec, startServer, type ManagedProcess } from './processes.js';
import { servers } from './servers.js';

/**
 * Starts `mlflow server <args>` (sqlite backend, one worker, on a free port of 127.0.0.1) before
 * the file's tests, with `env` added, and stops it after them. Call inside `describeWithServers`.
 *
 * @example
 * ```ts
 * const server = useFileMlflowServer('gcs-proxy', () => ['--serve-artifacts', '--artifacts-destination', 'gs://b/p'], () => ({ STORAGE_EMULATOR_HOST: servers().gcs.emulatorHost }));
 * it('...', () => fetch(`${server.url}/health`));
 * ```
 */
export function useFileMlflowServer(name: string, args: () => string[], env: () => Record<string, string> = () => ({})): { readonly url: string } {
  let url: string | undefined;
  const started: ManagedProcess[] = [];
  beforeAll(async () => {
    const dir = mkdtempSync(join(tmpdir(), `au-mlflow-${name}-`));
    const { port } = await startServer({
      name: `mlflow-${name}`,
      ...mlflowServerSpec(join(servers().venv, 'bin', 'mlflow'), dir, args(), env()),
      logDir: dir,
      cwd: dir,
      onStart: (proc) => started.push(proc),
    });
    url = `http://127.0.0.1:${port}`;
  }, 180_000);
  afterAll(async () => {
    await Promise.all(started.map((proc) => proc.stop()));
  }, 30_000);
  return {
    get url() {
      if (url === undefined) throw new Error(`the ${name} mlflow server has not started`);
      return url;
    },
  };
}
