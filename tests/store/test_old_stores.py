"""A store made by an earlier actdb (tests/fixtures/make_old_store.py, at the commit its JSON
names) opens with today's code and answers exactly as it did then."""

import json
import tarfile
from pathlib import Path

import numpy as np
import pytest

import actdb

FIXTURES = Path(__file__).parents[1] / "fixtures"
THEN = json.loads((FIXTURES / "store-format2.json").read_text())


@pytest.fixture
def old(tmp_path):
    with tarfile.open(FIXTURES / "store-format2.tgz") as tar:
        tar.extractall(tmp_path, filter="data")
    return tmp_path


@pytest.mark.slow  # a second of queries; the full suite runs it
def test_an_old_store_answers_nearest_centroids_and_sql_as_it_did(old):
    from tests.fixtures.make_old_store import QUERIES

    with actdb.open(old / "store") as db:
        near = db.space().nearest("id:0", k=5).neighbors
        assert near.image_id.tolist() == THEN["nearest_id0"]["image_id"]
        np.testing.assert_allclose(near.distance, THEN["nearest_id0"]["distance"], rtol=1e-6)
        cents = db.space().centroids("id:4", k=3)
        for col, values in THEN["centroids_id4"].items():
            if col in ("class_name", "inside"):
                assert cents[col].tolist() == values
            else:
                np.testing.assert_allclose(cents[col], values, rtol=1e-6)
        for name, q in QUERIES.items():
            rows = db.sql(q).to_pylist()
            assert len(rows) == len(THEN["sql"][name]), name
            for row, then in zip(rows, THEN["sql"][name], strict=True):
                assert row == pytest.approx(then), name
        info = db.info()
        assert info["model_fingerprint"] == THEN["manifest"]["fingerprint"]
        assert (info["images"], info["damaged"]) == (9, [])
        spaces = db.spaces()  # upgraded to a store of one space, its default
        assert spaces.vectors.tolist() == [9] and spaces.default.tolist() == [True]
    assert json.loads((old / "store" / "manifest.json").read_text())["format_version"] == 3


@pytest.mark.slow  # builds the store's model
def test_an_old_stores_model_and_image_queries_are_unchanged(old):
    with actdb.open(old / "store") as db:
        assert db.space().embedder.fingerprint == THEN["manifest"]["fingerprint"]
        got = db.space().embed([str(old / "data" / THEN["embed"]["image"])])[0]
    np.testing.assert_allclose(got, THEN["embed"]["vector"], rtol=1e-6, atol=1e-7)


def test_an_old_store_that_cannot_be_written_says_so_in_one_line(old, monkeypatch):
    """Opening upgrades a store from before spaces; where it cannot be written (a read-only
    copy: here the writer's lock file refused, as the OS would for a user without rights)
    that is one clear error, and the store is left as it was."""
    from actdb.errors import StoreError
    from actdb.store import writer

    def refused(self):
        raise PermissionError(13, "Permission denied", str(self.path / ".lock"))

    monkeypatch.setattr(writer.StoreWriter, "__enter__", refused)
    store = old / "store"
    before = (store / "manifest.json").read_text()
    with pytest.raises(StoreError, match="open it once where it can be written"):
        actdb.open(store).count()
    assert (store / "manifest.json").read_text() == before
