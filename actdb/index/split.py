"""The ``ivfpq`` search: each query's lists split over the cores, merged by (distance, id).

FAISS's fast-scan search gives one query one core, and its own split of a query's lists over
threads lets thread timing pick among tied 4-bit distances, so the same query could get other
neighbours. Here a query becomes ``parts`` rows, each with every ``parts``-th of its probed
lists (interleaved by rank, so that the rows do equal work). FAISS searches rows on separate
cores, each row deterministically; the rows' candidates are merged by (approximate distance,
position), and the best ``k * k_factor`` are re-ranked exactly against the full vectors, on
every core (``pairwise_indexed_*``), then ordered by (exact distance, position). Whatever the
cores' timing, a query gets the same answer, alone or in a batch.

``bench/query.py`` prints this search against FAISS's own one-core search (1.1-1.6x faster at
1.28M 512-d vectors on 2 cores, ``bench/RESULTS.md``).

>>> from actdb.index.faiss_index import IndexConfig, build
>>> x = np.random.default_rng(0).random((2000, 16), dtype=np.float32)
>>> index, info = build(np.arange(2000), x, IndexConfig(kind="ivfpq", nlist=8, pq_m=8,
...                                                      recall_sample=20))
>>> search = SplitSearch(index, {"nprobe": 8, "k_factor": 250.0},  # every list and vector
...                      ids=np.arange(2000))
>>> raw, ids = search(x[:2] + 0.01, 3)
>>> ids[:, 0].tolist()
[0, 1]
"""

from __future__ import annotations

import math

import numpy as np

from actdb.heavy import faiss as _faiss

#: A query's lists are split over at most this many cores: every part returns
#: ``k * k_factor`` candidates to merge, so more parts cost more than they save.
MAX_PARTS = 4
#: Queries searched at once (a batch's candidates take 12 bytes x parts x k x k_factor each).
CHUNK = 1024


