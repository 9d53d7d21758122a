/**
 * Accessors for the real servers started by the global setup. Wrap server tests in
 * {@link describeWithServers}: without the servers they are skipped with a loud warning
 * locally, and they FAIL when CI=true (CI must never pass by skipping them).
 */
import { describe, inject, it } from 'vitest';
import type { ServersInfo } from './servers-types.js';

type Available = Extract<ServersInfo, { available: true }>;

const isCi = process.env.CI === 'true' || process.env.CI === '1';

export function servers(): Available {
  const info = inject('servers');
  if (!info?.available) throw new Error(`real test servers are not available: ${info ? info.reason : 'global setup did not run'}`);
  return info;
}

export function serversAvailable(): boolean {
  return inject('servers')?.available === true;
}

/** `mlflow server --serve-artifacts` with a local artifacts destination. */
export function mlflowServer(): Available['plain'] {
  return servers().plain;
}

/** `mlflow server --serve-artifacts` proxying to S3 on moto (multipart upload available). */
export function mlflowS3Server(): Available['s3'] {
  return servers().s3;
}

/** `mlflow server --no-serve-artifacts` with an `s3://` artifact root on moto. */
export function mlflowDirectS3Server(): Available['direct'] {
  return servers().direct;
}

/** `mlflow server --no-serve-artifacts` with a `gs://` artifact root on gcp-storage-emulator. */
export function mlflowGcsServer(): Available['gcs'] {
  return servers().gcs;
}

/** Azurite, and `mlflow server --no-serve-artifacts` with a `wasbs://` artifact root on it. */
export function mlflowAzureServer(): Available['azure'] {
  return servers().azure;
}

/** A describe block for tests that need the real servers. */
export function describeWithServers(name: string, fn: () => void): void {
  if (serversAvailable()) {
    describe(name, fn);
    return;
  }
  const info = inject('servers');
  const reason = info && !info.available ? info.reason : 'global setup did not run';
  if (isCi) {
    describe(name, () => {
      it('needs the real test servers', () => {
        throw new Error(`CI=true: real-server tests must run, but the servers are unavailable: ${reason}`);
      });
    });
    return;
  }
  process.stderr.write(`\n!!! SKIPPED "${name}": real test servers unavailable (${reason})\n`);
  describe.skip(name, fn);
}
