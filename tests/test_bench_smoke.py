"""Each benchmark script runs end to end on tiny sizes, so none of them rots. The figures
themselves come from full runs recorded in bench/RESULTS.md, never from CI. Every script
(and its --help) runs in one interpreter (tests/bench_runner.py): TensorFlow is imported
once, not once a script. That interpreter starts with the first test after FAISS's
(tests/conftest.py calls ``start``) and works beside the other tests at the lowest priority
(tests/bench_runner.py: only on CPU time they leave idle, which is much of it: most of them
keep one of the two cores busy). These tests run last and wait for what it wrote."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # the benchmark scripts, run in a subprocess

BENCH = Path(__file__).parents[1] / "bench"
TINY = {
    "ingest.py": ["--images", "16", "--size", "32", "--batch", "8"],
    "codes.py": ["--n", "3000", "--dim", "64", "--classes", "20", "--queries", "10",
                 "--timed", "2"],
    "query.py": ["--n", "3000", "--classes", "20", "--queries", "10", "--exact-queries", "3",
                 "--image-size", "32", "--sets", "realistic", "--runs", "1"],
    "dream.py": ["--size", "32", "--steps", "3"],
    "atlas.py": ["--size", "32", "--batches", "1,2", "--steps", "4", "--precisions", "fp32",
                 "--atlas-channels", "2"],
    "serve.py": ["--size", "32", "--images", "16", "--requests", "2", "--uploads", "1"],
    "viz.py": ["--sizes", "200", "--cold-points", "30", "--cold-methods", "auto"],
    "routes.py": ["--image-size", "32", "--runs", "1", "--precisions", "fp32"],
    "spaces.py": ["--images", "8", "--size", "32", "--batch", "4", "--sample", "2000",
                  "--store-images", "3000", "--rounds", "1", "--asks", "1",
                  "--added-model", "vgg16"],
    "vs_notebook.py": ["--images", "8", "--size", "32"],
    "runtimes.py": ["--size", "32", "--images", "16", "--batch", "8", "--seconds", "0.5"],
    "frameworks.py": ["--size", "32", "--batch", "4", "--seconds", "0.5", "--images", "8",
                      "--runs", "1"],
    "vs_engines.py": ["--n", "3000", "--classes", "20", "--queries", "5", "--slow-queries",
                      "2"],
    "vs_pandas.py": ["--n", "3000", "--classes", "20"],
    "machine.py": ["--size", "32", "--images", "8", "--batch", "4"],
    "gpu.py": ["--images", "100", "--size", "32", "--batches", "4", "--backends", "tensorflow",
               "--seconds", "0.5", "--workers", "1"],
}


RAY = ["--engine", "ray", "--images", "16", "--size", "32", "--batch", "8"]


def _jobs() -> list[dict]:
    jobs = [{"name": f"run {s}", "script": str(BENCH / s), "args": a} for s, a in TINY.items()]
    jobs += [{"name": "run ingest.py --engine ray", "script": str(BENCH / "ingest.py"),
              "args": RAY}]
    return jobs + [{"name": f"help {s}", "script": str(BENCH / s), "args": ["--help"]}
                   for s in TINY]


_runner: dict = {}  # the one background runner of this session: its process and folder


def start() -> None:
    """Start the runner in its own process group (once), its output into files."""
    if _runner:
        return
    base = Path(tempfile.mkdtemp(prefix="actdb-bench-smoke-"))
    (base / "jobs.json").write_text(json.dumps(_jobs()))
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "ACTDB_ONNX": "0"}
    with open(base / "stdout", "w") as out, open(base / "stderr", "w") as err:
        proc = subprocess.Popen([sys.executable, str(Path(__file__).parent / "bench_runner.py"),
                                 str(base / "jobs.json"), str(base / "results.json")],
                                stdout=out, stderr=err, env=env, start_new_session=True)
    _runner.update(proc=proc, base=base)


def stop() -> None:
    """End the runner's process group if it still runs, and remove its folder."""
    if not _runner:
        return
    proc, base = _runner.pop("proc"), _runner.pop("base")
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def ran() -> dict:
    """What each tiny run and each --help did (one runner process for all of them)."""
    start()  # tests/conftest.py started it already; a no-op then
    proc, base = _runner["proc"], _runner["base"]
    try:
        proc.wait(timeout=1500)
    except subprocess.TimeoutExpired:
        stop()
        raise
    results = (json.loads((base / "results.json").read_text())
               if (base / "results.json").exists() else {})
    assert proc.returncode == 0 and len(results) == len(_jobs()), \
        f"the runner stopped after {list(results)[-1:]}: {(base / 'stderr').read_text()[-3000:]}"
    yield results
    stop()


def test_every_script_is_covered():
    assert {p.name for p in BENCH.glob("*.py")} - {"common.py"} == set(TINY)


@pytest.mark.parametrize("script", sorted(TINY))
def test_bench_script_runs_on_tiny_sizes(ran, script):
    r = ran[f"run {script}"]
    assert r["code"] == 0, r["stderr"]
    assert r["stdout"].startswith("machine: "), r["stdout"][:500]


def test_the_ray_engine_benchmark_runs_on_tiny_sizes(ran):
    r = ran["run ingest.py --engine ray"]
    assert r["code"] == 0, r["stderr"]
    assert "of the local engine" in r["stdout"]


@pytest.mark.parametrize("script", sorted(TINY))
def test_every_bench_option_is_described(ran, script):
    r = ran[f"help {script}"]
    assert r["code"] == 0, r["stderr"]
    text = r["stdout"]
    assert "python bench/" in text  # the whole docstring, not its first line
    lines = text.split("options:")[1].splitlines()
    for i, line in enumerate(lines):
        if re.match(r"^  --?[a-z]", line):
            described = re.search(r"\S\s{2,}\S", line.strip()) or (
                i + 1 < len(lines) and lines[i + 1].startswith(" " * 20))
            assert described, f"{script}: {line.strip()} has no description"
