import shutil

import numpy as np
import pytest

import actdb
from actdb.check import check_store
from actdb.store.shards import write_shard
from actdb.store.store import Store


def _copy(built_store, tmp_path):
    dst = tmp_path / "copy"
    shutil.copytree(built_store, dst)
    return dst


def check(path):
    return check_store(Store.open(path))


def test_consistent_store_passes(built_store):
    rep = check(built_store)
    assert rep.ok, rep.problems
    assert rep.images == rep.vectors == rep.index_ids == 18


def test_a_moved_store_still_works(built_store, tmp_path):
    moved = _copy(built_store, tmp_path)
    assert check(moved).ok
    assert actdb.open(moved).sql("SELECT count(*) AS n FROM activations").to_pylist() == [
        {"n": 18}]


def test_missing_shard_and_orphan_shard_are_reported(built_store, tmp_path):
    s = _copy(built_store, tmp_path)
    shard = next((s / "activations").glob("part-*.parquet"))
    shard.rename(s / "activations" / "part-zz-orphan.parquet")
    rep = check(s)
    text = " ".join(rep.problems)
    assert not rep.ok
    assert "missing on disk" in text and "not in the catalog" in text
    assert "images without a vector" in text


def test_wrong_dim_and_duplicate_ids_are_reported(built_store, tmp_path):
    import duckdb

    s = _copy(built_store, tmp_path)
    write_shard(s, "part-bad.parquet", np.array([0, 1]), np.zeros((2, 7), np.float32))
    con = duckdb.connect(str(s / "catalog.duckdb"))
    con.execute("INSERT INTO shards VALUES ('vgg19/block5_conv4', 'part-bad.parquet', 2, 99, "
                "now())")
    con.close()
    text = " ".join(check(s).problems)
    assert "dim 7" in text and "duplicate vector ids" in text


def test_index_disagreeing_with_catalog_is_reported(built_store, tmp_path):
    import duckdb

    s = _copy(built_store, tmp_path)
    con = duckdb.connect(str(s / "catalog.duckdb"))
    con.execute("DELETE FROM images WHERE image_id = 3")
    con.close()
    text = " ".join(check(s).problems)
    assert "orphan vectors" in text and "index ids differ" in text


@pytest.mark.slow
def test_a_lost_shard_is_named_by_every_command_and_repaired(built_store, tmp_path):
    import shlex

    from typer.testing import CliRunner

    from actdb.cli import app
    from tests.helpers import SIZE, WEIGHTS

    s = _copy(built_store, tmp_path)
    root = actdb.open(s).images().root.iloc[0]
    lost = sorted((s / "activations").glob("part-*.parquet"))[0]
    lost_ids = set(pq_ids(lost))
    lost.unlink()
    runner = CliRunner()
    ingest = (f"ingest {root} --weights {WEIGHTS} --image-size {SIZE} --precision fp32 "
              f"--store {s}")
    for line in (f"info --store {s}", f"sql 'SELECT count(*) FROM activations' --store {s}",
                 f"nearest id:{max(lost_ids) + 1} --store {s}", f"stats --store {s}", ingest):
        res = runner.invoke(app, shlex.split(line))
        assert res.exit_code == 1, (line, res.output)
        assert "store damaged" in res.stderr and "actdb check --repair" in res.stderr, line
        assert res.exception is None or isinstance(res.exception, SystemExit), line
    res = runner.invoke(app, ["check", "--repair", "--store", str(s)])
    assert res.exit_code == 0, res.output
    assert "dropped 1 damaged shard" in res.stdout and "rebuilt the index" in res.stdout
    db = actdb.open(s)
    assert db.images().image_id.tolist() == list(range(18))  # no image lost, no id changed
    assert db.sql("SELECT count(*) AS n FROM activations").to_pylist()[0]["n"] == \
        18 - len(lost_ids)
    res = runner.invoke(app, shlex.split(ingest + " --json"))  # the documented recovery
    assert res.exit_code == 0, res.output
    assert '"ingested": 0' in res.stdout
    assert f'"vgg19/block5_conv4": {len(lost_ids)}' in res.stdout  # embedded again
    again, whole = actdb.open(s), actdb.open(built_store)
    assert again.check().ok
    ids, vecs = again.space().vectors()
    ref_ids, ref = whole.space().vectors()
    np.testing.assert_array_equal(ids, ref_ids)
    np.testing.assert_allclose(vecs, ref, rtol=1e-6, atol=1e-6)  # as if never lost


def test_a_lost_index_is_reported_and_rebuilt(built_store, tmp_path):
    s = _copy(built_store, tmp_path)
    (s / "index.faiss").unlink()
    rep = check(s)
    assert not rep.ok and any("index.faiss is missing" in p for p in rep.problems)
    db = actdb.open(s)
    info = db.info()
    assert info["index"] is None and "index.faiss missing" in info["damaged"]
    with pytest.raises(actdb.errors.StoreDamaged, match="check --repair"):
        db.space().nearest("id:0")
    fixed = actdb.open(s).check(repair=True)
    assert fixed.ok and "rebuilt the index" in fixed.repaired
    assert len(actdb.open(s).space().nearest("id:0", k=3).neighbors) == 3


def pq_ids(path):
    import pyarrow.parquet as pq

    return pq.read_table(path, columns=["image_id"]).column("image_id").to_pylist()


def test_a_catalog_in_duckdb_2s_format_is_rewritten_for_duckdb_1x_clients(built_store,
                                                                         tmp_path):
    """A catalog an earlier actdb wrote in DuckDB 2.x's format (what a plain ``connect``
    makes): check says so, ``--repair`` rewrites it, and then the DuckDB 1.x CLI opens it
    with every row and the views."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    import duckdb

    from actdb.check import repair_store
    from actdb.store import catalog

    s = _copy(built_store, tmp_path)
    cat = s / "catalog.duckdb"
    old = tmp_path / "newest.duckdb"
    con = duckdb.connect(str(old))  # DuckDB's own default: its newest format
    con.execute(f"SET VARIABLE actdb_store = '{s}'")
    con.execute(f"ATTACH '{cat}' AS src (READ_ONLY)")
    con.execute("COPY FROM DATABASE src TO newest")
    con.execute("DETACH src")
    version = con.execute("SELECT tags['storage_version'] FROM duckdb_databases() "
                          "WHERE database_name = current_database()").fetchall()[0][0]
    con.close()
    if catalog.readable_by_1x(version):
        pytest.skip(f"this DuckDB ({duckdb.__version__}) writes {version} by default")
    old.replace(cat)
    rep = check(s)
    assert rep.ok and rep.catalog_format == version
    assert any("DuckDB 1.x clients cannot open" in n for n in rep.notes)
    images = actdb.open(s).images()
    after = repair_store(Store.open(s))
    assert after.ok and after.catalog_format is None, after.notes
    assert any("rewrote catalog.duckdb" in r for r in after.repaired)
    assert actdb.open(s).images().equals(images)
    cli = Path(sys.executable).with_name("duckdb")
    res = subprocess.run([str(cli), "-readonly", "-json", str(cat), "-c",
                          "SELECT (SELECT count(*) FROM images) AS n, "
                          "(SELECT count(*) FROM activations) AS v"],
                         capture_output=True, text=True, timeout=60, cwd=s)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout) == [{"n": 18, "v": 18}]
