"""Spaces in the store layer, without a model: two spaces of different dimension over one
set of images, written by one writer, read back by actdb and by plain DuckDB."""

import duckdb
import numpy as np
import pytest

import actdb
from actdb.check import check_store
from actdb.errors import QueryError
from actdb.store.store import Store
from tests.helpers import synthetic_spaces


@pytest.fixture
def store(tmp_path):
    """Nine images of three classes in spaces ``a`` (4-d, the default) and ``b`` (6-d)."""
    return synthetic_spaces(tmp_path / "s")


def test_each_space_reads_back_its_own_vectors(store):
    path, vecs = store
    s = Store.open(path)
    assert [r.name for r in s.spaces()] == ["synthetic/a", "synthetic/b"]
    for name, v in (("synthetic/a", vecs["a"]), ("synthetic/b", vecs["b"])):
        ids, got = s.in_space(name).vectors()
        np.testing.assert_array_equal(ids, np.arange(9))
        np.testing.assert_array_equal(got, v)
        ids, some = s.in_space(name).vectors([7, 2])
        np.testing.assert_array_equal(some, v[[7, 2]])
    assert (path / "spaces" / "synthetic+b" / "manifest.json").is_file()
    assert s.in_space("b").manifest.dim == 6
    assert check_store(s).ok


def test_plain_duckdb_sees_every_space_in_its_own_fixed_size_view(store):
    path, vecs = store
    con = duckdb.connect(str(path / "catalog.duckdb"), read_only=True)
    try:
        con.execute(f"SET VARIABLE actdb_store = '{path}'")
        views = dict(con.execute("SELECT name, view FROM spaces").fetchall())
        for name, key in (("synthetic/a", "a"), ("synthetic/b", "b")):
            rows = con.execute(f"SELECT vec FROM {views[name]} ORDER BY image_id").fetchall()
            np.testing.assert_array_equal(np.array([r[0] for r in rows], np.float32),
                                          vecs[key])
            dim = vecs[key].shape[1]
            kind = con.execute("SELECT data_type FROM information_schema.columns WHERE "
                               f"table_name = '{views[name]}' AND column_name = 'vec'"
                               ).fetchall()
            assert kind == [(f"FLOAT[{dim}]",)]
        default = con.execute("SELECT vec FROM activations ORDER BY image_id").fetchall()
        np.testing.assert_array_equal(np.array([r[0] for r in default], np.float32),
                                      vecs["a"])
    finally:
        con.close()


def test_statistics_are_kept_per_space_and_match_numpy(store):
    path, vecs = store
    with actdb.open(path) as db:
        db.space().stats()
        db.space("b").stats()
        for name, key in (("synthetic/a", "a"), ("synthetic/b", "b")):
            cents = db.sql(f"SELECT class_key, centroid FROM centroids_all WHERE space = "
                           f"'{name}' ORDER BY class_key").to_pandas()
            for c, (k, got) in enumerate(zip(cents.class_key, cents.centroid, strict=True)):
                assert k == f"c{c}"
                np.testing.assert_allclose(got, vecs[key][c::3].mean(axis=0), rtol=1e-5)
        assert db.sql("SELECT count(*) AS n FROM centroids").to_pylist() == [{"n": 3}]


def test_a_lost_shard_of_one_space_is_dropped_from_that_space_alone(store):
    """Repair unlists the shard in the space that lost it and nowhere else: every image keeps
    its id, the other space keeps every vector, and a comparison involving the damaged space
    (which no longer describes the store) is dropped."""
    path, vecs = store
    with actdb.open(path) as db:
        db.space().stats()
        db.space("b").stats()
        db.compare(sample=9, queries=9, pairs=20)
        assert db.sql("SELECT count(*) AS n FROM space_similarity").to_pylist() == [{"n": 1}]
    lost = next((path / "spaces" / "synthetic+b" / "activations").glob("part-*"))
    lost.unlink()
    rep = check_store(Store.open(path))
    assert any(p.startswith("space synthetic/b: shard") for p in rep.problems)
    assert rep.bad_shards == {"synthetic/a": [], "synthetic/b": [lost.name]}
    with actdb.open(path) as db:
        after = db.check(repair=True)
        assert after.ok, after.problems
        assert any("not embedded in this space yet" in n for n in after.notes)
        assert any("dropped 1 damaged shard(s) of synthetic/b" in r for r in after.repaired)
        assert db.count() == 9
        assert db.images().image_id.tolist() == list(range(9))
        ids, a = db.space().vectors()
        np.testing.assert_array_equal(ids, np.arange(9))
        np.testing.assert_array_equal(a, vecs["a"])  # the sound space is untouched
        ids_b, b = db.space("b").vectors()
        keep = np.isin(np.arange(9), ids_b)
        assert len(ids_b) < 9 and not keep.all()
        np.testing.assert_array_equal(b, vecs["b"][keep])
        assert db.sql("SELECT count(*) AS n FROM space_similarity").to_pylist() == [{"n": 0}]
        assert db.sql("SELECT space FROM space_separation").to_pylist() == [
            {"space": "synthetic/a"}]
        assert db.sql("SELECT count(*) AS n FROM repairs").to_pylist() == [{"n": 0}]


@pytest.mark.slow  # three stores, a merge, its index and statistics: seconds
def test_stores_of_the_same_spaces_merge_space_by_space(tmp_path):
    a, va = synthetic_spaces(tmp_path / "a", n=7, seed=1, root="/one")
    b, vb = synthetic_spaces(tmp_path / "b", n=5, seed=2, root="/two")
    res = actdb.merge(tmp_path / "m", [a, b])
    assert (res.added, res.renumbered) == (12, 5)
    with actdb.open(tmp_path / "m") as db:
        images = db.images().set_index("image_id")
        for name in ("synthetic/a", "synthetic/b"):
            ids, got = db.space(name).vectors()
            for i, v in zip(ids, got, strict=True):
                src = va if images.root[i] == "/one" else vb
                n = int(images.path[i].split("/")[1].split(".")[0])  # c{k}/{n}.png
                np.testing.assert_array_equal(v, src[name[-1]][n])
    assert check_store(Store.open(tmp_path / "m")).ok
    other, _ = synthetic_spaces(tmp_path / "c", n=5, dims=(4,))
    with pytest.raises(actdb.ActdbError, match="same spaces"):
        actdb.merge(tmp_path / "m2", [a, other])


def test_a_map_belongs_to_its_space(store):
    path, _ = store
    with actdb.open(path) as db:
        mine = db.space().map("pca", per_class=3)
        theirs = db.space("b").map("pca", per_class=3)
        assert mine.map_id != theirs.map_id
        assert db.space("b").stored_map(theirs.map_id).points.image_id.tolist() == \
            theirs.points.image_id.tolist()
        with pytest.raises(QueryError, match="a map of the space synthetic/b"):
            db.space().stored_map(theirs.map_id)


def test_every_spaces_named_queries_are_in_queries_all(store):
    path, vecs = store
    with actdb.open(path) as db:
        db.space().resolve(vecs["a"][1], names=["in_a"])
        db.space("b").resolve(vecs["b"][2], names=["in_b"])
        rows = db.sql("SELECT space, name, route, vec FROM queries_all ORDER BY name"
                      ).to_pylist()
        assert [(r["space"], r["name"]) for r in rows] == [("synthetic/a", "in_a"),
                                                           ("synthetic/b", "in_b")]
        np.testing.assert_array_equal(np.array(rows[1]["vec"], np.float32), vecs["b"][2])
        assert db.sql("SELECT name FROM queries").to_pylist() == [{"name": "in_a"}]
