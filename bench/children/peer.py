"""One measured operation of a Python peer client.

Usage:
  python peer.py '<json job>'   one operation in this process, then exit.
  python peer.py --serve PROFILE
                                a fork server: imports what PROFILE's jobs import (``mlflow`` or
                                ``hub``) once, prints ``BENCH_READY``, then for each JSON job
                                line on stdin forks a child that runs the job exactly as the
                                one-shot form does, and prints ``BENCH_EXIT <status> <peak>``
                                when the child has exited (its peak RSS in KiB, from wait4,
                                what GNU time reports for a fresh process).

Either way the job prints `BENCH_RESULT {"ms": ..., "maxRssKiB": ...}`: the time of the operation
alone (imports excluded, as for our side) and the peak RSS of the process that ran it. The server
imports only what the one-shot form imports before its clock starts; whatever the operation loads
lazily (boto3 for an s3:// root...) it still loads inside the measurement, in the child, as before.

A forked child is made equal to a fresh process before its clock starts (adopt_parent_pages):
fork leaves it sharing its parent's memory copy-on-write and without the mappings of the
shared libraries' code, so it would report a peak RSS ~50 MiB low and pay a page copy on its
first write to each heap page inside the measurement, which a fresh process never pays. The
child maps in every page its parent has mapped and takes its own copy of the parent's heap
(~100 MiB, well under 0.1 s, before the clock); after the operation it shuts the interpreter down
as a fresh process would. Its peak is the larger of the child's own (from wait4, as GNU time
takes a process's) and the parent's peak during the imports: what a fresh process doing the
same imports reaches.
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
    """Makes this forked child's memory what a fresh process's would be after the same imports.

    Fork leaves the child sharing its parent's pages: read-only file mappings (the shared
    libraries' code) are not even mapped in the child (so its RSS starts ~50 MiB low), and
    anonymous memory (the Python heap) is shared copy-on-write, so the child's first write to
    each page costs a fault and a copy inside the measurement, which a fresh process, whose
    heap is its own, never pays. Here, before the clock starts, the child maps in every file page
    its parent has mapped (MADV_POPULATE_READ) and takes its own copy of every anonymous page
    its parent has (MADV_POPULATE_WRITE breaks copy-on-write without changing a byte). Returns
    KiB mapped in and KiB copied.
    """
    import array
    import ctypes

    page = os.sysconf("SC_PAGE_SIZE")
    populate_read, populate_write = 22, 23  # MADV_POPULATE_READ / _WRITE, Linux 5.14+
    present, file_or_shared = 1 << 63, 1 << 61
    libc = ctypes.CDLL(None, use_errno=True)
    libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    counts = {populate_read: 0, populate_write: 0}

    def apply(advice, start, pages, name):
        if libc.madvise(start, pages * page, advice) != 0:
            raise OSError(ctypes.get_errno(), f"madvise({advice}) on {name or 'anonymous memory'}")
        counts[advice] += pages

    with open(f"/proc/{os.getppid()}/pagemap", "rb") as theirs, open("/proc/self/pagemap", "rb") as mine, open("/proc/self/maps") as maps:
        regions = maps.read().splitlines()
        for line in regions:
            parts = line.split()
            perms = parts[1]
            name = parts[5] if len(parts) > 5 else ""
            if perms[0] != "r" or name.startswith("[v"):  # unreadable, [vvar], [vdso], [vsyscall]
                continue
            writable_private = perms[1] == "w" and perms[3] == "p"
            start, end = (int(x, 16) for x in parts[0].split("-"))
            n = (end - start) // page
            a = array.array("Q")
            b = array.array("Q")
            theirs.seek(start // page * 8)
            a.frombytes(theirs.read(n * 8))
            mine.seek(start // page * 8)
            b.frombytes(mine.read(n * 8))
            # Per page: what to do (0 nothing); then one madvise per run of equal actions.
            run_advice, run_start = 0, 0
            for i in range(n + 1):
                advice = 0
                if i < n and a[i] & present:
                    if writable_private and not a[i] & file_or_shared:
                        advice = populate_write
                    elif not b[i] & present:
                        advice = populate_read
                if advice != run_advice:
                    if run_advice:
                        apply(run_advice, start + run_start * page, i - run_start, name)
                    run_advice, run_start = advice, i
    return counts[populate_read] * page // 1024, counts[populate_write] * page // 1024


def run(job, parent_peak_kib=0, extra=None):
    op = job["op"]
    before = resource.getrusage(resource.RUSAGE_SELF)
    faults = before.ru_minflt
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
    usage = resource.getrusage(resource.RUSAGE_SELF)
    peak = max(parent_peak_kib, usage.ru_maxrss)
    # CPU of the operation alone (user + system, this process and its threads), as ours reports.
    cpu_ms = ((usage.ru_utime - before.ru_utime) + (usage.ru_stime - before.ru_stime)) * 1000
    print("BENCH_RESULT " + json.dumps({"ms": ms, "cpuMs": cpu_ms, "maxRssKiB": peak, "minorFaults": usage.ru_minflt - faults, **(extra or {})}), flush=True)


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
                    mapped, copied = adopt_parent_pages()
                    # The page scan's own buffers are no part of the peak: start the peak
                    # over from here (the parent's resident set, now ours too).
                    try:
                        with open("/proc/self/clear_refs", "w") as clear_refs:
                            clear_refs.write("5")
                    except OSError:
                        pass  # Linux < 4.0: the peak may include ~1 MiB of scan buffers
                    extra = {"forked": True, "mappedInKiB": mapped, "copiedKiB": copied}
                except OSError as error:
                    # The peak would be too low: say so, the bench then shows no peak.
                    extra = {"forked": True, "rssUnknown": f"could not map in the parent's pages: {error}"}
                run(job, import_peak_kib, extra)
            except BaseException:
                import traceback

                traceback.print_exc()
                code = 1
            sys.stdout.flush()
            sys.stderr.flush()
            # A normal exit, shutting down the interpreter (atexit handlers and all) as a fresh
            # process does after its operation: its memory counts in the peak like theirs.
            raise SystemExit(code)
        _, status, usage = os.wait4(pid, 0)
        print(f"BENCH_EXIT {os.waitstatus_to_exitcode(status)} {max(import_peak_kib, usage.ru_maxrss)}", flush=True)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--serve":
        serve(sys.argv[2])
    else:
        job = json.loads(sys.argv[1])
        import_profile(profile_of(job["op"]))
        run(job)
