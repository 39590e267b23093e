"""``nearest``: which stored images and classes do query vectors land near?

Besides the k neighbours and the class vote, every answer puts the query's distance in
context: its nearest-neighbour distance against the distribution of stored images'
nearest-neighbour distances (a percentile), and against the median random-pair distance,
because the original finding was that the optimised image is far from everything.

An ``id:N`` query is a stored image: by default it is left out of its own neighbours, vote and
context (it would be rank 1 at distance 0); ``include_self=True`` keeps it.

Results hold numpy columns and build their pandas DataFrames when first asked, so a
command-line query never imports pandas.
"""

from __future__ import annotations

import collections
import warnings
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from actdb.errors import ActdbWarning, UsageError
from actdb.query.resolve import QueryVector
from actdb.store.catalog import reads

if TYPE_CHECKING:
    from actdb.query.context import QueryContext

META = ("class_name", "synset", "split", "path", "root")


def parse_classes(classes) -> tuple[str, ...] | None:
    """``"a,b"`` or ``["a", "b"]`` -> ("a", "b"); empty -> None.

    >>> parse_classes("sea_cucumber, tench")
    ('sea_cucumber', 'tench')
    """
    if not classes:
        return None
    items = classes.split(",") if isinstance(classes, str) else classes
    return tuple(c.strip() for c in items if c.strip()) or None


def allowed_ids(store, classes=None, split: str | None = None, where: str | None = None
                ) -> np.ndarray | None:
    """The ids of the stored images a filter keeps (classes, a split, a SQL predicate over
    ``images``); None when nothing filters."""
    names = parse_classes(classes)
    if not (names or split or where):
        return None
    with store.reader() as con:
        if split is not None and split not in (have := reads.splits(con)):
            raise UsageError(f"unknown split {split!r}; this store has: "
                             f"{', '.join(have) or 'none'}")
        keys = reads.resolve_classes(con, names) if names else None
        return reads.filtered_ids(con, keys, split, where)


@dataclass
class QueryAnswer:
    """One query's neighbours (numpy columns, nearest first) and distance context."""

    query: QueryVector
    distance: np.ndarray
    image_id: np.ndarray
    meta: dict[str, np.ndarray]
    context: dict
    #: the file the query's image was read from (a stored image's for ``id:`` queries), for
    #: its thumbnail; None for vectors
    picture: str | None = None

    def vote(self) -> list[dict]:
        """Classes among the neighbours, most frequent first."""
        k = len(self.image_id)
        counts = collections.Counter(zip(self.meta["class_name"].tolist(),
                                         self.meta["synset"].tolist(), strict=True))
        return [{"class_name": name, "synset": synset, "count": c, "share": c / k}
                for (name, synset), c in counts.most_common()]

    def neighbor_rows(self, root: bool = True) -> list[dict]:
        cols = [c for c in META if root or c != "root"]
        return [{"rank": r + 1, "distance": float(self.distance[r]),
                 "image_id": int(self.image_id[r]),
                 **{c: _py(self.meta[c][r]) for c in cols}} for r in range(len(self.image_id))]


def _py(v):
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and not np.isfinite(v):
        return None
    return v


@dataclass
class NearestResult:
    """Neighbours (one row per query x rank), the class vote, and the distance context."""

    answers: list[QueryAnswer]
    k: int
    metric: str
    include_self: bool = False
    #: With ``recall`` asked of an approximate index: {asked, measured (the recall@50 tuning
    #: measured for the setting that answered), reached}.
    recall: dict | None = None
    _frames: dict = field(default_factory=dict, repr=False)

    def _repr_html_(self) -> str:
        from actdb.viz.notebook import nearest_html

        return nearest_html(self)

    def to_dict(self, root: bool = True) -> dict:
        """Plain JSON-ready data (floats at full precision); ``root=False`` leaves out the
        absolute dataset root (what the HTTP API returns)."""
        return {"k": self.k, "metric": self.metric, "include_self": self.include_self,
                "recall": self.recall,
                "queries": [{"query": a.query.name, "context": a.context,
                             "neighbors": a.neighbor_rows(root), "classes": a.vote()}
                            for a in self.answers]}

    @cached_property
    def neighbors(self):
        """DataFrame: query, rank, distance, image_id, class_name, synset, split, path, root."""
        import pandas as pd

        cols = ["query", "rank", "distance", "image_id", *META]
        return pd.DataFrame([{"query": a.query.name, **r} for a in self.answers
                             for r in a.neighbor_rows()], columns=cols)

    @cached_property
    def classes(self):
        """DataFrame: query, class_name, synset, count, share."""
        import pandas as pd

        return pd.DataFrame([{"query": a.query.name, **v} for a in self.answers
                             for v in a.vote()],
                            columns=["query", "class_name", "synset", "count", "share"])

    @cached_property
    def context(self):
        """DataFrame: one row per query with its distance context."""
        import pandas as pd

        return pd.DataFrame([{"query": a.query.name, **a.context} for a in self.answers])


