/**
 * The Hub calls of a publish, made with the official `@huggingface/hub` client: every call goes
 * through the shared retry policy, through our HTTP client's `fetch` (its TLS settings and idle
 * timeout apply), and failures become {@link HubError}s with the Hub's status, `X-Error-Code`
 * and a hint, never the token. A failed answer's `Retry-After` (or, on a 429, the Hub's
 * `RateLimit` reset) is what the retry policy waits before the next attempt.
 *
 * The commit itself is not retried here: {@link HubSession.commitOnce} makes one attempt, and
 * the publisher decides whether another attempt is safe (see publish.ts).
 *
 * @module
 */
import { commitIter, createRepo, HubApiError, listCommits, listFiles, repoExists, type CommitOperation, type CommitProgressEvent } from '@huggingface/hub';
import { AbortedError, ArtifactUploaderError, HubError, InvalidResponseError } from '../core/errors.js';
import { parseRetryAfter } from '../core/http.js';
import { redact, redactUrl, type Logger } from '../core/logger.js';
import { withRetry, type ResolvedRetryOptions, type RetryEvent } from '../core/retry.js';
import { permanentTlsFailure, type TlsSettingNames } from '../core/tls-failure.js';

/** Options of {@link HubSession}. */
export interface HubSessionOptions {
  /** Hub base URL, without a trailing slash. */
  hubUrl: string;
  /** Token (starts with `hf_`). */
  accessToken: string;
  /** The `fetch` every Hub request goes through. */
  fetch: typeof fetch;
  retry: ResolvedRetryOptions;
  logger: Logger;
  signal?: AbortSignal;
  /** Told before each retry of any call. */
  onRetry?: (event: RetryEvent & { action: string }) => void;
}

/** A commit on the Hub, as listed. */
export interface HubCommitInfo {
  oid: string;
  title: string;
  message: string;
}

/** A file of a Hub revision, as listed. */
export interface HubFileInfo {
  path: string;
  size: number;
  /** sha256 of LFS files. */
  lfsOid?: string;
}

/** Status of an error thrown by `@huggingface/hub` or mapped by us. */
export function hubStatusOf(error: unknown): number | undefined {
  if (error instanceof HubError) return error.status;
  if (error instanceof HubApiError) return error.statusCode;
  return undefined;
}

/** The Hub calls of one publish. */
export class HubSession {
  private readonly errorCodes = new Map<string, string>();
  /**
   * How long the last failed answer of each URL asked to wait, in ms (see {@link retryAfterMsOf}).
   * Set or cleared by every answer, so it is always the latest request's.
   */
  private readonly retryAfter = new Map<string, number>();
  /** What the running commit attempt told the Hub about its LFS files (see {@link commitOnce}). */
  private lfsSeen?: LfsObservation;
  /**
   * A fetch that remembers `X-Error-Code` and the wait asked for (`Retry-After`, `RateLimit`) of
   * failed answers: the Hub client's `HubApiError` keeps neither, only the URL and the status.
   */
  readonly fetch: typeof fetch;

