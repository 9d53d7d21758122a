/**
 * The artifact routes of an Azure ML workspace's run-history API, as the `azureml-mlflow`
 * plugin calls them (`_client/artifact/run_artifact_client.py` over
 * `_restclient/run_artifact/operations/_run_artifacts_operations.py`), all under
 * `https://<host>/history/v1.0/subscriptions/<s>/resourceGroups/<rg>/providers/Microsoft.MachineLearningServices/workspaces/<ws>/experiments/<experiment>/runs/<run id>`:
 *
 * - `POST .../artifacts/batch/metadata` with `{"paths": [{"path": ...}]}`: registers the
 *   artifacts and answers one SAS content URI per path (`artifactContentInformation`), or an
 *   error per path (`errors`);
 * - `GET .../artifacts`: every artifact path of the run, paged (`nextLink`, else
 *   `continuationToken`);
 * - `GET .../artifacts/contentinfo?path=...`: a SAS content URI to read one artifact.
 *
 * Requests go through the tracking connection's client: its bearer token (the job's
 * `MLFLOW_TRACKING_TOKEN`, or an Entra ID token) and its retry policy (429 and 5xx are retried;
 * 401 and 403 fail at once). The plugin retries the POST too (`retry_on_methods=["POST"]`):
 * registering the same paths again hands out new SAS URIs for the same artifacts.
 *
 * @module
 */
import { HttpStatusError } from '../core/errors.js';
import type { ErrorResponse, HttpClient } from '../core/http.js';
import { redact, registerSasSignature, registerSecret } from '../core/logger.js';
import type { AzureMlWorkspace } from './azureml-workspace.js';

/** The run whose artifacts a client reads and writes. */
export interface AzureMlRunRef {
  /** The experiment segment of the run's artifact URI (the plugin sends it as `experimentName`). */
  experiment: string;
  runId: string;
}

/** What `batch/metadata` answered for one path: a SAS URL to write, or the service's error. */
export type ContentUriResult = { contentUri: string } | { error: { code: string; message: string } };

/**
 * A thin client of the run-history artifact routes of one run.
 *
 * @example
 * ```ts
 * const history = new AzureMlRunHistoryClient(connection.http, workspace, { experiment: 'train', runId });
 * const [result] = (await history.createEmptyArtifacts(['model/model.onnx'])).values();
 * ```
 */
export class AzureMlRunHistoryClient {
  /** `.../experiments/<experiment>/runs/<run id>`. */
  readonly runUrl: string;

  constructor(
    private readonly http: HttpClient,
    workspace: AzureMlWorkspace,
    run: AzureMlRunRef,
  ) {
    this.runUrl = `${workspace.historyBaseUrl}/experiments/${urlSegment(run.experiment)}/runs/${urlSegment(run.runId)}`;
  }

  /** Registers `paths` (one request) and returns each path's SAS content URI or error. */
  async createEmptyArtifacts(paths: readonly string[], signal?: AbortSignal): Promise<Map<string, ContentUriResult>> {
    const url = `${this.runUrl}/artifacts/batch/metadata`;
    const { body } = await this.http.request({
      method: 'POST',
      url,
      body: JSON.stringify({ paths: paths.map((path) => ({ path })) }),
      headers: { 'content-type': 'application/json', accept: 'application/json' },
      mapError: runHistoryErrorMapper('batch/metadata'),
      ...(signal ? { signal } : {}),
    });
    const { batchContentInformationSchema, parseMlflowResponse } = await import('./azureml-schemas.js');
    const parsed = parseMlflowResponse(batchContentInformationSchema, body, { method: 'POST', url });
    const out = new Map<string, ContentUriResult>();
    for (const path of paths) {
      const info = parsed.artifactContentInformation?.[path];
      const error = parsed.errors?.[path]?.error;
      if (info) {
        registerSasSignature(info.contentUri);
        out.set(path, { contentUri: info.contentUri });
      } else {
        out.set(path, { error: { code: error?.code ?? 'NoContentUri', message: redact(error?.message ?? 'the workspace answered no content URI for this path') } });
      }
    }
    return out;
  }

  /** Every artifact path of the run, in the order the service lists them. */
  async listArtifactPaths(signal?: AbortSignal): Promise<string[]> {
    const { artifactListSchema, parseMlflowResponse } = await import('./azureml-schemas.js');
    const paths: string[] = [];
    let url: string | undefined = `${this.runUrl}/artifacts`;
    for (let page = 0; url !== undefined; page++) {
      if (page > 100_000) throw new Error(`The artifact listing of ${this.runUrl} did not end after 100,000 pages.`);
      const pageUrl: string = url;
      const { body } = await this.http.request({ method: 'GET', url: pageUrl, headers: { accept: 'application/json' }, mapError: runHistoryErrorMapper('artifacts'), ...(signal ? { signal } : {}) });
      const parsed = parseMlflowResponse(artifactListSchema, body, { method: 'GET', url: pageUrl });
      for (const artifact of parsed.value ?? []) paths.push(artifact.path);
      // The plugin's pager follows nextLink; a service that sends only the token gets it back as a query parameter.
      if (parsed.nextLink) url = parsed.nextLink;
      else if (parsed.continuationToken) url = `${this.runUrl}/artifacts?continuationToken=${encodeURIComponent(parsed.continuationToken)}`;
      else url = undefined;
    }
    return paths;
  }

