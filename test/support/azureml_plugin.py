"""Drives the official azureml-mlflow plugin against the Azure ML stand-in (test/support/azureml-standin.ts).

Run with the plugin venv's python and the stand-in's pluginEnv(): the tracking URI is the
workspace's azureml:// URI, so MlflowClient uses the plugin's tracking store and, for the run's
azureml:// artifact URI, the plugin's AzureMLflowArtifactRepository (run-history API + SAS blobs).

  log <local dir> [artifact path]     MlflowClient.log_artifacts (batched batch/metadata calls)
  log-file <local file> [artifact path]
  download <artifact path or ""> <dst>
  list [path]                         prints a JSON list of {path, is_dir}
Prints one JSON line on success.
"""
import json
import os
import sys

import azureml.mlflow  # noqa: F401  (the plugin must be importable; mlflow finds it by entry points)
from mlflow.tracking import MlflowClient


def main(argv):
    client = MlflowClient()
    run_id = os.environ["MLFLOW_RUN_ID"]
    cmd = argv[1]
    if cmd == "log":
        client.log_artifacts(run_id, argv[2], argv[3] if len(argv) > 3 and argv[3] else None)
        print(json.dumps({"ok": True}))
    elif cmd == "log-file":
        client.log_artifact(run_id, argv[2], argv[3] if len(argv) > 3 and argv[3] else None)
        print(json.dumps({"ok": True}))
    elif cmd == "download":
        path = client.download_artifacts(run_id, argv[2], argv[3])
        print(json.dumps({"ok": True, "path": path}))
    elif cmd == "list":
        infos = client.list_artifacts(run_id, argv[2] if len(argv) > 2 and argv[2] else None)
        print(json.dumps([{"path": i.path, "is_dir": i.is_dir} for i in infos]))
    elif cmd == "artifact-uri":
        print(json.dumps({"artifact_uri": client.get_run(run_id).info.artifact_uri}))
    else:
        raise SystemExit("unknown command " + cmd)


if __name__ == "__main__":
    main(sys.argv)