class SplitSearch:
    """A callable ``(x, k) -> (raw scores, ids)`` for an ivfpq index (IndexIDMap over
    IndexRefineFlat over an IVF fast-scan index) at one setting (nprobe, k_factor); scores
    as FAISS gives them (squared L2, or inner products for cosine)."""

    def __init__(self, index, setting: dict, ids: np.ndarray, parts: int | None = None):
        faiss = _faiss()
        self.index = index  # owns the lists and the vectors viewed below
        refine = faiss.downcast_index(index.index)
        self.ivf = faiss.downcast_index(refine.base_index)
        self.flat = faiss.downcast_index(refine.refine_index)
        self.nprobe = min(int(setting["nprobe"]), self.ivf.nlist)
        self.k_factor = float(setting["k_factor"])
        self.ids = ids
        self.similarity = self.ivf.metric_type == faiss.METRIC_INNER_PRODUCT
        cores = faiss.omp_get_max_threads() if parts is None else parts
        self.parts = max(1, min(cores, MAX_PARTS, self.nprobe))
        self.width = math.ceil(self.nprobe / self.parts)
        self._params = faiss.SearchParametersIVF(nprobe=self.width)
        n, d = self.flat.ntotal, self.flat.d
        self._xb = (faiss.rev_swig_ptr(self.flat.get_xb(), n * d).reshape(n, d) if n
                    else np.zeros((0, d), np.float32))

    def __call__(self, x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        x = np.ascontiguousarray(x, dtype=np.float32)
        if len(x) > CHUNK:  # bounds the candidates held at once: parts x k x k_factor each
            got = [self(x[i : i + CHUNK], k) for i in range(0, len(x), CHUNK)]
            return np.concatenate([r for r, _ in got]), np.concatenate([i for _, i in got])
        kk = max(k, int(k * self.k_factor))
        cand = self._candidates(x, kk)
        exact = self._exact(x, cand)
        order = _first(_keys(exact, cand, self.similarity), k, ordered=True)
        pos = np.take_along_axis(cand, order, 1)
        ok = pos >= 0
        worst = -np.inf if self.similarity else np.inf
        raw = np.where(ok, np.take_along_axis(exact, order, 1), np.float32(worst))
        ids = np.where(ok, self.ids[np.maximum(pos, 0)], -1)
        if raw.shape[1] < k:  # fewer candidates than k: pad as FAISS does
            pad = ((0, 0), (0, k - raw.shape[1]))
            raw = np.pad(raw, pad, constant_values=worst)
            ids = np.pad(ids, pad, constant_values=-1)
        return raw, ids

    def _candidates(self, x: np.ndarray, kk: int) -> np.ndarray:
        """Each query's best ``kk`` positions by approximate distance, ties by position
        (unordered; -1 where its lists hold fewer)."""
        faiss = _faiss()
        n, p, w = len(x), self.parts, self.width
        dq, iq = self.ivf.quantizer.search(x, self.nprobe)
        lists = np.full((n, p * w), -1, np.int64)  # row r of a query: its ranks r, r+p, ...
        dists = np.zeros((n, p * w), np.float32)
        lists[:, : self.nprobe], dists[:, : self.nprobe] = iq, dq
        lists = np.ascontiguousarray(lists.reshape(n, w, p).transpose(0, 2, 1))
        dists = np.ascontiguousarray(dists.reshape(n, w, p).transpose(0, 2, 1))
        rows = np.ascontiguousarray(np.repeat(x, p, axis=0))
        d = np.empty((n, p * kk), np.float32)
        i = np.empty((n, p * kk), np.int64)
        self.ivf.search_preassigned_c(n * p, faiss.swig_ptr(rows), kk, faiss.swig_ptr(lists),
                                      faiss.swig_ptr(dists), faiss.swig_ptr(d),
                                      faiss.swig_ptr(i), False, self._params)
        if p == 1:
            return i
        return np.ascontiguousarray(np.take_along_axis(
            i, _first(_keys(d, i, self.similarity), kk, ordered=False), 1))

    def _exact(self, x: np.ndarray, cand: np.ndarray) -> np.ndarray:
        """Exact scores of each query against its candidates."""
        faiss = _faiss()
        n, m = cand.shape
        out = np.zeros((n, m), np.float32)
        if not n * m or not len(self._xb):
            return out
        which = np.repeat(np.arange(n, dtype=np.int64), m)
        rows = np.ascontiguousarray(np.maximum(cand, 0))  # -1 (none): scored, then dropped
        fn = (faiss.pairwise_indexed_inner_product if self.similarity
              else faiss.pairwise_indexed_L2sqr)
        fn(self.flat.d, n * m, faiss.swig_ptr(x), faiss.swig_ptr(which),
           faiss.swig_ptr(self._xb), faiss.swig_ptr(rows), faiss.swig_ptr(out))
        return out


_NONE = np.uint64(2**64 - 1)


def _keys(score: np.ndarray, pos: np.ndarray, similarity: bool) -> np.ndarray:
    """uint64 keys that sort (score, position) nearest first, ties by position, and -1
    positions last: a float's bits made order-preserving, then the position."""
    s = (-score if similarity else score).astype(np.float32) + np.float32(0.0)  # -0 -> +0
    u = s.view(np.uint32)
    u = np.where(u >> np.uint32(31), ~u, u | np.uint32(0x80000000)).astype(np.uint64)
    return np.where(pos >= 0, (u << np.uint64(32)) | pos.astype(np.uint64), _NONE)


def _first(key: np.ndarray, m: int, ordered: bool) -> np.ndarray:
    """Per row, the columns of the ``m`` smallest keys (ascending when ``ordered``)."""
    if key.shape[1] <= m:
        return np.argsort(key, axis=1) if ordered else np.broadcast_to(
            np.arange(key.shape[1]), key.shape)
    part = np.argpartition(key, m - 1, axis=1)[:, :m]
    if not ordered:
        return part
    return np.take_along_axis(part, np.argsort(np.take_along_axis(key, part, 1), axis=1), 1)
