"""Each benchmark script runs end to end on tiny sizes, so none of them rots. The figures
themselves come from full runs recorded in bench/RESULTS.md, never from CI."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # each runs a benchmark script in a subprocess

BENCH = Path(__file__).parents[1] / "bench"
TINY = {
    "ingest.py": ["--images", "16", "--size", "32", "--batch", "8"],
    "codes.py": ["--n", "3000", "--dim", "64", "--classes", "20", "--queries", "10",
                 "--timed", "2"],
    "query.py": ["--n", "3000", "--classes", "20", "--queries", "10", "--exact-queries", "3",
                 "--image-size", "32"],
    "dream.py": ["--size", "32", "--steps", "3"],
    "atlas.py": ["--size", "32", "--batches", "1,2", "--steps", "4", "--precisions", "fp32",
                 "--atlas-channels", "2"],
    "serve.py": ["--size", "32", "--images", "16", "--requests", "2", "--uploads", "1"],
    "viz.py": ["--sizes", "200", "--cold-points", "30", "--cold-methods", "auto"],
    "routes.py": ["--image-size", "32", "--runs", "1"],
    "spaces.py": ["--images", "8", "--size", "32", "--batch", "4", "--sample", "2000",
                  "--store-images", "3000", "--rounds", "1", "--asks", "2"],
    "vs_notebook.py": ["--images", "8", "--size", "32"],
    "runtimes.py": ["--size", "32", "--images", "16", "--batch", "8", "--seconds", "0.5"],
    "vs_engines.py": ["--n", "3000", "--classes", "20", "--queries", "5", "--slow-queries",
                      "2"],
    "vs_pandas.py": ["--n", "3000", "--classes", "20"],
    "machine.py": ["--size", "32", "--images", "8", "--batch", "4"],
    "gpu.py": ["--images", "100", "--size", "32", "--batches", "4", "--backends", "tensorflow",
               "--seconds", "0.5", "--workers", "1"],
}


def test_the_ray_engine_benchmark_runs_on_tiny_sizes():
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    out = subprocess.run([sys.executable, str(BENCH / "ingest.py"), "--engine", "ray",
                          "--images", "16", "--size", "32", "--batch", "8"],
                         capture_output=True, text=True, env=env, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "of the local engine" in out.stdout


def test_every_script_is_covered():
    assert {p.name for p in BENCH.glob("*.py")} - {"common.py"} == set(TINY)


@pytest.mark.parametrize("script", sorted(TINY))
def test_bench_script_runs_on_tiny_sizes(script):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    out = subprocess.run([sys.executable, str(BENCH / script), *TINY[script]],
                         capture_output=True, text=True, env=env, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.startswith("machine: "), out.stdout[:500]


@pytest.mark.parametrize("script", sorted(TINY))
def test_every_bench_option_is_described(script):
    import re

    out = subprocess.run([sys.executable, str(BENCH / script), "--help"], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert "python bench/" in text  # the whole docstring, not its first line
    lines = text.split("options:")[1].splitlines()
    for i, line in enumerate(lines):
        if re.match(r"^  --?[a-z]", line):
            described = re.search(r"\S\s{2,}\S", line.strip()) or (
                i + 1 < len(lines) and lines[i + 1].startswith(" " * 20))
            assert described, f"{script}: {line.strip()} has no description"
