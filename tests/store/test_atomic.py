"""Every file a store is written through ``atomic_write``: a writer killed before its rename
leaves only a temp file that ``check`` names and ``check --repair`` removes."""

import os
import shutil
import subprocess
import sys
import textwrap

import pytest

from actdb.check import check_store, repair_store
from actdb.store.catalog import files
from actdb.store.store import Store

#: One writer of each kind, run in a process that is killed (SIGKILL) where it would rename
#: its finished temp file into place: the worst moment for a crash.
WRITERS = {
    "shard": "from actdb.store.shards import write_shard\n"
             "import numpy as np\n"
             "write_shard(store, 'part-killed.parquet', np.arange(2), np.ones((2, 512)))",
    "manifest": "from actdb.store.manifest import read_manifest, write_manifest\n"
                "write_manifest(store, read_manifest(store))",
    "index": "from actdb.index.faiss_index import load_index, save_index\n"
             "save_index(store, *load_index(store, mmap=False))",
    "map": "import actdb\nactdb.open(store).space().map('pca', per_class=2)",
    "catalog": "from actdb.store.catalog import rewrite_catalog\nrewrite_catalog(store)",
}


@pytest.mark.slow
@pytest.mark.parametrize("kind", sorted(WRITERS))
def test_a_killed_writer_leaves_a_temp_file_that_repair_removes(built_store, tmp_path, kind):
    store = tmp_path / "store"
    shutil.copytree(built_store, store)
    script = textwrap.dedent(f"""
        import os, signal
        from pathlib import Path
        os.replace = lambda *a: os.kill(os.getpid(), signal.SIGKILL)
        store = Path({str(store)!r})
    """) + WRITERS[kind]
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=120, env={**os.environ, "PYTHONPATH": os.getcwd()})
    assert out.returncode == -9, out.stderr[-2000:]
    left = files.temp_files(store)
    assert len(left) == 1, left
    before = check_store(Store.open(store))
    assert any(left[0].name in p for p in before.problems), before.problems
    after = repair_store(Store.open(store))
    assert after.ok, after.problems
    assert not [p for p in store.rglob("*") if p.name.endswith(".tmp")]