def nearest(queries: list[QueryVector], k: int, ctx: QueryContext,
            allowed: np.ndarray | None, include_self: bool = False,
            recall: float | None = None) -> NearestResult:
    """k nearest stored images of each query, with class vote and distance context, from the
    store's query context (its index, distance reference and images' rows)."""
    loaded, store = ctx.index, ctx.store
    excluding = not include_self and any(q.image_id is not None for q in queries)
    x = np.array([q.vec for q in queries])

    def search(n: int, among) -> list[tuple[np.ndarray, np.ndarray]]:
        dist, ids = loaded.search(x, n + int(excluding), among, recall, store.vectors)
        out = []
        for qi, q in enumerate(queries):
            keep = ids[qi] >= 0
            if excluding and q.image_id is not None:
                keep &= ids[qi] != q.image_id
            out.append((dist[qi][keep][:n], ids[qi][keep][:n]))
        return out

    rows = search(k, allowed)
    # the context compares like with like: the nearest of all stored images against all
    # stored images' nearest neighbours, whatever the filter kept
    nn_all = [d for d, _ in search(1, None)] if allowed is not None else None
    flat = np.concatenate([r[1] for r in rows]) if rows else np.zeros(0, np.int64)
    qids = np.array([q.image_id for q in queries if q.image_id is not None], np.int64)
    meta, ref = ctx.image_meta(np.concatenate([flat, qids])), ctx.reference  # one read
    pictures = _pictures(queries, {c: meta[c][len(flat):] for c in ("root", "path")})
    answers, at = [], 0
    for qi, (q, (d, i)) in enumerate(zip(queries, rows, strict=True)):
        m = {c: meta[c][at : at + len(i)] for c in META}  # object columns (VARCHAR)
        ctx = _context(q, d, loaded.metric, ref, None if nn_all is None else nn_all[qi])
        answers.append(QueryAnswer(q, d.astype(np.float64), i, m, ctx, pictures[qi]))
        at += len(i)
    return NearestResult(answers, k, loaded.metric, include_self, _recall(loaded, recall))


def _pictures(queries: list[QueryVector], stored: dict) -> list[str | None]:
    """Each query's image file: a stored image's for ``id:`` queries (``stored``: their root
    and path columns, in order), the file an image query was read from, None for vectors."""
    ids = [q.image_id for q in queries if q.image_id is not None]
    stored = dict(zip(ids, (str(Path(r) / p) if r is not None and p is not None else None
                            for r, p in zip(stored["root"], stored["path"], strict=True)),
                      strict=True))
    return [stored.get(q.image_id) if q.image_id is not None
            else q.source if q.route is not None and Path(q.source).is_file() else None
            for q in queries]


def _recall(loaded, asked: float | None) -> dict | None:
    """What a ``recall`` asked of the index got; a warning when no measured setting reached
    it (the most accurate one measured answered)."""
    measured = None if asked is None else loaded.measured_recall(asked)
    if measured is None:
        return None
    if measured < asked:
        warnings.warn(ActdbWarning(
            f"recall {asked} is beyond what this index measured: its most accurate setting "
            f"(recall@50 {measured}) answered; rebuild it with a higher target_recall, or "
            "use an exact index (kind flat)", param="recall"), stacklevel=3)
    return {"asked": asked, "measured": measured, "reached": measured >= asked}


def _context(q: QueryVector, d: np.ndarray, metric: str, ref,
             d_all: np.ndarray | None = None) -> dict:
    """The distance context of one answer (``d``); under a filter, ``d_all`` is the nearest
    of all stored images, which the percentile and ``nn_distance`` describe, and
    ``filtered_nn_distance`` is the nearest that the filter kept."""
    nn_sorted, median_random = ref
    l2 = metric == "l2"
    have_nn = l2 and nn_sorted is not None and len(nn_sorted) > 0
    filtered_nn = float(d[0]) if len(d) else None
    # of the k answers, as filtered (one reduction: ndarray.mean's Python layer costs more)
    mean_k = float(np.add.reduce(d, dtype=np.float64)) / len(d) if len(d) else None
    if d_all is not None:
        d = d_all
    nn_d = float(d[0]) if len(d) else None
    pct = None
    if have_nn and nn_d is not None:
        pct = 100.0 * float(np.searchsorted(nn_sorted, nn_d, side="right")) / len(nn_sorted)
    mid = len(nn_sorted) // 2 if have_nn else 0  # sorted: the median without sorting again
    return {"source": q.source, "route": q.route, "cached": q.cached, "nn_distance": nn_d,
            "filtered": d_all is not None, "filtered_nn_distance": filtered_nn,
            "mean_distance_k": mean_k, "nn_percentile": pct,
            "store_median_nn_distance": float(nn_sorted[mid] if len(nn_sorted) % 2 else
                                              (nn_sorted[mid - 1] + nn_sorted[mid]) / 2)
            if have_nn else None,
            "store_median_random_pair": median_random if l2 else None}
