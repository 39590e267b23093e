"""``actdb nearest``: which stored images and classes do query vectors land near?

Besides the k neighbours and the class vote, every answer puts the query's distance in
context: its nearest-neighbour distance against the distribution of stored images'
nearest-neighbour distances (a percentile), and against the median random-pair distance,
because the original finding was that the optimised image is far from everything.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass

import numpy as np
import pandas as pd

from actdb.index.faiss_index import prepare, to_distance
from actdb.query.filters import ImageFilter, allowed_ids
from actdb.query.vectors import QueryVector


@dataclass
class NearestResult:
    """Neighbours (one row per query x rank), the class vote, and the distance context."""

    neighbors: pd.DataFrame
    classes: pd.DataFrame
    context: pd.DataFrame
    k: int
    metric: str

    def to_dict(self) -> dict:
        out = []
        for q in self.context.itertuples(index=False):
            nb = self.neighbors[self.neighbors["query"] == q.query]
            cl = self.classes[self.classes["query"] == q.query]
            out.append({
                "query": q.query,
                "context": {k: _py(v) for k, v in q._asdict().items() if k != "query"},
                "neighbors": _records(nb.drop(columns="query")),
                "classes": _records(cl.drop(columns="query")),
            })
        return {"k": self.k, "metric": self.metric, "queries": out}


def _py(v):
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and not np.isfinite(v):
        return None
    return None if v is pd.NA else v


def _records(df: pd.DataFrame) -> list[dict]:
    return [{k: _py(v) for k, v in r.items()} for r in df.to_dict("records")]


def _search_params(faiss, kind: str, index, sel, n_allowed: int, k: int):
    """Selector search parameters, widened so a small filtered subset still yields k hits."""
    inner = faiss.downcast_index(index.index)
    frac = max(n_allowed / max(index.ntotal, 1), 1e-9)
    if kind == "ivf":
        nprobe = min(inner.nlist, max(inner.nprobe, int(np.ceil(4 * k * inner.nlist /
                                                                  (index.ntotal * frac)))))
        return faiss.SearchParametersIVF(sel=sel, nprobe=nprobe)
    if kind == "hnsw":
        ef = min(index.ntotal, max(inner.hnsw.efSearch, int(np.ceil(4 * k / frac))))
        return faiss.SearchParametersHNSW(sel=sel, efSearch=ef)
    return faiss.SearchParameters(sel=sel)


def search(db, queries: list[QueryVector], k: int, flt: ImageFilter
           ) -> tuple[np.ndarray, np.ndarray]:
    """(distances, ids) of shape (len(queries), k'); k' = min(k, images allowed)."""
    import faiss

    index, info = db.index, db.index_info
    metric = info["metric"]
    q = prepare(np.stack([x.vec for x in queries]), metric)
    allowed = None
    if flt.active:
        with db.store.connect() as con:
            allowed = allowed_ids(con, flt)
    n_allowed = index.ntotal if allowed is None else len(allowed)
    k = min(k, n_allowed)
    if k == 0:
        return np.zeros((len(q), 0)), np.zeros((len(q), 0), np.int64)
    if allowed is None:
        raw, ids = index.search(q, k)
    else:
        sel = faiss.IDSelectorBatch(allowed)
        raw, ids = index.search(q, k, params=_search_params(faiss, info["kind"], index, sel,
                                                            n_allowed, k))
        if (ids < 0).any():  # approximate index missed some: exact search over the subset
            sub_ids, sub = db.store.vectors(allowed)
            mt = faiss.METRIC_INNER_PRODUCT if metric == "cosine" else faiss.METRIC_L2
            raw, pos = faiss.knn(q, prepare(sub, metric), k, metric=mt)
            ids = sub_ids[pos]
    return to_distance(raw, metric), ids


def nearest(db, queries: list[QueryVector], k: int = 10,
            flt: ImageFilter | None = None) -> NearestResult:
    """k nearest stored images of each query, with class vote and distance context."""
    flt = flt or ImageFilter()
    dist, ids = search(db, queries, k, flt)
    meta, ref = db.metadata()
    kk = ids.shape[1]
    flat = ids.ravel()
    pos = np.clip(np.searchsorted(meta["image_id"], flat), 0, max(len(meta["image_id"]) - 1, 0))
    nb = pd.DataFrame({
        "query": np.repeat([q.name for q in queries], kk),
        "rank": np.tile(np.arange(1, kk + 1), len(queries)),
        "distance": dist.ravel().astype(np.float64), "image_id": flat,
        **{c: np.asarray(meta[c])[pos] for c in ("class_name", "synset", "split", "path",
                                                 "root")}})
    votes = []
    names, syn = nb["class_name"].to_numpy(), nb["synset"].to_numpy()
    for qi, q in enumerate(queries):
        sl = slice(qi * kk, (qi + 1) * kk)
        counts = collections.Counter(zip(names[sl], syn[sl], strict=True))
        for (name, synset), cnt in counts.most_common():
            votes.append({"query": q.name, "class_name": name, "synset": synset,
                          "count": cnt, "share": cnt / kk})
    vote = pd.DataFrame(votes, columns=["query", "class_name", "synset", "count", "share"])
    ctx = _context(db, queries, dist, ids, ref)
    return NearestResult(nb, vote, ctx, kk, db.index_info["metric"])


def load_reference(con):
    """Sorted nearest-neighbour distances of stored images, and the median random pair."""
    try:
        nn = np.sort(np.array([r[0] for r in con.execute("SELECT dist FROM nn_sample")
                               .fetchall()]))
        med = con.execute("SELECT p50 FROM pair_stats WHERE kind = 'random'").fetchone()
    except Exception:  # noqa: BLE001 - statistics not computed yet
        return None, None
    return nn, (med[0] if med else None)


def _context(db, queries, dist, ids, ref) -> pd.DataFrame:
    nn_sorted, median_random = ref
    l2 = db.index_info["metric"] == "l2"
    have_nn = l2 and nn_sorted is not None and len(nn_sorted) > 0
    median_nn = float(np.median(nn_sorted)) if have_nn else None
    rows = []
    for qi, q in enumerate(queries):
        d, i = dist[qi], ids[qi]
        others = d[i != q.image_id] if q.image_id is not None else d
        nn_d = float(others[0]) if len(others) else float("nan")
        pct = None
        if have_nn and np.isfinite(nn_d):
            pct = 100.0 * np.searchsorted(nn_sorted, nn_d, side="right") / len(nn_sorted)
        rows.append({
            "query": q.name, "source": q.source, "cached": q.cached,
            "nn_distance": nn_d, "mean_distance_k": float(d.mean()) if len(d) else None,
            "nn_percentile": pct,
            "store_median_nn_distance": median_nn,
            "store_median_random_pair": median_random if l2 else None,
        })
    return pd.DataFrame(rows)
