import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image, ImageOps

import actdb
from actdb.errors import ActdbWarning, QueryError
from actdb.viz.data import SampleConfig, distance_data, profile_data, sample_vectors
from actdb.viz.maps import MapSpec, map_data


@pytest.fixture(scope="module")
def db(built_store):
    return actdb.open(built_store)


@pytest.fixture(scope="module")
def member_query(db, tmp_path_factory):
    """A new image made from a member of groenendael: mirrored."""
    imgs = db.store.images()
    row = imgs[imgs.class_name == "groenendael"].iloc[0]
    p = tmp_path_factory.mktemp("q") / "mirrored.png"
    ImageOps.mirror(Image.open(f"{row.root}/{row.path}")).save(p)
    return str(p)


def _mean_dist(coords, point, group):
    pts = coords[(coords.kind == "image") & (coords.group == group)][["x", "y"]].to_numpy()
    return np.linalg.norm(pts - point, axis=1).mean()


@pytest.mark.parametrize("method", [pytest.param("umap", marks=pytest.mark.slow),
                                    pytest.param("tsne", marks=pytest.mark.slow), "pca"])
def test_query_from_a_member_lands_nearest_its_class(db, member_query, method):
    m = map_data(db.store, db.space().resolve(member_query), MapSpec.of(method, seed=0))
    q = m.coords[m.coords.kind == "query"][["x", "y"]].to_numpy()[0]
    d = {g: _mean_dist(m.coords, q, g) for g in ("groenendael", "sea_cucumber", "tench")}
    assert min(d, key=d.get) == "groenendael", d
    assert (m.coords.kind == "image").sum() == 18


def test_sample_is_seeded_and_capped(db):
    a = sample_vectors(db.store, SampleConfig(classes=("tench",), random_classes=1, per_class=4,
                                        seed=1))
    b = sample_vectors(db.store, SampleConfig(classes=("tench",), random_classes=1, per_class=4,
                                        seed=1))
    assert (a.ids == b.ids).all() and len(a.ids) == 8
    assert set(a.groups) == {"tench", "1 random class"}
    with pytest.raises(QueryError, match="did you mean tench"):
        sample_vectors(db.store, SampleConfig(classes=("tenhc",)))
    with pytest.raises(QueryError) as far:
        sample_vectors(db.store, SampleConfig(classes=("nosuch",)))
    assert "did you mean" not in str(far.value) and "lists them" in str(far.value)


def test_more_random_classes_than_the_store_has_takes_all_and_says_so(db):
    with pytest.warns(ActdbWarning, match="only 2 other classes; showing all of them"):
        s = sample_vectors(db.store, SampleConfig(classes=("tench",), random_classes=10,
                                                  per_class=2))
    assert set(s.groups) == {"tench", "2 random classes"} and sorted(s.random) == [
        "groenendael", "sea_cucumber"]


def test_coordinates_are_saved_with_parameters(db, tmp_path):
    m = map_data(db.store, db.space().resolve("id:0"), MapSpec.of("pca", per_class=3))
    m.save(tmp_path / "c.parquet")
    t = pq.read_table(tmp_path / "c.parquet")
    assert t.num_rows == 10 and b"actdb" in t.schema.metadata
    assert b'"method": "pca"' in t.schema.metadata[b"actdb"]


def test_histogram_counts_equal_class_sizes(db):
    d = distance_data(db.store, db.space().resolve("id:0"),
                      SampleConfig(classes=("tench", "groenendael"), random_classes=1))
    counts = d.counts.set_index("group")
    assert counts.loc["tench", "n"] == 6 and sum(counts.loc["tench", "counts"]) == 6
    assert sum(counts.loc["groenendael", "counts"]) == 6
    assert sum(counts.loc["1 random class", "counts"]) == 6
    assert set(d.pair_stats.kind) >= {"same_class", "random"}
    log = distance_data(db.store, db.space().resolve("id:0"), SampleConfig(classes=("tench",)),
                        log=True)
    assert np.all(np.diff(np.log(log.bins)) > 0)


def test_profile_is_the_vector_and_the_class_means(db):
    df = profile_data(db.store, db.space().resolve("id:0"), ["tench"])
    ids, vecs = db.store.vectors([0])
    q = df[df.kind == "query"].value.to_numpy()
    np.testing.assert_array_equal(q, vecs[0])
    imgs = db.store.images()
    members = imgs[imgs.class_name == "tench"].image_id.to_numpy()
    mean = db.store.vectors(members)[1].mean(axis=0)
    np.testing.assert_allclose(df[df.kind == "class"].value.to_numpy(), mean, rtol=1e-5)
