/**
 * One block blob reached through a SAS URL (a service SAS a workspace hands out, e.g. Azure ML's
 * run-history content URIs), with the library's own HTTP client: no Azure SDK, no account
 * credential. The Blob REST calls are the ones `azure-block-upload.ts` needs (`Put Blob`,
 * `Put Block`, `Put Block List`, `Delete Blob`), plus `Get Blob Properties` for a size.
 *
 * Each call is one attempt (`HttpClient.send`): retries are the block engine's, each block on
 * its own. The URL's `sig=` never reaches an error (every URL in an error is redacted), and no
 * `Authorization` header is sent (the SAS is the credential).
 *
 * @module
 */
import { HttpStatusError } from '../core/errors.js';
import type { ErrorResponse, HttpClient, HttpRequest } from '../core/http.js';
import { redact } from '../core/logger.js';
import type { BlockBlobRequests } from './azure-block-upload.js';
import { blobRefusalHint } from './azure-blob-refusals.js';

/** The Blob service version the requests speak (supported by Azure and Azurite 3.35). */
export const SAS_BLOB_API_VERSION = '2021-12-02';

/**
 * The {@link BlockBlobRequests} of the blob at `sasUrl`, sent through `http` without its auth
 * header. `contentType` becomes the blob's Content-Type.
 *
 * @example
 * ```ts
 * const requests = sasBlockBlobRequests(connection.http, contentUri, 'application/octet-stream');
 * await uploadBlockBlob(source, requests, settings);
 * ```
 */
export function sasBlockBlobRequests(http: HttpClient, sasUrl: string, contentType: string | undefined): BlockBlobRequests {
  const typeHeader: Record<string, string> = contentType ? { 'x-ms-blob-content-type': contentType } : {};
  const send = async (req: Omit<HttpRequest, 'withAuth' | 'responseType' | 'mapError'>) => {
    await http.send({ ...req, headers: { 'x-ms-version': SAS_BLOB_API_VERSION, ...req.headers }, withAuth: false, responseType: 'none', mapError: blobErrorMapper });
  };
  return {
    putBlob: (body, contentMd5, signal) =>
      send({ method: 'PUT', url: sasUrl, body, signal, headers: { 'x-ms-blob-type': 'BlockBlob', 'content-md5': Buffer.from(contentMd5).toString('base64'), ...typeHeader } }),
    stageBlock: (blockId, body, contentMd5, signal) =>
      send({ method: 'PUT', url: withQuery(sasUrl, `comp=block&blockid=${encodeURIComponent(blockId)}`), body, signal, headers: { 'content-md5': Buffer.from(contentMd5).toString('base64') } }),
    commitBlockList: (blockIds, signal) =>
      send({
        method: 'PUT',
        url: withQuery(sasUrl, 'comp=blocklist'),
        body: `<?xml version="1.0" encoding="utf-8"?><BlockList>${blockIds.map((id) => `<Latest>${id}</Latest>`).join('')}</BlockList>`,
        signal,
        headers: { 'content-type': 'application/xml; charset=utf-8', ...typeHeader },
      }),
    deleteBlob: async (signal) => {
      try {
        await send({ method: 'DELETE', url: sasUrl, signal });
      } catch (error) {
        if (error instanceof HttpStatusError && error.status === 404) return;
        throw error;
      }
    },
  };
}

/**
 * The size of the blob at `sasUrl` (`Get Blob Properties`, one attempt), or `undefined` when
 * there is no such blob.
 *
 * @example
 * ```ts
 * const size = await sasBlobSize(connection.http, readSasUrl); // 1234, or undefined
 * ```
 */
export async function sasBlobSize(http: HttpClient, sasUrl: string, signal?: AbortSignal): Promise<number | undefined> {
  try {
    const { headers } = await http.send({ method: 'HEAD', url: sasUrl, withAuth: false, responseType: 'none', headers: { 'x-ms-version': SAS_BLOB_API_VERSION }, mapError: blobErrorMapper, ...(signal ? { signal } : {}) });
    const length = Number(headers['content-length']);
    return Number.isFinite(length) ? length : undefined;
  } catch (error) {
    if (error instanceof HttpStatusError && error.status === 404) return undefined;
    throw error;
  }
}

/** Adds query parameters to a SAS URL without re-encoding the SAS itself. */
function withQuery(url: string, query: string): string {
  return `${url}${url.includes('?') ? '&' : '?'}${query}`;
}

/** Azure's error code: the `x-ms-error-code` header, else `<Code>` of the XML body. */
function blobErrorMapper(res: ErrorResponse): HttpStatusError {
  const code = res.headers['x-ms-error-code'] ?? /<Code>([^<]+)<\/Code>/.exec(res.bodyText)?.[1];
  const message = /<Message>([^<\n]+)/.exec(res.bodyText)?.[1]?.trim();
  return new HttpStatusError(res.status, `Azure Blob ${res.method} ${res.url} failed: ${res.status}${code ? ` ${code}` : ''}${message ? `: ${redact(message)}` : ''}`, {
    method: res.method,
    url: res.url,
    code: code ?? `HTTP_${res.status}`,
    retryAfterMs: res.retryAfterMs,
    hint: blobHint(code, res.status),
  });
}

function blobHint(code: string | undefined, status: number): string | undefined {
  if (code === 'AuthenticationFailed' || code === 'AuthorizationFailure' || status === 403) {
    return 'The storage account refused the SAS URL the workspace handed out (expired, or without write permission): upload again, which asks the workspace for a new one; check the workspace storage account\'s network rules if it persists.';
  }
  // The blob at the name (a lease, an immutability policy, the archive tier, another kind of
  // blob) refuses a workspace's SAS as it refuses the wasbs:// store: the same hints.
  const atTheName = blobRefusalHint(code);
  if (atTheName) return atTheName;
  if (status === 404) return 'The container of the workspace\'s storage account does not exist (or the SAS names another account).';
  if (status >= 500 || status === 429 || status === 408) return 'The storage account kept failing after every retry; raise MLFLOW_HTTP_REQUEST_MAX_RETRIES or try later.';
  return undefined;
}
