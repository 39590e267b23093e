"""A store's index as loaded for queries: searching (with filters) and stored vectors.

Filters (classes, split, a SQL predicate) become a set of allowed ids. Exact indexes and IVF
and HNSW take them as a FAISS id selector, with their search widened so a small subset still
yields k hits; ``ivfpq`` re-ranks through ``IndexRefine``, which does not pass a selector on,
so a large subset is searched with more candidates and filtered after, and a small one exactly
over its own vectors. Whenever an approximate search comes back short, the subset is searched
exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from actdb.errors import QueryError
from actdb.index.faiss_index import (
    as_indexed,
    load_index,
    reconstruct,
    searcher,
    to_distance,
)
from actdb.index.info import IndexInfo
from actdb.index.kinds import kind_spec

#: A kind that takes no filter inside its search (ivfpq): subsets at least this share of the
#: store are searched approximately, then filtered.
POSTFILTER_SHARE = 0.1


@dataclass
class LoadedIndex:
    """A FAISS index (IndexIDMap over the store's vectors) and its ``index.json``."""

    index: object
    info: IndexInfo

    @classmethod
    def open(cls, store: Path) -> LoadedIndex:
        """The store's index, memory-mapped, with its description (StoreError when none)."""
        return cls(*load_index(store))

    def searcher(self, recall: float | None = None):
        """``(x, k) -> (raw scores, ids)`` at the setting for ``recall`` (built once per
        level; see ``faiss_index.searcher``)."""
        cache = self.__dict__.setdefault("_searchers", {})
        if recall not in cache:
            cache[recall] = searcher(self.index, self.info.kind, self.info.setting(recall),
                                     self.ids)
        return cache[recall]

    def measured_recall(self, recall: float | None) -> float | None:
        """The recall@50 that tuning measured for the setting answering ``recall`` (None for
        an exact index, or when nothing was measured)."""
        point = self.info.setting_for(recall)
        return None if point is None else point.recall

    @cached_property
    def ntotal(self) -> int:
        """Vectors in the index (a loaded index is read-only: it never changes)."""
        return int(self.index.ntotal)

    @property
    def metric(self) -> str:
        return self.info.metric

    @cached_property
    def ids(self) -> np.ndarray:
        """Image ids by internal position."""
        from actdb.index.faiss_index import index_ids

        return index_ids(self.index)

    @cached_property
    def _order(self) -> np.ndarray | None:
        ids = self.ids
        return None if len(ids) < 2 or np.all(ids[1:] > ids[:-1]) else np.argsort(ids)

    def positions(self, image_ids) -> np.ndarray:
        """Internal positions of these image ids (QueryError for ids the index lacks)."""
        image_ids = np.asarray(image_ids, np.int64)
        ids = self.ids if self._order is None else self.ids[self._order]
        pos = np.clip(np.searchsorted(ids, image_ids), 0, max(len(ids) - 1, 0))
        found = ids[pos] == image_ids if len(ids) else np.zeros(len(image_ids), bool)
        if not found.all():
            raise QueryError(f"no stored image with id {image_ids[~found][:5].tolist()}; see "
                             "`actdb info`")
        return pos if self._order is None else self._order[pos]

    def vectors(self, image_ids) -> np.ndarray | None:
        """Stored vectors, exactly, when the index holds them unchanged (else None)."""
        return reconstruct(self.index, self.info, self.positions(image_ids))

    def search(self, q: np.ndarray, k: int, allowed: np.ndarray | None = None,
               recall: float | None = None, subset_vectors=None
               ) -> tuple[np.ndarray, np.ndarray]:
        """(distances, ids) of shape (len(q), k'), k' = min(k, images allowed), nearest first;
        -1 ids pad a row that found fewer. ``recall`` picks a recorded setting;
        ``subset_vectors(ids) -> (ids, vecs)`` reads stored vectors for exact fallbacks."""
        import faiss

        q = as_indexed(q, self.metric)
        n_allowed = self.ntotal if allowed is None else len(allowed)
        k = min(k, n_allowed)
        if k == 0:
            return np.zeros((len(q), 0)), np.zeros((len(q), 0), np.int64)
        spec = kind_spec(self.info.kind)
        if allowed is None:
            raw, ids = self.searcher(recall)(q, k)
            return to_distance(raw, self.metric), ids
        share = n_allowed / max(self.ntotal, 1)
        if spec.select is None and share >= POSTFILTER_SHARE:  # filter a wider search
            wide = min(self.ntotal, int(np.ceil(2 * k / share)))
            raw, ids = self.searcher(recall)(q, wide)
            keep = np.isin(ids, allowed)
            rows = [(r[m][:k], i[m][:k]) for r, i, m in zip(raw, ids, keep, strict=True)]
            if all(len(i) == k for _, i in rows):
                return (to_distance(np.stack([r for r, _ in rows]), self.metric),
                        np.stack([i for _, i in rows]))
        elif spec.select is not None:  # the filter inside the search
            params = spec.params(self.info.setting(recall))
            raw, ids = self.index.search(q, k, params=spec.select(
                self.index, params, faiss.IDSelectorBatch(allowed), share, k))
            if not (ids < 0).any():
                return to_distance(raw, self.metric), ids
        return self._exact_subset(q, k, allowed, subset_vectors)

    def _exact_subset(self, q, k, allowed, subset_vectors):
        """Exact search over the allowed images' own vectors."""
        import faiss

        vecs = self.vectors(allowed) if self.metric == "l2" else None
        sub_ids = np.asarray(allowed, np.int64)
        if vecs is None:
            sub_ids, vecs = subset_vectors(allowed)
        mt = faiss.METRIC_INNER_PRODUCT if self.metric == "cosine" else faiss.METRIC_L2
        raw, pos = faiss.knn(q, as_indexed(vecs, self.metric), k, metric=mt)
        return to_distance(raw, self.metric), sub_ids[pos]
