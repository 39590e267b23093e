"""The query context's early index read (a thread that runs while the catalog opens)."""

import shutil

import numpy as np
import pytest

import actdb
from actdb.errors import StoreError
from actdb.query.context import QueryContext
from actdb.store.catalog import files
from actdb.store.store import Store


@pytest.fixture
def store(built_store, tmp_path):
    return shutil.copytree(built_store, tmp_path / "store")


def test_an_early_read_answers_like_a_plain_one(store):
    early, plain = QueryContext(Store.open(store)), QueryContext(Store.open(store))
    early.load_index_early()
    thread = early._loading[0]
    early.refresh_if_changed()
    plain.refresh_if_changed()
    assert early.index.ntotal == plain.index.ntotal
    assert not thread.is_alive() and early._loading is None
    np.testing.assert_array_equal(early.index.ids, plain.index.ids)
    early.close()
    plain.close()


def test_an_index_replaced_after_the_early_read_is_read_again(store):
    ctx = QueryContext(Store.open(store))
    ctx.load_index_early()
    ctx._loading[0].join()
    old = ctx._loading[1]["index"]
    actdb.open(store).space().index(kind="flat", metric="cosine")  # new files
    ctx.refresh_if_changed()
    assert ctx.index is not old and ctx.index.metric == "cosine"
    ctx.close()


def test_an_error_of_the_early_read_is_raised_by_the_query(store):
    files.index_path(Store.open(store).dir).unlink()
    db = actdb.open(store)
    with pytest.raises(StoreError, match="index"):
        db.space().nearest("id:0", k=3)
    db.close()


def test_close_waits_for_the_early_read(store):
    ctx = QueryContext(Store.open(store))
    ctx.load_index_early()
    thread = ctx._loading[0]
    ctx.close()
    assert not thread.is_alive() and ctx._loading is None
