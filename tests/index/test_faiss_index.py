import numpy as np
import pytest

from actdb.index.faiss_index import (
    IndexConfig,
    build,
    index_ids,
    load_index,
    measure_recall,
    save_index,
    search_params,
)
from actdb.index.loaded import LoadedIndex


def overlapping_classes(n=6000, dim=48, classes=30, seed=0):
    """Non-negative vectors in overlapping classes (not easy, well-separated blobs)."""
    rng = np.random.default_rng(seed)
    centers = rng.gamma(2.0, 1.0, (classes, dim))
    labels = rng.integers(0, classes, n)
    x = np.maximum(centers[labels] * 0.35 + rng.gamma(2.0, 1.0, (n, dim)), 0)
    return np.arange(n, dtype=np.int64) * 7 + 3, x.astype(np.float32)


def brute(q, x, k, metric="l2"):
    if metric == "cosine":
        qn = q / np.linalg.norm(q, axis=1, keepdims=True)
        xn = x / np.linalg.norm(x, axis=1, keepdims=True)
        d = 1 - qn @ xn.T
    else:
        d = np.sqrt(((q[:, None, :].astype(np.float64) - x[None]) ** 2).sum(-1))
    order = np.argsort(d, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(d, order, 1), order


@pytest.mark.parametrize("metric", ["l2", "cosine"])
def test_flat_equals_numpy_brute_force(metric):
    ids, x = overlapping_classes(n=800)
    index, info = build(ids, x, IndexConfig(kind="flat", metric=metric))
    q = x[:20] + 0.1
    d_ref, pos = brute(q, x, 10, metric)
    raw, got = index.search(q if metric == "l2" else q / np.linalg.norm(q, axis=1,
                                                                        keepdims=True), 10)
    from actdb.index.faiss_index import to_distance

    np.testing.assert_allclose(to_distance(raw, metric), d_ref, rtol=1e-4, atol=1e-4)
    assert (got == ids[pos]).mean() > 0.99  # ties aside, the same ids
    assert info.recall_at_50 == 1.0


@pytest.mark.parametrize("kind", [pytest.param("ivfpq", marks=pytest.mark.slow), "ivf",
                                  pytest.param("hnsw", marks=pytest.mark.slow)])
def test_approximate_kinds_reach_and_record_their_recall(kind):
    ids, x = overlapping_classes()
    index, info = build(ids, x, IndexConfig(kind=kind, target_recall=0.95, recall_sample=300,
                                            pq_m=24))  # 2 dims a code: 48-d test vectors
    assert info.kind == kind and info.ntotal == len(ids)
    assert info.recall_at_50 >= 0.95
    # an independent measurement on other queries agrees with the recorded figure
    again = measure_recall(index, ids, x, "l2", info, sample=300, seed=7)
    assert abs(again - info.recall_at_50) <= 0.03
    assert sorted(index_ids(index).tolist()) == ids.tolist()
    points = info.operating_points
    assert points and all(p.recall > 0 and p.p50_ms > 0 for p in points)


def test_ivfpq_is_exact_when_every_list_is_probed_and_every_candidate_reranked():
    ids, x = overlapping_classes(n=3000)
    index, info = build(ids, x, IndexConfig(kind="ivfpq", nlist=16, recall_sample=50))
    q = x[:25] * 0.97 + 0.05
    every = {"nprobe": 16, "k_factor": len(ids) / 10}
    raw, got = index.search(q, 10, params=search_params(info.kind, every))
    d_ref, pos = brute(q, x, 10)
    np.testing.assert_array_equal(got, ids[pos])
    np.testing.assert_allclose(np.sqrt(raw), d_ref, rtol=1e-4)


@pytest.mark.parametrize("kind", ["flat", "ivfpq"])
def test_a_memory_mapped_index_answers_like_one_read_whole(tmp_path, kind):
    ids, x = overlapping_classes(n=3000)
    index, info = build(ids, x, IndexConfig(kind=kind, nlist=16, recall_sample=50))
    save_index(tmp_path, index, info)
    mapped, whole = LoadedIndex(*load_index(tmp_path)), LoadedIndex(*load_index(tmp_path,
                                                                                 mmap=False))
    q = x[100:120] + 0.01
    for a, b in zip(mapped.search(q, 20), whole.search(q, 20), strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(mapped.vectors(ids[[5, 7]]), x[[5, 7]])


@pytest.mark.parametrize("kind", ["ivfpq", "ivf"])
def test_the_same_query_gets_the_same_answer_every_time(kind):
    """Lists searched on several cores must not let thread timing pick among tied
    candidates (FAISS's fast-scan implementation 15 did: 4-bit distances tie often)."""
    ids, x = overlapping_classes(n=3000)
    index, info = build(ids, x, IndexConfig(kind=kind, nlist=16, recall_sample=50))
    loaded = LoadedIndex(index, info)
    q = x[100:120] + 0.01
    first = loaded.search(q, 20)
    for _ in range(30):
        for a, b in zip(loaded.search(q, 20), first, strict=True):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("share", [0.02, 0.5])
def test_filtered_ivfpq_search_keeps_to_the_subset(share):
    """A small subset is searched exactly; a large one approximately, then filtered."""
    ids, x = overlapping_classes(n=3000)
    index, info = build(ids, x, IndexConfig(kind="ivfpq", nlist=8, pq_m=24, recall_sample=50))
    loaded = LoadedIndex(index, info)
    rng = np.random.default_rng(1)
    allowed = np.sort(rng.choice(ids, int(share * len(ids)), replace=False))
    q = x[:5] + 0.02
    d, got = loaded.search(q, 10, allowed=allowed, recall=0.99)
    sub = np.isin(ids, allowed)
    d_ref, pos = brute(q, x[sub], 10)
    assert got.shape == (5, 10) and np.isin(got, allowed).all()
    if share < 0.1:
        np.testing.assert_array_equal(got, ids[sub][pos])
        np.testing.assert_allclose(d, d_ref, rtol=1e-4)
    else:
        assert np.mean([len(np.intersect1d(g, t)) for g, t in zip(got, ids[sub][pos],
                                                                   strict=True)]) >= 9


@pytest.mark.parametrize("kind", ["ivfpq", pytest.param("hnsw", marks=pytest.mark.slow)])
def test_tuning_reaches_the_target_on_a_clock_that_has_already_run_out(kind, monkeypatch):
    import time as time_module

    from actdb.index import faiss_index

    real = time_module.monotonic
    calls = []

    def slow_clock():  # every reading is an hour later: the budget is spent at once
        calls.append(1)
        return real() + 3600.0 * len(calls)

    monkeypatch.setattr(faiss_index.time, "monotonic", slow_clock)
    ids, x = overlapping_classes()
    index, info = build(ids, x, IndexConfig(kind=kind, target_recall=0.95, recall_sample=300,
                                            pq_m=24, tune_seconds=0.0))
    assert info.recall_at_50 >= 0.95
    again = measure_recall(index, ids, x, "l2", info, sample=300, seed=7)
    assert abs(again - info.recall_at_50) <= 0.03  # recorded as measured
    points = info.operating_points
    assert all(p.recall >= 0.9 for p in points) or info.unreached_recall
    for level in (0.9, 0.95, 0.99):  # each level reached, or said to be out of reach
        assert any(p.recall >= level for p in points) or level in info.unreached_recall


def test_a_level_no_setting_reaches_is_recorded_as_unreached():
    import types
    import warnings

    from actdb.errors import ActdbWarning
    from actdb.query.nearest import META, nearest
    from actdb.query.resolve import QueryVector

    ids, x = overlapping_classes(n=3000)
    index, info = build(ids, x, IndexConfig(kind="ivfpq", target_recall=1.0, recall_sample=100,
                                            pq_m=6))  # coarse codes: 8 dims a sub-quantizer
    best = max(p.recall for p in info.operating_points)
    assert best < 1.0 and 1.0 in info.unreached_recall
    assert info.recall_at_50 == best  # the most accurate setting stands for it
    loaded = LoadedIndex(index, info)
    assert loaded.measured_recall(1.0) == best
    q = [QueryVector(name="q", source="q", vec=x[0] + 0.01)]
    ctx = types.SimpleNamespace(index=loaded, store=types.SimpleNamespace(vectors=None),
                                reference=(None, None),
                                image_meta=lambda i: {c: np.full(len(i), None, object)
                                                      for c in META})
    with pytest.warns(ActdbWarning, match=f"recall 1.0 is beyond .*recall@50 {best}"):
        res = nearest(q, 5, ctx, None, recall=1.0)
    assert res.recall == {"asked": 1.0, "measured": best, "reached": False}
    low = min(p.recall for p in info.operating_points)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ActdbWarning)  # a level that was reached: no word
        res = nearest(q, 5, ctx, None, recall=low)
    assert res.recall["reached"] and res.to_dict()["recall"] == res.recall


@pytest.mark.parametrize("kind", ["flat", "ivf", "ivfpq", "hnsw"])
def test_the_memory_estimate_is_within_15_percent_of_the_index_faiss_writes(kind):
    """IndexInfo.memory estimates from the kind's table row; FAISS's own serialisation of
    the built index (every structure the loaded index holds or maps) is the reference."""
    import faiss

    ids, x = overlapping_classes(n=4000)
    index, info = build(ids, x, IndexConfig(kind=kind, nlist=16, pq_m=24, recall_sample=50,
                                            tune_seconds=0.0))
    est = info.memory
    written = faiss.serialize_index(index).nbytes
    assert abs(est["resident"] + est["mapped"] - written) <= 0.15 * written, (est, written)
    assert (est["mapped"] > 0) == (kind == "ivfpq")  # only the re-ranked vectors are mapped