  constructor(private readonly options: HubSessionOptions) {
    const inner = options.fetch;
    this.fetch = (async (input: Parameters<typeof fetch>[0], init?: RequestInit) => {
      const url = typeof input === 'string' ? input : input instanceof URL ? input.href : input.url;
      const seen = this.lfsSeen;
      if (seen && init?.method === 'POST' && typeof init.body === 'string' && /\/info\/lfs\/objects\/batch$/.test(new URL(url).pathname)) observeLfsBatch(seen, init.body);
      const response = await inner(input, init);
      options.logger.debug(`hub ${init?.method ?? 'GET'} ${redactUrl(url)} -> ${response.status}`);
      const code = response.headers.get('x-error-code');
      if (!response.ok && code) this.errorCodes.set(response.url || url, code);
      const wait = response.ok ? undefined : retryAfterMsOf(response.status, response.headers);
      if (wait === undefined) this.retryAfter.delete(response.url || url);
      else this.retryAfter.set(response.url || url, wait);
      if (seen && response.ok && /\/preupload\//.test(new URL(url).pathname)) await observePreupload(seen, response);
      return response;
    }) as typeof fetch;
  }

  private get common() {
    return { hubUrl: this.options.hubUrl, accessToken: this.options.accessToken, fetch: this.fetch };
  }

  /**
   * The error of a failed Hub call with `retryAfterMs` (which {@link withRetry} waits instead of
   * its backoff) when the answer it came from asked for a wait; other errors as they are.
   */
  private withRetryAfter(error: unknown): unknown {
    if (error instanceof HubApiError) {
      const wait = this.retryAfter.get(error.url);
      if (wait !== undefined) Object.assign(error, { retryAfterMs: wait });
    }
    return error;
  }

  /** Runs one Hub call under the retry policy, mapping its failure. */
  private async call<T>(action: string, fn: (signal: AbortSignal | undefined) => Promise<T>): Promise<T> {
    try {
      return await withRetry((_attempt, signal) => fn(signal).catch((error: unknown) => Promise.reject(this.withRetryAfter(error))), {
        retry: this.options.retry,
        signal: this.options.signal,
        onRetry: (event) => {
          this.options.logger.debug(`retrying hub ${action} in ${event.delayMs} ms`, { attempt: event.attempt, error: describe(event.error) });
          this.options.onRetry?.({ ...event, action });
        },
      });
    } catch (error) {
      throw this.toHubError(error, action);
    }
  }

  /** Creates the model repo unless it exists. Returns whether it was created. */
  async ensureRepo(repoId: string, options: { private?: boolean } = {}): Promise<{ created: boolean }> {
    const exists = await this.call(`check repo ${repoId}`, () => repoExists({ repo: { type: 'model', name: repoId }, ...this.common }));
    if (exists) return { created: false };
    return this.call(`create repo ${repoId}`, async () => {
      try {
        await createRepo({
          repo: { type: 'model', name: repoId },
          ...(options.private !== undefined ? { visibility: options.private ? 'private' : 'public' } : {}),
          ...this.common,
        });
        return { created: true };
      } catch (error) {
        // Created in the meantime (by a concurrent publisher, or by our own lost attempt).
        if (hubStatusOf(error) === 409) return { created: false };
        throw error;
      }
    });
  }

  /**
   * Commits of `revision`, newest first, until `until` (excluded) or `max` commits.
   */
  async commitsSince(repoId: string, revision: string, options: { until?: string; max: number }): Promise<HubCommitInfo[]> {
    return this.call(`list commits of ${repoId}@${revision}`, async () => {
      const out: HubCommitInfo[] = [];
      for await (const commit of listCommits({ repo: { type: 'model', name: repoId }, revision, batchSize: Math.min(options.max, 100), ...this.common })) {
        if (options.until && commit.oid === options.until) break;
        out.push({ oid: commit.oid, title: commit.title, message: commit.message });
        if (out.length >= options.max) break;
      }
      return out;
    });
  }

  /** The commit oid at the head of a branch. */
  async head(repoId: string, revision: string): Promise<string> {
    const [head] = await this.commitsSince(repoId, revision, { max: 1 });
    if (!head) throw new InvalidResponseError(`The Hub listed no commits for ${repoId}@${revision}.`);
    return head.oid;
  }

  /** Files of a revision (recursive). */
  async files(repoId: string, revision: string): Promise<HubFileInfo[]> {
    return this.call(`list files of ${repoId}@${revision}`, async () => {
      const out: HubFileInfo[] = [];
      for await (const entry of listFiles({ repo: { type: 'model', name: repoId }, revision, recursive: true, ...this.common })) {
        if (entry.type === 'file') out.push({ path: entry.path, size: entry.size, ...(entry.lfs ? { lfsOid: entry.lfs.oid } : {}) });
      }
      return out;
    });
  }

  /**
   * One commit attempt (preupload, LFS uploads, NDJSON commit), never retried here.
   * `onCommitRequest` is called just before the commit request is sent: from then on the
   * commit may have landed even if this attempt fails.
   */
  async commitOnce(params: {
    repoId: string;
    revision: string;
    title: string;
    description: string;
    parentCommit: string;
    operations: CommitOperation[];
    signal?: AbortSignal;
    onEvent?: (event: CommitProgressEvent) => void;
    onCommitRequest?: () => void;
    /**
     * Awaited once the LFS files are uploaded, before the commit request is sent (and before
     * `@huggingface/hub` reads the inline files into it); a throw stops the attempt there, with
     * nothing committed. `lfsPaths`: the files the Hub put on LFS; the others go inline.
     */
    beforeCommit?: (upload: { lfsPaths: ReadonlySet<string> }) => Promise<void>;
  }): Promise<{ oid: string; url: string; lfsOids: Map<string, string> }> {
    try {
      return await this.commitAttempt(params);
    } catch (error) {
      // The caller retries the attempt under the policy: the Hub's wait applies to it too.
      throw this.withRetryAfter(error);
    }
  }

  private async commitAttempt(params: Parameters<HubSession['commitOnce']>[0]): Promise<{ oid: string; url: string; lfsOids: Map<string, string> }> {
    const seen: LfsObservation = { lfsPaths: new Set(), objects: [] };
    this.lfsSeen = seen;
    const iterator = commitIter({
      repo: { type: 'model', name: params.repoId },
      title: params.title,
      description: params.description,
      branch: params.revision,
      parentCommit: params.parentCommit,
      operations: params.operations,
      // Plain LFS: the Xet protocol is not needed for model-sized files and not every Hub speaks it.
      useXet: false,
      abortSignal: params.signal,
      ...this.common,
    });
    let next = await iterator.next();
    while (!next.done) {
      if (next.value.event === 'phase' && next.value.phase === 'committing') {
        // The generator sends the commit only when asked for its next event: nothing is sent yet.
        await params.beforeCommit?.({ lfsPaths: seen.lfsPaths }).catch(async (error: unknown) => {
          await iterator.return(undefined).catch(() => undefined);
          throw error;
        });
        params.onCommitRequest?.();
      }
      params.onEvent?.(next.value);
      next = await iterator.next();
    }
    this.lfsSeen = undefined;
    const output = next.value;
    if (!output?.commit?.oid) throw new InvalidResponseError(`The Hub answered the commit to ${params.repoId} without a commit oid.`);
    return { oid: output.commit.oid, url: output.commit.url, lfsOids: lfsOidsByPath(seen, params.operations) };
  }

  /** Maps any failure of a Hub call to a {@link HubError} with a hint (aborts stay {@link AbortedError}). */
  toHubError(error: unknown, action: string): Error {
    if (error instanceof HubError || error instanceof AbortedError) return error;
    if (error instanceof ArtifactUploaderError) return error;
    if (this.options.signal?.aborted || (error as { name?: string })?.name === 'AbortError') {
      return new AbortedError(`Publishing was aborted during: ${action}.`, { cause: error });
    }
    const status = hubStatusOf(error);
    const url = error instanceof HubApiError ? redactUrl(error.url) : undefined;
    const hubErrorCode = error instanceof HubApiError ? this.errorCodes.get(error.url) : undefined;
    // A certificate or protocol failure: said plainly (OpenSSL's text holds a source path and a newline).
    const tls = status === undefined ? permanentTlsFailure(error, HUB_TLS_SETTINGS) : undefined;
    const message = redact(`Hub call failed (${action}): ${tls ? `${tls.what} (${tls.code}).` : describe(error)}`);
    return new HubError(message, { status, hubErrorCode, url, hint: tls?.hint ?? hintFor(status, hubErrorCode, redact(this.options.hubUrl)), cause: error });
  }
}

/** publishToHub's TLS settings (its `tls` option), as a TLS failure's hint names them: it reads no MLFLOW_TRACKING_* variable. */
const HUB_TLS_SETTINGS: TlsSettingNames = {
  ca: 'the `tls.caCertPath` option of publishToHub (NODE_EXTRA_CA_CERTS for `artifact-uploader publish`)',
  insecure: '`tls.insecure: true`',
  clientCert: 'the `tls.clientCertPath` option of publishToHub',
};

/**
 * How long a failed Hub answer asks the client to wait before trying again, in ms: on a 429
 * whose `RateLimit` header says no request is left (`"api";r=0;t=55`, the IETF draft the Hub
 * follows), the reset `t` plus one second (`t` is whole seconds; `huggingface_hub` adds the same
 * second, `utils/_http.py`); otherwise `Retry-After`, in seconds or as an HTTP date. `undefined`
 * when the answer names no wait. The retry policy caps it (`retry.maxRetryAfterMs`).
 *
 * @example
 * ```ts
 * retryAfterMsOf(429, new Headers({ ratelimit: '"api";r=0;t=55' })); // 56000
 * retryAfterMsOf(503, new Headers({ 'retry-after': '30' })); // 30000
 * ```
 */
export function retryAfterMsOf(status: number, headers: Headers, now: number = Date.now()): number | undefined {
  if (status === 429) {
    const limit = /"\w+"\s*;\s*r\s*=\s*(\d+)\s*;\s*t\s*=\s*(\d+)/.exec(headers.get('ratelimit') ?? '');
    if (limit && Number(limit[1]) === 0) return (Number(limit[2]) + 1) * 1000;
  }
  return parseRetryAfter(headers.get('retry-after') ?? undefined, now);
}

function describe(error: unknown): string {
  if (error instanceof Error) {
    const cause = (error as { cause?: unknown }).cause;
    return cause instanceof Error && error.message === 'fetch failed' ? `${error.message} (${cause.message})` : error.message;
  }
  return String(error);
}

function hintFor(status: number | undefined, code: string | undefined, hubUrl: string): string | undefined {
  if (code === 'RevisionNotFound') return 'The branch does not exist: create it on the Hub first, or publish to "main".';
  if (code === 'RepoNotFound' || status === 404) return `Check the repo id and that the token can see the repo on ${hubUrl}.`;
  switch (status) {
    case 401:
      return `The token was refused by ${hubUrl}: pass a valid accessToken or set HF_TOKEN (a write token from https://huggingface.co/settings/tokens).`;
    case 403:
      return 'The token has no write access to this namespace: use a write token of the repo owner or of a member of its organisation.';
    case 409:
    case 412:
      return 'The branch kept changing under this publish (other commits are being pushed); try again when it is quiet.';
    case 413:
      return 'The Hub refused the request size; make sure large files go through LFS (they do unless the Hub is misconfigured).';
    case 429:
      return 'The Hub rate-limited this token; wait a few minutes and publish again.';
    case undefined:
      // No answer at all: refused, reset, DNS or TLS failure.
      return `No answer from ${hubUrl}: check that it is the Hub's address (HF_ENDPOINT) and reachable from this machine (proxies, firewall). Publish again then: nothing is committed twice.`;
    default:
      return status >= 500 ? 'The Hub had trouble; retries were exhausted. Publish again later: nothing is committed twice.' : undefined;
  }
}

/**
 * What one commit attempt told the Hub about its LFS files: which paths the preupload call
 * put on LFS, and the `{ oid, size }` objects of the LFS batch calls, in the order sent.
 */
interface LfsObservation {
  lfsPaths: Set<string>;
  objects: Array<{ oid: string; size: number }>;
}

function observeLfsBatch(seen: LfsObservation, body: string): void {
  try {
    const parsed = JSON.parse(body) as { operation?: string; objects?: Array<{ oid?: unknown; size?: unknown }> };
    if (parsed.operation !== 'upload') return;
    for (const object of parsed.objects ?? []) seen.objects.push({ oid: String(object.oid), size: Number(object.size) });
  } catch {
    // Not ours to judge: the Hub answers a malformed call itself.
  }
}

async function observePreupload(seen: LfsObservation, response: Response): Promise<void> {
  const body = (await response
    .clone()
    .json()
    .catch(() => undefined)) as { files?: Array<{ path?: string; uploadMode?: string }> } | undefined;
  for (const file of body?.files ?? []) if (file.uploadMode === 'lfs' && file.path) seen.lfsPaths.add(file.path);
}

/**
 * The sha256 oid `@huggingface/hub` computed (from our file blobs) for each LFS file of the
 * commit, by path: its LFS batch calls list `{ oid, size }` for the LFS operations in the order
 * of the commit's operations. Empty when what was seen does not line up (count or a size), so
 * that nothing is ever paired with the wrong file.
 */
function lfsOidsByPath(seen: LfsObservation, operations: readonly CommitOperation[]): Map<string, string> {
  const lfs = operations.flatMap((op) => (op.operation === 'addOrUpdate' && seen.lfsPaths.has(op.path) && op.content instanceof Blob ? [{ path: op.path, size: op.content.size }] : []));
  const out = new Map<string, string>();
  if (lfs.length !== seen.objects.length) return out;
  for (const [i, file] of lfs.entries()) {
    const object = seen.objects[i]!;
    if (object.size !== file.size || !/^[0-9a-f]{64}$/.test(object.oid)) return new Map();
    out.set(file.path, object.oid);
  }
  return out;
}
