/**
 * Azure ML workspace tracking URIs, read the way the `azureml-mlflow` plugin reads them
 * (`tracking_uri_decomp` and `get_service_context_from_tracking_url_*`):
 * `azureml://<host>/mlflow/v2.0/subscriptions/<s>/resourceGroups/<rg>/providers/Microsoft.MachineLearningServices/workspaces/<ws>`
 * is the MLflow REST API at `https://<host>/mlflow/v2.0/...` (always https), and the workspace's
 * run-history API at `https://<host>/history/v1.0/subscriptions/...` (artifacts, job tokens).
 *
 * @module
 */
import { ConfigError } from '../core/errors.js';
import { redactUrl } from '../core/logger.js';

/** One Azure ML workspace, as its tracking URI names it. */
export interface AzureMlWorkspace {
  /** `https://<host>` (e.g. `https://westeurope.api.azureml.ms`). */
  origin: string;
  subscriptionId: string;
  resourceGroup: string;
  workspace: string;
  /** The MLflow REST base: `https://<host>/mlflow/v2.0/subscriptions/.../workspaces/<ws>`. */
  mlflowBaseUrl: string;
  /** The run-history base: `https://<host>/history/v1.0/subscriptions/.../workspaces/<ws>`. */
  historyBaseUrl: string;
}

const WORKSPACE_URI =
  /^azureml:\/\/([^/?#@]+)(\/mlflow\/v\d+(?:\.\d+)?)\/subscriptions\/([^/?#]+)\/resourceGroups\/([^/?#]+)\/providers\/Microsoft\.MachineLearningServices\/workspaces\/([^/?#]+)\/?(?:\?.*)?$/i;

/**
 * Parses an Azure ML workspace tracking URI; anything else is a `ConfigError` saying where to
 * copy the right one from.
 *
 * @example
 * ```ts
 * const ws = parseAzureMlTrackingUri('azureml://westeurope.api.azureml.ms/mlflow/v2.0/subscriptions/s/resourceGroups/rg/providers/Microsoft.MachineLearningServices/workspaces/ws');
 * ws.historyBaseUrl; // 'https://westeurope.api.azureml.ms/history/v1.0/subscriptions/s/resourceGroups/rg/providers/Microsoft.MachineLearningServices/workspaces/ws'
 * ```
 */
export function parseAzureMlTrackingUri(uri: string): AzureMlWorkspace {
  const match = WORKSPACE_URI.exec(uri.trim());
  if (!match) {
    throw new ConfigError(`Tracking URI ${redactUrl(uri)} is not an Azure ML workspace URI.`, {
      issues: [{ path: 'trackingUri', message: 'expected azureml://<region>.api.azureml.ms/mlflow/v2.0/subscriptions/<sub>/resourceGroups/<rg>/providers/Microsoft.MachineLearningServices/workspaces/<ws>' }],
      hint: 'Copy the MLflow tracking URI from the workspace (Azure ML studio, or `az ml workspace show --query mlflow_tracking_uri`).',
    });
  }
  const [host, mlflowPrefix, subscriptionId, resourceGroup, workspace] = match.slice(1, 6) as [string, string, string, string, string];
  const origin = `https://${host}`;
  const scope = `/subscriptions/${subscriptionId}/resourceGroups/${resourceGroup}/providers/Microsoft.MachineLearningServices/workspaces/${workspace}`;
  return { origin, subscriptionId, resourceGroup, workspace, mlflowBaseUrl: `${origin}${mlflowPrefix}${scope}`, historyBaseUrl: `${origin}/history/v1.0${scope}` };
}
