"""One measured operation of a Python peer client, in its own process.

Usage: python peer.py '<json job>'. Prints `BENCH_RESULT {"ms": ...}`: the time of the operation
alone (imports excluded, as for our side).
"""
import json
import resource
import sys
import time

job = json.loads(sys.argv[1])
op = job["op"]

if op in ("log_artifact", "log_artifacts"):
    from mlflow import MlflowClient
elif op == "upload_folder":
    from huggingface_hub import HfApi
else:
    raise SystemExit(f"unknown op {op}")

started = time.perf_counter()
if op == "log_artifact":
    MlflowClient(tracking_uri=job["trackingUri"]).log_artifact(job["runId"], job["path"], job.get("artifactPath"))
elif op == "log_artifacts":
    MlflowClient(tracking_uri=job["trackingUri"]).log_artifacts(job["runId"], job["path"], job.get("artifactPath"))
else:
    api = HfApi(endpoint=job["hubUrl"], token=job["token"])
    api.create_repo(job["repoId"], repo_type="model", exist_ok=True)
    api.upload_folder(folder_path=job["path"], repo_id=job["repoId"], repo_type="model")
ms = (time.perf_counter() - started) * 1000
print("BENCH_RESULT " + json.dumps({"ms": ms, "maxRssKiB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
