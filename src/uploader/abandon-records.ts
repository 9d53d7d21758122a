/**
 * Giving up the uploads of journal records that are removed without being resumed
 * (`artifact-uploader resume clear`): each record's run is resolved the way an upload resolves
 * it ({@link resolveUploadTarget}: a connection to the record's tracking target, `runs/get`, the
 * store for the run's artifact URI), and its store abandons the upload
 * ({@link ArtifactStore.abandonUpload}: the multipart upload aborted, the session cancelled), so
 * that clearing the journal leaves nothing billed. Records are grouped by target and run: each
 * run is looked up once. Nothing here throws: what could not be given up is reported per record
 * (`left`, with the reason), for the caller to say.
 *
 * The environment's MLflow credentials go only to the tracking server the caller names
 * (`trackingUri`, `connection`): the journal, not the user, names the other servers, and a token
 * meant for one server is not shown to another. Those are asked without credentials; one that
 * refuses (401, 403) the run's lookup or the abort through its proxy is reported `refused`, for
 * the caller to keep its records.
 *
 * @module
 */
import { AbortedError, HttpStatusError, InvalidArgumentError } from '../core/errors.js';
import { errorText, type Logger } from '../core/logger.js';
import { envString, type Env } from '../core/env.js';
import type { RetryOptions } from '../core/retry.js';
import { resolveMlflowConnection, type MlflowConnection } from '../mlflow/connection.js';
import { isTrackingUriScheme, trackingUriScheme } from '../mlflow/tracking-uri.js';
import type { AbandonedUpload, ArtifactStore, EarlierUpload } from '../stores/artifact-store.js';
import { resolveArtifactStore } from '../stores/resolve.js';
import { hasUnfinishedUpload, journalTarget, type JournalRecord } from './journal.js';
import { ownConnection, resolveUploadTarget } from './target.js';

/** What became of the upload of one removed record. */
export type AbandonOutcome =
  /** The store gave it up (aborted the multipart upload, cancelled the session). */
  | { upload: 'aborted' }
  /** It is still on the store: `reason` says why (redacted). */
  | { upload: 'left'; reason: string }
  /**
   * It is still on the store: its tracking server (`server`, not the one the caller named)
   * refused the run's lookup, or the abort through its artifact proxy, without credentials,
   * which are withheld from it. Asked again with that server as the tracking URI and its
   * credentials, it can be given up.
   */
  | { upload: 'refused'; reason: string; server: string }
  /** The record named no unfinished upload (a finished file, or nothing sent yet). */
  | { upload: 'none' };

/** Options of {@link abandonRecordUploads}. */
export interface AbandonRecordsOptions {
  /**
   * Environment: the store settings, as for an upload, and the `MLFLOW_TRACKING_*` credentials,
   * for the named server only (see `trackingUri`).
   */
  env: Env;
  logger: Logger;
  /** Cuts the lookups off (SIGINT); the records not reached yet are reported `left`. */
  signal?: AbortSignal | undefined;
  /** @default the library's retry policy */
  retry?: RetryOptions | undefined;
  /**
   * The tracking server the caller names: the one the environment's MLflow credentials
   * (`MLFLOW_TRACKING_TOKEN`, `MLFLOW_TRACKING_USERNAME`/`PASSWORD`, `~/.mlflow/credentials`, and
   * userinfo in this URI) are sent to; records of another `http(s)` server are looked up without
   * them. Also the one connected to for a record whose target is a store's artifact URI (not a
   * tracking URI): its store is made from that URI directly, over this connection.
   * @default MLFLOW_TRACKING_URI, else ./mlruns (as for an upload)
   */
  trackingUri?: string | undefined;
  /**
   * Epoch ms the records were taken from the journal: a record marked as creating a multipart
   * upload (`creatingMultipart`) has the uploads in progress under its key initiated before it,
   * and within a day of the mark, given up (`EarlierUpload.lostUpload`).
   */
  takenOverAt: number;
  /**
   * A connection already open to one tracking server (an upload's own, with the credentials,
   * TLS settings and retry policy it was made with), used for the records of that server instead
   * of one made from `env`: credentials given in the tracking URI's userinfo, in
   * `MLFLOW_TRACKING_URI`'s, or to an active run's connection are not in a record's target (the
   * journal strips them). Not closed here.
   */
  connection?: MlflowConnection | undefined;
}

/**
 * The upload a record names, as the store's {@link ArtifactStore.abandonUpload} reads it.
 *
 * @example
 * ```ts
 * const earlier = earlierUploadOf(record, Date.now());
 * ```
 */
