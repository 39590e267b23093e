"""Run benchmark scripts one after another in this one interpreter (TensorFlow imported once,
not once a script), each as ``python bench/SCRIPT ARGS`` would run it, and write what each
did as JSON: ``python tests/bench_runner.py JOBS.json RESULTS.json``, where JOBS.json is a
list of ``{"name": ..., "script": path, "args": [...]}``. Used by tests/test_bench_smoke.py.
"""

import contextlib
import io
import json
import os
import runpy
import sys
import time
import traceback


def run(script: str, args: list[str]) -> dict:
    out, err = io.StringIO(), io.StringIO()
    argv, path = sys.argv, list(sys.path)
    sys.argv = [script, *args]
    t0 = time.perf_counter()
    code = 0
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            runpy.run_path(script, run_name="__main__")
    except SystemExit as exc:  # argparse's --help and errors, a script's own exit
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:  # noqa: BLE001 - reported as the script's failure
        err.write(traceback.format_exc())
        code = 1
    finally:
        sys.argv, sys.path[:] = argv, path
    return {"code": code, "stdout": out.getvalue(), "stderr": err.getvalue()[-3000:],
            "seconds": round(time.perf_counter() - t0, 1)}


def lowest_priority() -> None:
    """Run only on CPU time no other process wants (Linux's SCHED_IDLE, inherited by the
    threads and processes the scripts start). Measured in full runs of the suite: 865 s
    beside this runner at equal priority, 833-932 s at nice 19, 745 s at SCHED_IDLE. FAISS's
    tests, which time single queries split over both cores, still ran ~10x slower beside it
    even then: tests/conftest.py runs them before it starts."""
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    except (AttributeError, OSError):  # not Linux
        os.nice(19)


def main() -> None:
    lowest_priority()
    jobs_file, results_file = sys.argv[1:3]
    with open(jobs_file) as f:
        jobs = json.load(f)
    results = {}
    for job in jobs:
        results[job["name"]] = run(job["script"], job["args"])
        with open(results_file, "w") as f:  # after each: a crash leaves what ran before it
            json.dump(results, f)
    sys.stdout.flush()
    os._exit(0)  # a thread a script left behind does not hold the runner


if __name__ == "__main__":
    main()
