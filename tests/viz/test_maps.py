import shutil

import numpy as np
import pytest

import actdb
from actdb.store.writer import StoreWriter
from actdb.viz.maps import MapSpec, find_map, get_map, list_maps
from actdb.viz.projection import ProjectionConfig, Projector
from tests.helpers import SIZE, WEIGHTS, make_tree


@pytest.fixture
def db(built_store, tmp_path):
    shutil.copytree(built_store, tmp_path / "store")
    return actdb.open(tmp_path / "store")


def test_a_map_is_made_once_then_read_back(db):
    spec = MapSpec.of("pca", per_class=4)
    first = get_map(db.store, spec)
    again = get_map(db.store, spec)
    assert first.made and not again.made
    assert str(again.created_at) == str(first.created_at)
    np.testing.assert_allclose(again.points[["x", "y"]], first.points[["x", "y"]])
    assert len(first.points) == 12 and first.points.groupby("class_name").size().eq(4).all()
    listed = list_maps(db.store).set_index("map_id")
    assert listed.loc[spec.map_id, "current"] and listed.loc[spec.map_id, "points"] == 12
    other = MapSpec.of("pca", per_class=2, classes=("tench",), random_classes=1, seed=3)
    get_map(db.store, other)
    listed = list_maps(db.store).set_index("map_id")  # two PCA maps, told apart
    assert listed.loc[spec.map_id, ["sample", "seed"]].tolist() == ["every class, 4 per class",
                                                                    0]
    assert listed.loc[other.map_id, ["sample", "seed"]].tolist() == [
        "tench + 1 random class, 2 per class", 3]
    many = MapSpec.of("pca", per_class=2, random_classes=10)  # the store has 3 classes
    get_map(db.store, many)
    assert list_maps(db.store).set_index("map_id").loc[many.map_id, "sample"] == \
        "3 random classes, 2 per class"


@pytest.mark.slow
def test_a_map_goes_stale_when_images_are_added_and_is_made_again(db, tmp_path):
    spec = MapSpec.of("pca", per_class=None)
    assert len(get_map(db.store, spec).points) == 18
    db.ingest(make_tree(tmp_path / "more", per_class=2, seed=5), batch_size=8, weights=WEIGHTS,
              image_size=SIZE, precision="fp32")
    assert not find_map(db.store, spec.map_id).current
    with pytest.raises(actdb.ActdbError, match="stale.*actdb map"):
        get_map(db.store, spec, build=False)
    again = get_map(db.store, spec)
    assert again.made and again.current and len(again.points) == 24


def test_pca_placement_matches_numpy_pca_of_the_sample(db):
    m = get_map(db.store, MapSpec.of("pca", per_class=None))
    _, x = db.space().vectors(m.points.image_id.to_numpy())
    x = x.astype(np.float64)
    mean = x.mean(axis=0)
    _, _, vt = np.linalg.svd(x - mean, full_matrices=False)
    q = db.space().vectors([0, 7])[1].astype(np.float64) + 0.01
    want = (q - mean) @ vt[:2].T
    got = m.place(q)
    sign = np.sign((got * want).sum(axis=0))  # each axis is defined up to its sign
    np.testing.assert_allclose(got, want * sign, rtol=1e-4, atol=1e-7)
    want_points = (x - mean) @ vt[:2].T * sign
    np.testing.assert_allclose(m.points[["x", "y"]].to_numpy(), want_points, rtol=1e-3,
                               atol=1e-6)


@pytest.mark.parametrize("method", [pytest.param(m, marks=pytest.mark.slow)
                                    for m in ("tsne", "umap")] + ["pca"])
def test_a_placed_member_lands_among_its_class(db, method):
    m = get_map(db.store, MapSpec.of(method))
    ids, vecs = db.space().vectors(m.points.image_id.to_numpy())
    xy = m.place(vecs[:: 6] + 1e-4)  # one member of each class, nudged
    pts = m.points[["x", "y"]].to_numpy()
    for (px, py), own in zip(xy, m.points.class_name.to_numpy()[:: 6], strict=True):
        nearest = np.argsort(np.hypot(pts[:, 0] - px, pts[:, 1] - py))[:3]
        assert (m.points.class_name.to_numpy()[nearest] == own).all()


@pytest.mark.slow  # t-SNE: about 2 s
def test_a_saved_projector_places_exactly_like_the_fitted_one(tmp_path):
    x = np.random.default_rng(1).normal(size=(60, 20))
    p = Projector(ProjectionConfig(method="tsne", pca_dims=10))
    p.fit(x)
    p.save(tmp_path / "p.pkl")
    np.testing.assert_array_equal(Projector.load(tmp_path / "p.pkl").transform(x[:3]),
                                  p.transform(x[:3]))


def test_a_busy_store_still_gets_its_map_unstored(db):
    with StoreWriter(db.path, db.space().manifest):  # another writer holds the store
        m = get_map(db.store, MapSpec.of("pca", per_class=2))
    assert m.made and not m.stored and len(m.points) == 6
    assert m.place(db.space().vectors([0])[1]).shape == (1, 2)
    assert find_map(db.store, m.map_id) is None


def test_database_places_queries_and_measures_distances_to_every_point(db):
    m = db.space().map("pca", per_class=3)
    res = db.space().place(["id:0", "id:5"], m.map_id, distances=True)
    assert res.coords.name.tolist() == ["id:0", "id:5"]
    _, x = db.space().vectors(m.points.image_id.to_numpy())
    q = db.space().vectors([0])[1][0]
    np.testing.assert_allclose(res.distances[0], np.linalg.norm(x - q, axis=1), rtol=1e-5)
    with pytest.raises(actdb.ActdbError, match="no map nope"):
        db.space().place("id:0", "nope")


@pytest.mark.slow
def test_tsne_placement_agrees_with_opentsnes_own_transform():
    from openTSNE import TSNE

    from actdb.viz.projection import place_tsne

    rng = np.random.default_rng(0)
    centres = rng.normal(0, 4, (6, 10))
    x = centres[np.arange(900) % 6] + rng.normal(size=(900, 10))
    q = centres[:3] + rng.normal(size=(3, 10))
    emb = TSNE(random_state=0, n_jobs=1).fit(x)
    want = np.asarray(emb.transform(q, n_iter=250))
    got = place_tsne(emb, q)
    scale = np.ptp(np.asarray(emb), axis=0).max()
    assert np.linalg.norm(got - want, axis=1).max() < 0.03 * scale


def test_the_default_method_is_chosen_by_the_maps_size(db):
    """``auto``: openTSNE's t-SNE for a small map (UMAP's compile alone takes ~10 s a
    process), UMAP from AUTO_UMAP_FROM points; the id names the method chosen."""
    from actdb.viz.data import SampleConfig
    from actdb.viz.maps import estimated_points
    from actdb.viz.projection import AUTO_UMAP_FROM, auto_method

    assert estimated_points(db.store, SampleConfig(per_class=4)) == 12
    assert estimated_points(db.store, SampleConfig(per_class=None)) == 18
    assert estimated_points(db.store, SampleConfig(classes=("tench",), per_class=2)) == 2
    m = db.space().map(per_class=2)
    assert m.method == "tsne" and m.map_id.startswith("tsne-")
    assert MapSpec.of(per_class=2).for_store(db.store).map_id == m.map_id
    assert (auto_method(AUTO_UMAP_FROM - 1), auto_method(AUTO_UMAP_FROM)) == ("tsne", "umap")