export function earlierUploadOf(record: JournalRecord, takenOverAt: number): EarlierUpload {
  return {
    ...(record.multipart ? { previous: record.multipart } : {}),
    ...(record.resumeToken ? { token: record.resumeToken } : {}),
    ...(record.creatingMultipart !== undefined ? { lostUpload: { takenOverAt, markedAt: record.creatingMultipart } } : {}),
  };
}

/**
 * Gives up the uploads the records name, one run lookup per (target, run). Returns what became
 * of each record's upload, in the order given. Never throws: a run that cannot be resolved (the
 * server down, the run gone for good, no credentials) leaves its records' uploads `left`, with
 * the reason; so does an interrupt, for the records not reached. A run marked deleted since is
 * resolved all the same: giving its upload up logs nothing to it.
 *
 * @example
 * ```ts
 * const outcomes = await abandonRecordUploads(records, { env: process.env, logger, takenOverAt: Date.now() });
 * ```
 */
export async function abandonRecordUploads(records: readonly JournalRecord[], options: AbandonRecordsOptions): Promise<AbandonOutcome[]> {
  const outcomes: AbandonOutcome[] = records.map((r) => (hasUnfinishedUpload(r) ? { upload: 'left', reason: 'not given up' } : { upload: 'none' }));
  const groups = new Map<string, number[]>();
  records.forEach((record, i) => {
    if (!hasUnfinishedUpload(record)) return;
    const key = JSON.stringify([record.key.target, record.key.runId]);
    groups.set(key, [...(groups.get(key) ?? []), i]);
  });
  // One connection per tracking target (keep-alive pool), closed at the end.
  const connections = new Map<string, MlflowConnection>();
  const named = namedTarget(options);
  const connect = (trackingUri: string | undefined): MlflowConnection => {
    if (options.connection && trackingUri !== undefined && journalTarget(options.connection.displayUri) === trackingUri) return options.connection;
    // `undefined`: the named server itself (for a record whose target is a store's URI).
    const isNamed = trackingUri === undefined || trackingTarget(trackingUri) === named;
    const key = isNamed ? '' : trackingUri;
    let connection = connections.get(key);
    if (!connection) {
      connection = isNamed
        ? // The named URI itself, not the record's target: its userinfo credentials are not in the journal.
          ownConnection({ trackingUri: options.trackingUri, retry: options.retry, logger: options.logger, env: options.env })
        : isHttpTarget(trackingUri)
          ? connectionWithoutCredentials(trackingUri, options)
          : ownConnection({ trackingUri, retry: options.retry, logger: options.logger, env: options.env });
      connections.set(key, connection);
    }
    return connection;
  };
  try {
    for (const indexes of groups.values()) {
      const { target, runId } = records[indexes[0]!]!.key;
      if (options.signal?.aborted) {
        for (const i of indexes) outcomes[i] = { upload: 'left', reason: 'interrupted before it was given up' };
        continue;
      }
      // A workspace takes no request without a token (the environment's, or an Entra ID
      // token of its credential), and its run's blocks expire on their own: not asked.
      if (trackingUriScheme(target) === 'azureml' && !isOwnServer(target, named, options)) {
        const reason = `its run ${runId} is in the Azure ML workspace ${target}, which is not asked: the environment's credentials go only to the command's own tracking server, and the workspace's uncommitted blocks expire on their own`;
        for (const i of indexes) outcomes[i] = { upload: 'left', reason };
        continue;
      }
      let store: ArtifactStore;
      let withheld: string | undefined;
      try {
        const reached = await storeOf(target, runId, connect, options);
        store = reached.store;
        // The MLflow proxy reached over a connection without credentials: its refusal of the abort is the withheld credentials' doing too.
        withheld = store.kind === 'mlflow-artifacts' && withheldFrom(reached.server, named, options) ? reached.server : undefined;
      } catch (error) {
        const reason = options.signal?.aborted ? 'interrupted before it was given up' : `its run ${runId} could not be looked up on ${target}: ${errorText(error)}`;
        // Not the server's "set MLFLOW_TRACKING_TOKEN" hint: they may well be set, and withheld.
        const status = options.signal?.aborted || !withheldFrom(target, named, options) ? undefined : refusalStatus(error);
        for (const i of indexes) {
          outcomes[i] = status !== undefined ? { upload: 'refused', reason: `${target} answered ${status} to the lookup of its run ${runId}, asked without credentials`, server: target } : { upload: 'left', reason };
        }
        continue;
      }
      try {
        for (const i of indexes) {
          outcomes[i] = await giveUpRecord(store, records[i]!, options, withheld);
        }
      } finally {
        await store.close?.().catch(() => undefined);
      }
    }
  } finally {
    for (const connection of connections.values()) {
      if (connection.kind === 'rest') await connection.http.close().catch(() => undefined);
    }
  }
  return outcomes;
}

