"""The ivfpq split search against numpy brute force and against itself."""

import numpy as np
import pytest

from actdb.index.faiss_index import IndexConfig, build, index_ids, to_distance
from actdb.index.split import SplitSearch
from tests.index.test_faiss_index import brute, overlapping_classes


@pytest.fixture(scope="module", params=["l2", "cosine"])
def built(request):
    ids, x = overlapping_classes(n=3000)
    index, info = build(ids, x, IndexConfig(kind="ivfpq", nlist=16, recall_sample=50,
                                            metric=request.param))
    return ids, x, index, request.param


def _queries(x, metric):
    q = x[:25] * 0.97 + 0.05
    return q / np.linalg.norm(q, axis=1, keepdims=True) if metric == "cosine" else q


@pytest.mark.parametrize("parts", [1, 2, 3])
def test_every_list_and_candidate_gives_the_exact_answer(built, parts):
    ids, x, index, metric = built
    search = SplitSearch(index, {"nprobe": 16, "k_factor": len(ids) / 10}, index_ids(index),
                         parts=parts)
    raw, got = search(_queries(x, metric), 10)
    d_ref, pos = brute(x[:25] * 0.97 + 0.05, x, 10, metric)
    np.testing.assert_array_equal(got, ids[pos])
    np.testing.assert_allclose(to_distance(raw, metric), d_ref, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("nprobe", [3, 7])
def test_parts_of_unequal_width_find_what_one_part_finds(built, nprobe):
    ids, x, index, metric = built
    q = _queries(x, metric)
    one = SplitSearch(index, {"nprobe": nprobe, "k_factor": 20}, index_ids(index), parts=1)
    two = SplitSearch(index, {"nprobe": nprobe, "k_factor": 20}, index_ids(index), parts=2)
    (_, i1), (d2, i2) = one(q, 10), two(q, 10)
    assert two.width * two.parts > nprobe  # one row is padded
    overlap = np.mean([len(np.intersect1d(a, b)) for a, b in zip(i1, i2, strict=True)])
    assert overlap >= 9.5  # ties among 4-bit distances aside, the same candidates
    assert (np.diff(d2, axis=1) >= 0).all() if metric == "l2" else (np.diff(d2, axis=1)
                                                                   <= 0).all()


def test_a_query_alone_gets_its_answer_in_a_batch(built):
    ids, x, index, metric = built
    q = _queries(x, metric)
    search = SplitSearch(index, {"nprobe": 5, "k_factor": 10}, index_ids(index), parts=2)
    raw, got = search(q, 10)
    for r in range(len(q)):
        alone_raw, alone = search(q[r : r + 1], 10)
        np.testing.assert_array_equal(alone[0], got[r])
        np.testing.assert_array_equal(alone_raw[0], raw[r])


def test_fewer_candidates_than_k_are_padded_as_faiss_pads(built):
    ids, x, index, metric = built
    search = SplitSearch(index, {"nprobe": 1, "k_factor": 1}, index_ids(index), parts=2)
    raw, got = search(_queries(x, metric)[:2], 2000)  # more than one list holds
    assert got.shape == (2, 2000) and (got == -1).any()
    real = got >= 0
    assert np.isin(got[real], ids).all()
    assert np.isinf(raw[~real]).all() and np.isfinite(raw[real]).all()


def test_a_batch_larger_than_a_chunk_answers_like_its_queries_alone(built, monkeypatch):
    from actdb.index import split

    ids, x, index, metric = built
    q = _queries(x, metric)
    search = SplitSearch(index, {"nprobe": 5, "k_factor": 10}, index_ids(index), parts=2)
    whole = search(q, 10)
    monkeypatch.setattr(split, "CHUNK", 7)
    for a, b in zip(search(q, 10), whole, strict=True):
        np.testing.assert_array_equal(a, b)