  /** A SAS URL to read one artifact, or `undefined` when the run has no artifact at `path` (404). */
  async contentUri(path: string, signal?: AbortSignal): Promise<string | undefined> {
    const url = `${this.runUrl}/artifacts/contentinfo?path=${encodeURIComponent(path)}`;
    try {
      const { body } = await this.http.request({ method: 'GET', url, headers: { accept: 'application/json' }, mapError: runHistoryErrorMapper('artifacts/contentinfo'), ...(signal ? { signal } : {}) });
      const { contentInformationSchema, parseMlflowResponse } = await import('./azureml-schemas.js');
      const info = parseMlflowResponse(contentInformationSchema, body, { method: 'GET', url });
      registerSasSignature(info.contentUri);
      return info.contentUri;
    } catch (error) {
      if (error instanceof HttpStatusError && error.status === 404) return undefined;
      throw error;
    }
  }
}

/** The job whose token {@link fetchJobToken} renews: the run and its experiment (id preferred, as the plugin). */
export interface AzureMlJobRef {
  runId: string;
  experimentId?: string;
  experimentName?: string;
}

/**
 * Renews a job's token as the plugin's `AzureMLTokenAuthentication` does: `GET .../experimentids/<id>/runs/<run id>/token`
 * (or `.../experiments/<name>/runs/<run id>/token` without an id), authorised by the current
 * token. Returns the new token (registered as a secret).
 *
 * @example
 * ```ts
 * const fresh = await fetchJobToken(http, workspace, { runId, experimentId: '0' }, currentToken);
 * ```
 */
export async function fetchJobToken(http: HttpClient, workspace: AzureMlWorkspace, job: AzureMlJobRef, currentToken: string, signal?: AbortSignal): Promise<string> {
  const experiment = job.experimentId !== undefined ? `experimentids/${urlSegment(job.experimentId)}` : `experiments/${urlSegment(job.experimentName ?? '')}`;
  const url = `${workspace.historyBaseUrl}/${experiment}/runs/${urlSegment(job.runId)}/token`;
  const { body } = await http.request({
    method: 'GET',
    url,
    headers: { accept: 'application/json', authorization: `Bearer ${currentToken}` },
    mapError: runHistoryErrorMapper('token'),
    ...(signal ? { signal } : {}),
  });
  const { tokenResultSchema, parseMlflowResponse } = await import('./azureml-schemas.js');
  const { token } = parseMlflowResponse(tokenResultSchema, body, { method: 'GET', url });
  registerSecret(token);
  return token;
}

/** Path segments as msrest's `Serializer.url` quotes them (`quote(value, safe='')`). */
function urlSegment(value: string): string {
  return encodeURIComponent(value).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

/** The service's `ErrorResponse` (`{"error": {"code", "message"}}`) as an `HttpStatusError` with a hint. */
function runHistoryErrorMapper(route: string): (res: ErrorResponse) => HttpStatusError {
  return (res) => {
    let code: string | undefined;
    let message = res.bodyText.trim().slice(0, 500);
    try {
      const parsed = JSON.parse(res.bodyText) as { error?: { code?: unknown; message?: unknown } };
      if (typeof parsed.error?.code === 'string') code = parsed.error.code;
      if (typeof parsed.error?.message === 'string') message = parsed.error.message;
    } catch {
      if (/<html/i.test(message)) message = '(HTML error page)';
    }
    return new HttpStatusError(res.status, `Azure ML run history ${res.method} ${route} failed with ${res.status}${code ? ` ${code}` : ''}: ${redact(message) || '(empty body)'}`, {
      method: res.method,
      url: res.url,
      code: code ?? `HTTP_${res.status}`,
      retryAfterMs: res.retryAfterMs,
      body: redact(res.bodyText.slice(0, 2000)),
      hint: runHistoryHint(res.status),
    });
  };
}

function runHistoryHint(status: number): string | undefined {
  if (status === 401) {
    return 'The workspace refused the token: inside a job MLFLOW_TRACKING_TOKEN may have expired (jobs set a fresh one); elsewhere unset MLFLOW_TRACKING_TOKEN to sign in with DefaultAzureCredential, or get a new token (`az account get-access-token --resource https://management.azure.com`).';
  }
  if (status === 403) return 'The identity has no write access to this workspace\'s runs: it needs a role such as "AzureML Data Scientist" on the workspace.';
  if (status === 404) return 'The workspace has no such experiment or run: check MLFLOW_RUN_ID and that MLFLOW_TRACKING_URI names the workspace the run belongs to.';
  if (status === 429 || status >= 500) return 'The workspace kept failing after every retry; raise MLFLOW_HTTP_REQUEST_MAX_RETRIES or try later.';
  return undefined;
}
