import shutil

import numpy as np

from actdb.store.check import check_store
from actdb.store.shards import write_shard


def _copy(built_store, tmp_path):
    dst = tmp_path / "copy"
    shutil.copytree(built_store, dst)
    return dst


def test_consistent_store_passes(built_store):
    rep = check_store(built_store)
    assert rep.ok, rep.problems
    assert rep.images == rep.vectors == rep.index_ids == 18


def test_a_moved_store_still_works(built_store, tmp_path):
    from actdb.store.store import Store

    moved = _copy(built_store, tmp_path)
    assert check_store(moved).ok
    with Store.open(moved).connect() as con:
        assert con.execute("SELECT count(*) FROM activations").fetchone()[0] == 18


def test_missing_shard_and_orphan_shard_are_reported(built_store, tmp_path):
    s = _copy(built_store, tmp_path)
    shard = next((s / "activations").glob("part-*.parquet"))
    shard.rename(s / "activations" / "part-zz-orphan.parquet")
    rep = check_store(s)
    text = " ".join(rep.problems)
    assert not rep.ok
    assert "missing on disk" in text and "not in the catalog" in text
    assert "images without a vector" in text


def test_wrong_dim_and_duplicate_ids_are_reported(built_store, tmp_path):
    import duckdb

    s = _copy(built_store, tmp_path)
    write_shard(s, "part-bad.parquet", np.array([0, 1]), np.zeros((2, 7), np.float32))
    con = duckdb.connect(str(s / "catalog.duckdb"))
    con.execute("INSERT INTO shards VALUES ('part-bad.parquet', 2, 99, now())")
    con.close()
    text = " ".join(check_store(s).problems)
    assert "dim 7" in text and "duplicate vector ids" in text


def test_index_disagreeing_with_catalog_is_reported(built_store, tmp_path):
    import duckdb

    s = _copy(built_store, tmp_path)
    con = duckdb.connect(str(s / "catalog.duckdb"))
    con.execute("DELETE FROM images WHERE image_id = 3")
    con.close()
    text = " ".join(check_store(s).problems)
    assert "orphan vectors" in text and "index ids differ" in text
