"""Readers in other processes query the store while an ingest appends to it."""

import subprocess
import sys
import time

import pytest

import actdb
from tests.helpers import SIZE, WEIGHTS, make_tree

pytestmark = pytest.mark.slow  # an ingest subprocess watched by readers


def test_queries_succeed_and_see_whole_shards_while_an_ingest_appends(tmp_path):
    root = make_tree(tmp_path / "data", per_class=40)
    store = tmp_path / "s"
    proc = subprocess.Popen(
        [sys.executable, "-m", "actdb", "ingest", str(root), "--store", str(store),
         "--weights", WEIGHTS, "--image-size", str(SIZE), "--precision", "fp32",
         "--batch-size", "2", "--rows-per-shard", "6", "--json"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    seen = []
    deadline = time.monotonic() + 300
    while proc.poll() is None and time.monotonic() < deadline:
        if (store / "catalog.duckdb").exists() and (store / "manifest.json").exists():
            db = actdb.open(store)
            n_images, n_vectors = db.sql(
                "SELECT (SELECT count(*) FROM images), (SELECT count(*) FROM activations)"
            ).to_pylist()[0].values()
            assert n_images == n_vectors  # a reader never sees half a commit
            assert n_images % 6 == 0 or n_images == 120
            seen.append(n_images)
        time.sleep(0.05)
    assert proc.wait(timeout=60) == 0, proc.stderr.read()[-2000:]
    assert seen == sorted(seen) and len(set(seen)) > 2, seen  # it watched the store grow
    assert actdb.open(store).check().ok
