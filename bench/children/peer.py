"""One measured operation of a Python peer client.

Usage:
  python peer.py '<json job>'   one operation in this process, then exit.
  python peer.py --serve PROFILE
                                a fork server: imports what PROFILE's jobs import (``mlflow`` or
                                ``hub``) once, prints ``BENCH_READY``, then for each JSON job
                                line on stdin forks a child that runs the job exactly as the
                                one-shot form does, and prints ``BENCH_EXIT <status>`` when the
                                child is gone.

Either way the job prints `BENCH_RESULT {"ms": ..., "maxRssKiB": ...}`: the time of the operation
alone (imports excluded, as for our side) and the peak RSS of the process that ran it. The server
imports only what the one-shot form imports before its clock starts; whatever the operation loads
lazily (boto3 for an s3:// root...) it still loads inside the measurement, in the child, as before.

Peak RSS of a forked child: Linux copies the page tables of anonymous and written memory at
fork, but not those of read-only file mappings (the code of the shared libraries the imports
loaded), so a child starts out ~50 MiB "smaller" than the process it is a copy of, and would
report a lower peak than a fresh process doing the same imports. Before its clock starts, the
child therefore maps in every page its parent has mapped (from /proc/<parent>/pagemap, with
MADV_POPULATE_READ; ~20 ms), so it starts with the parent's resident set, and reports the
larger of its own peak and its parent's peak during the imports: what a fresh process reaches.
"""
import json
import os
import resource
import sys
import time


def import_profile(profile):
    if profile == "mlflow":
        from mlflow import MlflowClient  # noqa: F401
    elif profile == "hub":
        from huggingface_hub import HfApi  # noqa: F401
    else:
        raise SystemExit(f"unknown profile {profile}")


def profile_of(op):
    if op in ("log_artifact", "log_artifacts"):
        return "mlflow"
    if op == "upload_folder":
        return "hub"
    raise SystemExit(f"unknown op {op}")


def adopt_parent_pages():
    """Maps in, in this forked child, the pages the parent has mapped and fork did not copy."""
    import array
    import ctypes

    page = os.sysconf("SC_PAGE_SIZE")
    madv_populate_read = 22  # Linux 5.14+
    libc = ctypes.CDLL(None, use_errno=True)
    libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    adopted = 0
    with open(f"/proc/{os.getppid()}/pagemap", "rb") as theirs, open("/proc/self/pagemap", "rb") as mine, open("/proc/self/maps") as maps:
        regions = maps.read().splitlines()
        for line in regions:
            parts = line.split()
            name = parts[5] if len(parts) > 5 else ""
            if parts[1][0] != "r" or name.startswith("[v"):  # unreadable, [vvar], [vdso], [vsyscall]
                continue
            start, end = (int(x, 16) for x in parts[0].split("-"))
            n = (end - start) // page
            a = array.array("Q")
            b = array.array("Q")
            theirs.seek(start // page * 8)
            a.frombytes(theirs.read(n * 8))
            mine.seek(start // page * 8)
            b.frombytes(mine.read(n * 8))
            i = 0
            while i < n:
                if a[i] >> 63 and not b[i] >> 63:
                    j = i + 1
                    while j < n and a[j] >> 63 and not b[j] >> 63:
                        j += 1
                    if libc.madvise(start + i * page, (j - i) * page, madv_populate_read) != 0:
                        raise OSError(ctypes.get_errno(), f"madvise(MADV_POPULATE_READ) on {name or 'anonymous'}")
                    adopted += j - i
                    i = j
                else:
                    i += 1
    return adopted * page // 1024


def run(job, parent_peak_kib=0, extra=None):
    op = job["op"]
    started = time.perf_counter()
    if op == "log_artifact":
        from mlflow import MlflowClient

        MlflowClient(tracking_uri=job["trackingUri"]).log_artifact(job["runId"], job["path"], job.get("artifactPath"))
    elif op == "log_artifacts":
        from mlflow import MlflowClient

        MlflowClient(tracking_uri=job["trackingUri"]).log_artifacts(job["runId"], job["path"], job.get("artifactPath"))
    else:
        from huggingface_hub import HfApi

        api = HfApi(endpoint=job["hubUrl"], token=job["token"])
        api.create_repo(job["repoId"], repo_type="model", exist_ok=True)
        api.upload_folder(folder_path=job["path"], repo_id=job["repoId"], repo_type="model")
    ms = (time.perf_counter() - started) * 1000
    peak = max(parent_peak_kib, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    print("BENCH_RESULT " + json.dumps({"ms": ms, "maxRssKiB": peak, **(extra or {})}), flush=True)


def serve(profile):
    import_profile(profile)
    # What a fresh process's peak would include: the imports' own (maxrss after them).
    import_peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print("BENCH_READY", flush=True)
    for line in sys.stdin:
        if not line.strip():
            continue
        job = json.loads(line)
        if profile_of(job["op"]) != profile:
            raise SystemExit(f"job {job['op']} does not belong to profile {profile}")
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                try:
                    extra = {"forked": True, "adoptedKiB": adopt_parent_pages()}
                except OSError as error:
                    # The peak would be too low: say so, the bench then shows no peak.
                    extra = {"forked": True, "rssUnknown": f"could not map in the parent's pages: {error}"}
                run(job, import_peak_kib, extra)
            except BaseException:  # report anything, then leave without the parent's atexit handlers
                import traceback

                traceback.print_exc()
                code = 1
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
        _, status = os.waitpid(pid, 0)
        print(f"BENCH_EXIT {os.waitstatus_to_exitcode(status)}", flush=True)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--serve":
        serve(sys.argv[2])
    else:
        job = json.loads(sys.argv[1])
        import_profile(profile_of(job["op"]))
        run(job)
