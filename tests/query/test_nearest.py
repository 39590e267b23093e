import shutil

import numpy as np
import pytest

import actdb
from actdb.errors import QueryError, StoreMismatch, UsageError
from actdb.store.store import Store


@pytest.fixture(scope="module")
def db(built_store):
    return actdb.open(built_store)


def test_every_stored_image_is_its_own_nearest_neighbour(db):
    imgs = db.images()
    res = db.space().nearest([f"id:{i}" for i in imgs.image_id], k=3, include_self=True)
    first = res.neighbors[res.neighbors["rank"] == 1]
    assert (first.image_id.to_numpy() == imgs.image_id.to_numpy()).all()
    assert np.allclose(first.distance, 0, atol=1e-4)


def test_an_id_query_leaves_its_own_image_out_everywhere(db):
    ids, vecs = db.space().vectors()
    res = db.space().nearest("id:4", k=5)
    assert 4 not in res.neighbors.image_id.tolist() and len(res.neighbors) == 5
    assert res.classes["count"].sum() == 5
    d = np.sqrt(((vecs.astype(np.float64) - vecs[ids == 4][0]) ** 2).sum(1))
    d[ids == 4] = np.inf
    order = np.argsort(d, kind="stable")[:5]
    np.testing.assert_array_equal(res.neighbors.image_id, ids[order])
    ctx = res.context.iloc[0]
    assert ctx.nn_distance == pytest.approx(d[order[0]], rel=1e-4)
    assert ctx.mean_distance_k == pytest.approx(d[order].mean(), rel=1e-4)
    with_self = db.space().nearest("id:4", k=5, include_self=True)
    assert with_self.neighbors.image_id.iloc[0] == 4 and with_self.context.nn_distance[0] < 1e-3


def test_a_filtered_answer_puts_the_nearest_of_all_images_in_context(db):
    ids, vecs = db.space().vectors()
    imgs = db.images().set_index("image_id").loc[ids]
    q = int(ids[imgs.class_name.to_numpy() == "tench"][0])
    d = np.sqrt(((vecs.astype(np.float64) - vecs[ids == q][0]) ** 2).sum(1))
    d[ids == q] = np.inf
    other = imgs.class_name.to_numpy() != "tench"
    res = db.space().nearest(f"id:{q}", k=3, classes="sea_cucumber,groenendael")
    ctx = res.context.iloc[0]
    assert ctx.filtered and ctx.nn_distance == pytest.approx(d.min(), rel=1e-4)
    assert ctx.filtered_nn_distance == pytest.approx(d[other].min(), rel=1e-4)
    plain = db.space().nearest(f"id:{q}", k=3).context.iloc[0]  # the same context as unfiltered
    assert ctx.nn_percentile == plain.nn_percentile and not plain.filtered
    assert ctx.mean_distance_k == pytest.approx(np.sort(d[other])[:3].mean(), rel=1e-4)


def test_results_equal_numpy_brute_force(db):
    ids, vecs = db.space().vectors()
    q = vecs[5] * 1.1 + 0.01
    res = db.space().nearest(q, k=7)
    d = np.sqrt(((vecs.astype(np.float64) - q) ** 2).sum(1))
    order = np.argsort(d, kind="stable")[:7]
    np.testing.assert_array_equal(res.neighbors.image_id.to_numpy(), ids[order])
    np.testing.assert_allclose(res.neighbors.distance, d[order], rtol=1e-4)


@pytest.mark.slow
def test_image_query_is_embedded_like_the_data_and_cached(built_store, tmp_path):
    db = actdb.open(built_store)
    row = db.images().iloc[4]
    path = f"{row.root}/{row.path}"
    shutil.copy(path, tmp_path / "again.jpeg")
    first = db.space().nearest(path, k=1)
    assert first.neighbors.image_id.iloc[0] == row.image_id
    assert first.neighbors.distance.iloc[0] < 1e-5
    fresh = actdb.open(built_store)  # a new process-like handle: no model built yet
    res = fresh.space().nearest(str(tmp_path / "again.jpeg"), k=1, names=["again"])
    assert res.context.cached.iloc[0] and fresh.space()._ctx._embedder is None
    got = fresh.sql("SELECT name FROM queries ORDER BY name").to_pandas().name.tolist()
    assert "again" in got


