"""The views kept in the catalog: plain DuckDB sees the same vectors actdb reads."""

import shutil
from pathlib import Path

import duckdb
import numpy as np
import pytest

import actdb
from actdb.store import catalog
from actdb.store.store import Store


@pytest.fixture
def store(built_store, tmp_path):
    copy = tmp_path / "moved" / "store"
    shutil.copytree(built_store, copy)  # a moved store: the views name nothing absolute
    return copy


def plain(store, sql: str):
    con = duckdb.connect(str(store / "catalog.duckdb"), read_only=True)
    try:
        con.execute(f"SET VARIABLE actdb_store = '{store}'")
        return con.execute(sql).fetchall()
    finally:
        con.close()


def test_the_kept_activations_view_holds_exactly_the_shards_vectors(store):
    ids, vecs = Store.open(store).vectors()  # read from the Parquet files by pyarrow
    rows = plain(store, "SELECT image_id, vec FROM activations ORDER BY image_id")
    assert [r[0] for r in rows] == ids.tolist()
    np.testing.assert_array_equal(np.array([r[1] for r in rows], np.float32), vecs)
    kind = plain(store, "SELECT data_type FROM information_schema.columns "
                 "WHERE table_name = 'activations' AND column_name = 'vec'")
    assert kind == [(f"FLOAT[{vecs.shape[1]}]",)]


def test_a_store_from_before_spaces_without_kept_views_gets_them_when_opened(tmp_path):
    """A format-2 catalog made before the views were kept in it: opening it upgrades the
    store, and plain DuckDB then sees the views, each once."""
    import tarfile

    from actdb.store.manifest import FORMAT_VERSION, read_manifest

    fixtures = Path(__file__).parents[1] / "fixtures"
    with tarfile.open(fixtures / "store-format2.tgz") as tar:
        tar.extractall(tmp_path, filter="data")
    old = tmp_path / "store"
    con = duckdb.connect(str(old / "catalog.duckdb"))
    con.execute("DROP VIEW activations; DROP VIEW queries")
    n = con.execute("SELECT count(*) FROM images").fetchall()[0][0]
    con.close()
    db = actdb.open(old)
    assert db.sql("SELECT count(*) AS n FROM activations").to_pylist() == [{"n": n}]
    names = [r["name"] for r in db.sql("SHOW TABLES").to_pylist()]
    assert names.count("activations") == 1
    db.close()
    assert read_manifest(old).format_version == FORMAT_VERSION
    assert plain(old, "SELECT count(*) FROM activations") == [(n,)]


def test_the_row_types_agree_with_the_catalogs_tables(store):
    """``ImageRow``/``FailureRow`` and the Arrow types derived from them name the tables'
    columns with their DuckDB types (the commit inserts them by name)."""
    from actdb.store.catalog.schema import FailureRow, ImageRow, arrow_types

    duck = {"BIGINT": "int64", "VARCHAR": "string", "INTEGER": "int32"}
    with catalog.reader(store) as con:
        for table, row in (("images", ImageRow), ("failures", FailureRow)):
            cols = dict(con.execute(f"SELECT column_name, data_type FROM "
                                    f"information_schema.columns WHERE table_name = '{table}'"
                                    ).fetchall())
            assert set(row._fields) <= set(cols), table
            if row is ImageRow:
                assert [str(t) for t in arrow_types(row)] == [duck[cols[f]]
                                                              for f in row._fields]
