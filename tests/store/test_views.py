"""The views kept in the catalog: plain DuckDB sees the same vectors actdb reads."""

import shutil

import duckdb
import numpy as np
import pytest

import actdb
from actdb.store import catalog
from actdb.store.catalog import reads
from actdb.store.store import Store
from actdb.store.writer import StoreWriter


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


def test_a_catalog_without_kept_views_is_read_and_gets_them_on_the_next_write(store):
    """A catalog made before the views were kept in it: actdb gives its own connections the
    views (each listed once), and the next write keeps them in the catalog."""
    with catalog.writer(store) as con:
        con.execute("DROP VIEW activations; DROP VIEW queries")
    db = actdb.open(store)
    assert db.sql("SELECT count(*) AS n FROM activations").to_pylist() == [{"n": db.count()}]
    names = [r["name"] for r in db.sql("SHOW TABLES").to_pylist()]
    assert names.count("activations") == 1
    with catalog.reader(store) as con:
        assert not reads.views_kept(con)
    with StoreWriter(store, Store.open(store).manifest):  # what every ingest opens first
        pass
    with catalog.reader(store) as con:
        assert reads.views_kept(con)
    assert plain(store, "SELECT count(*) FROM activations") == [(db.count(),)]


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