def test_class_vote_and_context(db):
    res = db.space().nearest("id:0", k=6)
    assert res.classes["count"].sum() == 6
    assert res.classes.share.sum() == pytest.approx(1.0)
    ctx = res.context.iloc[0]
    assert ctx.nn_distance > 0  # the image itself is excluded from its context
    assert 0 <= ctx.nn_percentile <= 100


def test_filters_are_prefilters_that_still_return_k(db):
    res = db.space().nearest("id:0", k=4, classes="groenendael")
    assert len(res.neighbors) == 4 and set(res.neighbors.class_name) == {"groenendael"}
    res = db.space().nearest("id:0", k=50, classes="n02321529,tench")
    assert len(res.neighbors) == 11  # both classes, less the query image itself
    res = db.space().nearest("id:0", k=3, where="path LIKE '%_5.JPEG'")
    assert len(res.neighbors) == 3 and res.neighbors.path.str.endswith("_5.JPEG").all()
    with pytest.raises(QueryError, match="did you mean sea_cucumber"):
        db.space().nearest("id:0", classes="sea_cucumbr")
    with pytest.raises(QueryError, match="bad where"):
        db.space().nearest("id:0", where="nope = 1")


@pytest.mark.slow
def test_wrong_dim_and_other_models_weights_are_refused(built_store, tmp_path):
    db = actdb.open(built_store)
    np.save(tmp_path / "v.npy", np.zeros(7, np.float32))
    with pytest.raises(QueryError, match="dim 512"):
        db.space().nearest(str(tmp_path / "v.npy"))
    copy = tmp_path / "copy"
    shutil.copytree(built_store, copy)
    m = (copy / "manifest.json").read_text()
    sha = Store.open(copy).manifest.weights_sha256
    (copy / "manifest.json").write_text(m.replace(sha, "0" * 64))
    other = actdb.open(copy)
    row = other.images().iloc[0]
    from PIL import Image

    Image.open(f"{row.root}/{row.path}").rotate(90).save(tmp_path / "new.png")
    with pytest.raises(StoreMismatch, match="not the ones this store was built with"):
        other.space().nearest(str(tmp_path / "new.png"))


def test_centroids_rank_the_own_class_first(db):
    df = db.space().centroids("id:0", k=3)
    own = db.images().set_index("image_id").class_name[0]
    assert df.class_name.iloc[0] == own and len(df) == 3
    assert {"class_mean_dist", "class_p95_dist", "inside"} <= set(df.columns)
    assert len(db.space().centroids("id:0", classes="tench,groenendael")) == 2


def test_examples_match_numpy(db):
    ids, vecs = db.space().vectors()
    res = db.space().examples(channel=4, k=5)
    expected = ids[np.argsort(-vecs[:, 4], kind="stable")[:5]]
    np.testing.assert_array_equal(res.top.image_id.to_numpy(), expected)
    np.testing.assert_allclose(res.top.value, np.sort(vecs[:, 4])[::-1][:5], rtol=1e-6)
    assert res.classes["count"].sum() == 5
    with pytest.raises(UsageError, match="out of range"):
        db.space().examples(channel=512)


@pytest.mark.slow
def test_a_serving_handle_follows_ingests_but_not_query_cache_writes(built_store, tmp_path,
                                                                    monkeypatch):
    """The metadata a server keeps in memory is read again when images are added (a new
    neighbour is named), and not when another process only wrote the query cache."""
    from actdb.store.catalog import reads
    from tests.helpers import SIZE, WEIGHTS, class_image, make_tree

    store = shutil.copytree(built_store, tmp_path / "store")
    server, other = actdb.open(store, cache_metadata=True), actdb.open(store)
    reads_of_meta = []
    real = reads.ImageMeta.read
    monkeypatch.setattr(reads.ImageMeta, "read",
                        lambda con: reads_of_meta.append(1) or real(con))
    server.space().nearest("id:0", k=3)
    q = tmp_path / "q.png"
    class_image(0, 50).save(q)
    other.space().nearest(str(q), k=1)  # the catalog file changes: a query-cache write
    server.space().nearest("id:0", k=3)
    assert len(reads_of_meta) == 1
    more = make_tree(tmp_path / "more", per_class=1, seed=7)
    other.ingest(more, weights=WEIGHTS, image_size=SIZE, precision="fp32")
    new = other.images(where=f"root = '{more}'")
    res = server.space().nearest(str(more / new.path.iloc[0]), k=1)
    top = res.neighbors.iloc[0]
    assert len(reads_of_meta) == 2
    assert top.image_id == new.image_id.iloc[0] and top.path == new.path.iloc[0]
