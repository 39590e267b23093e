"""A real ingest process killed with SIGKILL mid-run, then run again, ends with every image
exactly once and the same vectors as an uninterrupted run. Only the runs that are killed are
processes of their own; the reference and the finishing run are ingests in this one."""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import actdb
from actdb.store.store import Store
from tests.helpers import SIZE, WEIGHTS, make_tree

OPTIONS = dict(weights=WEIGHTS, image_size=SIZE, precision="fp32", batch_size=2,
               rows_per_shard=4)

pytestmark = pytest.mark.slow  # real ingest processes, killed and rerun


def _cmd(root, store, decoders="threads"):
    return [sys.executable, "-m", "actdb", "ingest", str(root), "--store", str(store),
            "--weights", WEIGHTS, "--image-size", str(SIZE), "--precision", "fp32",
            "--batch-size", "2", "--rows-per-shard", "4", "--decoders", decoders, "--json"]


def _committed_files(store):
    d = store / "activations"
    return len(list(d.glob("part-*.parquet"))) if d.exists() else 0


def _kill_when(store, proc, shards: int, timeout: float = 120) -> bool:
    """SIGKILL ``proc`` once ``shards`` shard files exist; False if it finished first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        if _committed_files(store) >= shards:
            os.killpg(proc.pid, signal.SIGKILL)  # the ingest and its decoding processes
            proc.wait()
            return True
        time.sleep(0.002)
    os.killpg(proc.pid, signal.SIGKILL)
    raise AssertionError("ingest did not make progress")


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The tree and its uninterrupted ingest, made once for every way of killing it."""
    base = tmp_path_factory.mktemp("resume")
    root = make_tree(base / "data", per_class=30)
    actdb.open(base / "ref").ingest(root, **OPTIONS)
    return root, base / "ref"


@pytest.mark.parametrize("decoders", ["threads", "processes"])
def test_killed_ingest_resumes_without_duplicates_or_gaps(reference, tmp_path, decoders):
    root, ref = reference
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    store = tmp_path / "killed"
    kills = 0
    for target in (2, 8):  # kill twice at different points, then let it finish
        proc = subprocess.Popen(_cmd(root, store, decoders), env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True)
        kills += _kill_when(store, proc, target)
    assert kills >= 1, "the ingest finished before it could be killed"
    res = actdb.open(store).ingest(root, decoders=decoders, **OPTIONS)
    assert res.skipped > 0 and res.skipped + res.ingested == 90  # earlier work was kept

    rep = actdb.open(store).check()
    assert rep.ok, rep.problems
    a, b = Store.open(ref), Store.open(store)
    ia, ib = a.images(), b.images()
    assert len(ib) == 90 and ib.path.is_unique and ib.image_id.is_unique
    assert sorted(ia.path) == sorted(ib.path)
    va = dict(zip(ia.path, a.vectors(ia.image_id.to_numpy())[1], strict=True))
    vb = dict(zip(ib.path, b.vectors(ib.image_id.to_numpy())[1], strict=True))
    for p in va:
        np.testing.assert_allclose(va[p], vb[p], rtol=0, atol=1e-6)
    # ids are assigned in listing order and rolled back with uncommitted shards, so they
    # match the uninterrupted run too
    assert dict(zip(ia.path, ia.image_id, strict=True)) == dict(
        zip(ib.path, ib.image_id, strict=True))
