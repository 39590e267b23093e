"""Named reads of the catalog against DuckDB's own answers."""

import duckdb
import numpy as np
import pyarrow as pa
import pytest

from actdb.errors import StoreDamaged
from actdb.store.catalog import reads


def test_image_meta_in_memory_equals_the_catalogs_rows(built_store):
    from actdb.store.catalog.connection import reader

    with reader(built_store) as con:
        meta = reads.ImageMeta.read(con)
        ids = np.random.default_rng(0).permutation(meta.ids)[:7]
        want = reads.image_meta(con, ids)
    got = meta.rows(ids)
    assert list(got) == list(reads.META_COLUMNS)
    for c in reads.META_COLUMNS:
        assert got[c].tolist() == want[c].tolist(), c
    assert meta.first is not None  # ingested ids are dense: positions without a search
    for bad in (10_000, -1):
        with pytest.raises(StoreDamaged):
            meta.rows(np.array([ids[0], bad]))


def test_image_meta_keeps_nulls_and_answers_no_ids():
    con = duckdb.connect()
    table = pa.table({"image_id": [5, 7, 9], "class_name": ["a", None, "a"],
                      "synset": ["n1", None, "n1"], "split": ["train"] * 3,
                      "path": ["x.png", "y.png", "zü.png"], "root": ["/r"] * 3})
    con.register("images", table)
    meta = reads.ImageMeta.read(con)
    rows = meta.rows(np.array([9, 7]))
    assert rows["class_name"].tolist() == ["a", None] and rows["path"].tolist() == ["zü.png",
                                                                                     "y.png"]
    with pytest.raises(StoreDamaged):
        meta.rows(np.array([8]))
    assert all(len(v) == 0 for v in meta.rows(np.array([], np.int64)).values())


@pytest.mark.parametrize("chunks", [1, 2])
def test_image_meta_of_a_sliced_chunked_table_with_many_label_combinations(chunks):
    """Arrow hands over columns that start inside their buffers and come in chunks; labels
    combine into codes column by column: every row must come back as the table has it."""
    rng = np.random.default_rng(0)
    n = 300
    cols = {"image_id": np.arange(n) + 10,
            "class_name": [f"c{i}" if i % 7 else None for i in rng.integers(0, 40, n)],
            "synset": [f"n{i}" for i in rng.integers(0, 3, n)],
            "split": rng.choice(["train", "val", "test"], n).tolist(),
            "path": [f"d{i}/ü{'x' * (i % 5)}.png" for i in range(n)],
            "root": rng.choice(["/a", "/bé"], n).tolist()}
    table = pa.table(cols)
    if chunks == 2:
        table = pa.concat_tables([table.slice(0, 100), table.slice(100)])
    table = table.slice(3, 290)  # the columns start 3 rows into their buffers
    meta = reads.ImageMeta(table)
    ids = rng.permutation(np.arange(13, 303))
    got = meta.rows(ids)
    for c in reads.META_COLUMNS:
        want = [cols[c][i - 10] for i in ids]
        assert [v.item() if isinstance(v, np.generic) else v for v in got[c]] == want, c
    with pytest.raises(StoreDamaged):
        meta.rows(np.array([12]))  # sliced off


def test_a_column_of_nulls_reads_as_none_not_numpys_fill_value():
    """Class folders without wnids: every synset NULL must read as None (numpy's default fill
    for objects, '?', once made every such image one class)."""
    con = duckdb.connect()
    con.register("images", pa.table({
        "image_id": [1, 2], "class_name": ["a", "b"], "synset": pa.array([None, None],
                                                                         pa.string()),
        "split": ["train"] * 2, "path": ["x", "y"], "root": ["/r"] * 2}))
    assert reads.image_meta(con, np.array([2, 1]))["synset"].tolist() == [None, None]
    assert reads.image_meta(con)["synset"].tolist() == [None, None]
