"""Statistics against a numpy recomputation straight from the Parquet files."""

import numpy as np
import pyarrow.parquet as pq
import pytest

import actdb


@pytest.fixture(scope="module")
def parquet_vectors(built_store):
    ids, vecs = [], []
    for f in sorted((built_store / "activations").glob("part-*.parquet")):
        t = pq.read_table(f)
        ids.append(t.column("image_id").to_numpy())
        vecs.append(np.stack(t.column("vec").to_pylist()))
    return dict(zip(np.concatenate(ids), np.concatenate(vecs), strict=True))


def test_centroids_equal_numpy_means(built_store, parquet_vectors):
    db = actdb.open(built_store)
    imgs = db.store.images()
    cent = db.sql("SELECT class_key, n, centroid, mean_dist, p95_dist FROM centroids"
                  ).to_pandas().set_index("class_key")
    for key, grp in imgs.groupby("synset"):
        x = np.stack([parquet_vectors[i] for i in grp.image_id]).astype(np.float64)
        c = x.mean(axis=0)
        np.testing.assert_allclose(np.asarray(cent.centroid[key]), c, rtol=1e-5, atol=1e-7)
        d = np.sqrt(((x - c) ** 2).sum(1))
        assert cent.n[key] == len(grp)
        assert cent.mean_dist[key] == pytest.approx(d.mean(), rel=1e-5)
        assert cent.p95_dist[key] == pytest.approx(np.quantile(d, 0.95), rel=1e-5)


def test_class_stats_equal_exhaustive_pair_means(built_store, parquet_vectors):
    """6 images per class: 15 same-class pairs and 72 cross pairs fit in the budget, so the
    statistics are exhaustive and must equal numpy exactly."""
    db = actdb.open(built_store)
    imgs = db.store.images()
    cs = db.sql("SELECT * FROM class_stats").to_pandas().set_index("class_key")
    allx = {i: parquet_vectors[i].astype(np.float64) for i in imgs.image_id}
    for key, grp in imgs.groupby("synset"):
        mem = list(grp.image_id)
        rest = [i for i in imgs.image_id if i not in set(mem)]
        same = [np.linalg.norm(allx[a] - allx[b]) for n, a in enumerate(mem) for b in mem[n + 1:]]
        other = [np.linalg.norm(allx[a] - allx[b]) for a in mem for b in rest]
        assert cs.mean_dist[key] == pytest.approx(np.mean(same), rel=1e-5)
        assert cs.mean_other_dist[key] == pytest.approx(np.mean(other), rel=1e-5)
        assert cs.same_pairs[key] == 15 and cs.other_pairs[key] == 72
    cent = db.sql("SELECT class_key, centroid FROM centroids").to_pandas()
    c = np.stack(cent.centroid.to_numpy()).astype(np.float64)
    d = np.sqrt(((c[:, None] - c[None]) ** 2).sum(-1))
    np.fill_diagonal(d, np.inf)
    for i, key in enumerate(cent.class_key):
        assert cs.nearest_class_key[key] == cent.class_key[int(np.argmin(d[i]))]


def test_pair_stats_rows_and_seed(built_store):
    ps = actdb.open(built_store).sql("SELECT * FROM pair_stats").to_pandas().set_index("kind")
    assert set(ps.index) == {"same_class", "different_class", "random", "nearest_neighbour"}
    assert ps.loc["same_class", "count"] == 45 and ps.loc["different_class", "count"] == 216
    assert (ps.seed == 0).all()
    assert ps.loc["same_class", "mean"] < ps.loc["different_class", "mean"]


def test_random_pairs_are_every_pair_when_they_fit(built_store, parquet_vectors, tmp_path):
    import shutil

    copy = tmp_path / "s"
    shutil.copytree(built_store, copy)
    db = actdb.open(copy)
    x = np.stack(list(parquet_vectors.values())).astype(np.float64)
    i, j = np.triu_indices(len(x), 1)
    every = np.sqrt(((x[i] - x[j]) ** 2).sum(1))
    means = []
    for seed in (0, 5):
        row = db.space().stats(seed=seed)["pair_stats"][2]
        assert row["kind"] == "random" and row["count"] == len(every) == 153
        assert row["sampled"] is False
        means.append(row["mean"])
    assert means[0] == means[1] == pytest.approx(every.mean(), rel=1e-6)
    small = db.space().stats(pair_sample=40, pairs_per_class=5)["pair_stats"]
    by_kind = {r["kind"]: r for r in small}
    assert by_kind["random"]["count"] == 40 and by_kind["random"]["sampled"] is True
    assert by_kind["same_class"]["sampled"] is True  # 15 pairs per class > 5


def test_sampled_pairs_are_distinct_and_cover_all_ranks():
    from actdb.stats import _pairs_within, pairs_from_rank

    n = 9
    i, j = pairs_from_rank(np.arange(n * (n - 1) // 2), n)
    ti, tj = np.triu_indices(n, 1)
    assert (i == ti).all() and (j == tj).all()
    big = 1_281_167
    k = np.array([0, 1, big - 2, big * (big - 1) // 2 - 1])
    i, j = pairs_from_rank(k, big)
    assert list(zip(i.tolist(), j.tolist(), strict=True)) == [(0, 1), (0, 2), (0, big - 1),
                                                              (big - 2, big - 1)]
    i, j, sampled = _pairs_within(50, 300, np.random.default_rng(0))
    assert sampled and len(set(zip(i.tolist(), j.tolist(), strict=True))) == 300
    assert (i < j).all()


@pytest.mark.slow
def test_recorded_settings_are_reused_after_an_ingest(tmp_path):
    from tests.helpers import SIZE, WEIGHTS, make_tree

    root = make_tree(tmp_path / "d", per_class=3)
    db = actdb.open(tmp_path / "s")
    options = dict(weights=WEIGHTS, image_size=SIZE, precision="fp32")
    db.ingest(root, **options)
    db.space().stats(seed=5, pairs_per_class=10)
    make_tree(root, classes=("n01530575",), per_class=1)  # one more image, a new class
    res = db.ingest(root, **options)
    assert res.ingested == 1 and res.stats["config"]["seed"] == 5
    assert res.stats["config"]["pairs_per_class"] == 10
    ps = db.sql("SELECT DISTINCT seed, pairs_per_class FROM pair_stats").to_pylist()
    assert ps == [{"seed": 5, "pairs_per_class": 10}]


def test_a_degenerate_space_is_warned_about(tmp_path):
    """Vectors of ~1e-11 (a random-initialised mobilenet_v2) make every statistic noise: the
    statistics say so, and a sound space is not warned about."""
    import warnings

    from actdb.errors import ActdbWarning
    from tests.helpers import synthetic_spaces

    tiny, _ = synthetic_spaces(tmp_path / "tiny", scale=1e-11)
    with pytest.warns(ActdbWarning, match="synthetic/a: its vectors are nearly zero"):
        actdb.open(tiny).space().stats()
    sound, _ = synthetic_spaces(tmp_path / "sound")
    with warnings.catch_warnings():
        warnings.simplefilter("error", ActdbWarning)
        actdb.open(sound).space().stats()