/** The journal target of the tracking server the caller names (`trackingUri`, else the environment's), or `undefined` when there is none. */
function namedTarget(options: Pick<AbandonRecordsOptions, 'trackingUri' | 'env'>): string | undefined {
  const uri = options.trackingUri ?? envString('MLFLOW_TRACKING_URI', options.env);
  return uri === undefined ? undefined : trackingTarget(uri);
}

/**
 * The journal target an upload to the tracking URI `uri` writes in its records: that of its
 * connection's address ({@link MlflowConnection.displayUri}: for `http(s)`, no userinfo, query
 * or trailing slash), so that `http://host:5000/prefix/` names the server whose records say
 * `http://host:5000/prefix`.
 *
 * @example
 * ```ts
 * trackingTarget('http://u:p@MLflow:80/prefix/'); // 'http://mlflow/prefix'
 * ```
 */
export function trackingTarget(uri: string): string {
  const given = uri.trim();
  if (isHttpTarget(given)) {
    try {
      const url = new URL(given);
      url.username = '';
      url.password = '';
      url.search = '';
      url.hash = '';
      return journalTarget(url.toString().replace(/\/+$/, ''));
    } catch {
      // Not a URL: as the journal writes it.
    }
  }
  return journalTarget(given);
}

/**
 * An `http(s)` tracking server, which can be asked without credentials (a `file:` store is
 * local; an `azureml:` workspace wants a token, and is not asked when it is not the named one).
 *
 * @example
 * ```ts
 * isHttpTarget('https://mlflow.example.com/'); // true
 * ```
 */
export function isHttpTarget(target: string): boolean {
  return /^https?:/i.test(target);
}

/** Whether the environment's credentials were withheld from `target`'s server (see {@link AbandonRecordsOptions.trackingUri}). */
function withheldFrom(target: string, named: string | undefined, options: Pick<AbandonRecordsOptions, 'connection'>): boolean {
  return isTrackingUriScheme(trackingUriScheme(target)) && isHttpTarget(target) && !isOwnServer(target, named, options);
}

/** Whether the tracking target `target` is the server the caller names (`named`, or its `connection`'s). */
function isOwnServer(target: string, named: string | undefined, options: Pick<AbandonRecordsOptions, 'connection'>): boolean {
  return trackingTarget(target) === named || (options.connection !== undefined && journalTarget(options.connection.displayUri) === target);
}

/**
 * A connection to a server only the journal names: the environment's TLS settings and retry
 * policy, and none of its credentials (no token, no user or password, not
 * `~/.mlflow/credentials`).
 */
function connectionWithoutCredentials(trackingUri: string, options: Pick<AbandonRecordsOptions, 'env' | 'retry' | 'logger'>): MlflowConnection {
  const { MLFLOW_TRACKING_TOKEN: _token, MLFLOW_TRACKING_USERNAME: _username, MLFLOW_TRACKING_PASSWORD: _password, ...env } = options.env;
  return resolveMlflowConnection({ trackingUri, retry: options.retry, logger: options.logger, env, credentialsFile: false });
}

/**
 * The store of a record's run: for a tracking target, as an upload resolves it (`runs/get`),
 * a deleted run's too (giving an upload up logs nothing to it); for a store's artifact URI,
 * the store for that URI.
 */
async function storeOf(
  target: string,
  runId: string,
  connect: (trackingUri: string | undefined) => MlflowConnection,
  options: AbandonRecordsOptions,
): Promise<{ store: ArtifactStore; server: string }> {
  const common = { env: options.env, logger: options.logger, signal: options.signal, retry: options.retry };
  if (isTrackingUriScheme(trackingUriScheme(target))) {
    const connection = connect(target);
    // A run deleted since the interrupted upload keeps its artifact URI: its upload is given up all the same.
    return { store: (await resolveUploadTarget({ runId, source: 'explicit', deletedToo: true }, connection, undefined, { ...common, trackingUri: target })).store, server: target };
  }
  // A store's URI, reached over the named server's connection: `mlflow-artifacts:/path` is that
  // server's proxy; `mlflow-artifacts://<host>/path` names a server of its own, asked without
  // the named server's credentials, as any other server the journal names.
  const named = connect(undefined);
  const elsewhere = proxyElsewhere(target, named.kind === 'rest' ? named.baseUrl : undefined);
  const connection = elsewhere === undefined ? named : connect(elsewhere);
  const store = await resolveArtifactStore(target, { connection, env: options.env, logger: options.logger });
  return { store, server: elsewhere === undefined ? target : journalTarget(elsewhere) };
}

