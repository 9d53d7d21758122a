/**
 * The tracking client for a resolved connection: {@link MlflowRestClient} for an
 * `http(s)://` tracking server, {@link FileTrackingStore} for a local `file:` store (the
 * embedded `./mlruns` default). Both implement {@link TrackingClient}.
 *
 * @module
 */
import { FileTrackingStore } from './file-store.js';
import { resolveMlflowConnection, type MlflowConnection, type MlflowConnectionOptions } from './connection.js';
import { MlflowRestClient } from './rest-tracking-client.js';
import type { TrackingClient } from './tracking-types.js';

/**
 * Picks the client for a connection (or resolves one from options and the environment:
 * `trackingUri`, else `MLFLOW_TRACKING_URI`, else `file:./mlruns`).
 *
 * @example
 * ```ts
 * const client = createTrackingClient(resolveMlflowConnection());
 * client.describe(); // 'local MLflow FileStore /work/mlruns' when nothing is configured
 * const sameThing = createTrackingClient({ trackingUri: 'http://127.0.0.1:5000' });
 * ```
 */
export function createTrackingClient(connection: MlflowConnection | MlflowConnectionOptions = {}): TrackingClient {
  const conn = isConnection(connection) ? connection : resolveMlflowConnection(connection);
  if (conn.kind === 'rest') return new MlflowRestClient(conn);
  return new FileTrackingStore({ root: conn.root, displayUri: conn.displayUri, logger: conn.logger });
}

function isConnection(value: MlflowConnection | MlflowConnectionOptions): value is MlflowConnection {
  const kind = (value as { kind?: unknown }).kind;
  return (kind === 'rest' || kind === 'file') && 'retry' in value;
}