/**
 * The address of the MLflow server that an `mlflow-artifacts://<host>/...` URI names when its
 * host is not that of the named tracking server (`namedBaseUrl`, an `http(s)` URL; the store
 * reaches the host with that server's scheme and prefix), else `undefined` (also when no
 * `http(s)` server is named). `resume clear --dry-run` asks it too, to say which records would
 * be asked without credentials.
 *
 * @throws {InvalidArgumentError} when that host makes no URL.
 */
export function proxyElsewhere(target: string, namedBaseUrl: string | undefined): string | undefined {
  const host = /^mlflow-artifacts:\/\/([^/?#]*)/i.exec(target)?.[1];
  if (!host || namedBaseUrl === undefined) return undefined;
  const base = new URL(namedBaseUrl);
  let other: URL;
  try {
    other = new URL(`${base.protocol}//${host}${base.pathname}`);
  } catch (cause) {
    throw new InvalidArgumentError('target', `The artifact URI ${target} names no server that can be reached.`, { cause });
  }
  return other.origin === base.origin ? undefined : other.toString().replace(/\/+$/, '');
}

/**
 * Asks `store` (the store of the record's run) to give one record's upload up, and says what
 * became of it; `left` at once when `signal` is aborted. Never throws.
 *
 * @example
 * ```ts
 * const outcome = await abandonRecordUpload(store, record, { takenOverAt: Date.now() });
 * ```
 */
export async function abandonRecordUpload(store: ArtifactStore, record: JournalRecord, options: Pick<AbandonRecordsOptions, 'takenOverAt' | 'signal'>): Promise<AbandonOutcome> {
  return giveUpRecord(store, record, options, undefined);
}

/**
 * {@link abandonRecordUpload}; with `withheld`, the server whose proxy `store` reaches without
 * the credentials withheld from it: its refusal (401, 403) is `refused`, not `left`.
 */
async function giveUpRecord(store: ArtifactStore, record: JournalRecord, options: Pick<AbandonRecordsOptions, 'takenOverAt' | 'signal'>, withheld: string | undefined): Promise<AbandonOutcome> {
  if (options.signal?.aborted) return { upload: 'left', reason: 'interrupted before it was given up' };
  const outcome = await giveUpUpload(store, record.key.artifactPath, earlierUploadOf(record, options.takenOverAt), options.signal);
  // Azure's uncommitted blocks, a local file store's temp file: nothing billed to give up.
  if (outcome === undefined) return { upload: 'left', reason: `the ${store.kind} store keeps no upload to abort; it discards the unfinished one on its own` };
  if (outcome.status === 'abandoned') return { upload: 'aborted' };
  const status = refusalStatus(outcome.cause);
  if (withheld !== undefined && status !== undefined && !options.signal?.aborted) {
    return { upload: 'refused', reason: `${withheld} answered ${status} to the abort of its multipart upload (run ${record.key.runId}), asked without credentials`, server: withheld };
  }
  return { upload: 'left', reason: outcome.reason };
}

/** 401 or 403 when `error` is a server's refusal of a request without (the right) credentials, else `undefined`. */
function refusalStatus(error: unknown): number | undefined {
  return error instanceof HttpStatusError && (error.status === 401 || error.status === 403) ? error.status : undefined;
}

/**
 * `store.abandonUpload`, never rejecting: `undefined` when the store has no such method (it
 * discards unfinished uploads on its own), and a store of the caller's that throws, even before
 * it returns a promise, gives `left` with what it threw.
 *
 * @example
 * ```ts
 * const outcome = await giveUpUpload(store, 'ckpt/model.bin', earlierUploadOf(record, Date.now()));
 * ```
 */
export async function giveUpUpload(store: ArtifactStore, artifactPath: string, earlier: EarlierUpload, signal?: AbortSignal): Promise<AbandonedUpload | undefined> {
  if (!store.abandonUpload) return undefined;
  try {
    return await store.abandonUpload(artifactPath, earlier, signal ? { signal } : {});
  } catch (error) {
    return { status: 'left', reason: error instanceof AbortedError ? 'interrupted before it was given up' : `giving it up failed: ${errorText(error)}`, cause: error };
  }
}
