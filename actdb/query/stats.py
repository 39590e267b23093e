"""Class and pair statistics, stored as catalog tables (the original study's comparison).

- ``centroids``: per class: n, centroid, mean/std/p50/p95 member-to-centroid L2 distance;
- ``class_stats``: per class: mean same-class pair distance (``mean_dist``), mean distance to
  images of other classes (``mean_other_dist``), the nearest other class by centroid distance;
- ``pair_stats``: count, mean, std, quantiles of same-class, different-class and random pair
  distances, and of stored images' nearest-neighbour distances;
- ``nn_sample``: the nearest-neighbour distances behind that last row (for percentiles).

Pairs are exhaustive when a class has at most ``pairs_per_class`` of them, else sampled with the
recorded ``seed``. All distances are L2 (the original study's).

>>> compute_stats("actdb-store", StatsConfig(seed=0))           # doctest: +SKIP
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)


@dataclass(frozen=True)
class StatsConfig:
    """Sample sizes and seed of the statistics."""

    seed: int = 0
    pairs_per_class: int = 500
    pair_sample: int = 100_000
    nn_sample: int = 1000


def _dist(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise L2 distances (float32 arithmetic: ~1e-6 relative, plenty for statistics)."""
    d = a - b
    return np.sqrt(np.einsum("ij,ij->i", d, d)).astype(np.float64)


def _pairs_within(n: int, budget: int, rng) -> tuple[np.ndarray, np.ndarray]:
    """All i<j pairs of n items when they fit in ``budget``, else ``budget`` random ones."""
    if n < 2:
        return np.zeros(0, int), np.zeros(0, int)
    if n * (n - 1) // 2 <= budget:
        i, j = np.triu_indices(n, 1)
        return i, j
    i = rng.integers(0, n, budget)
    j = (i + rng.integers(1, n, budget)) % n  # never i itself
    return i, j


def _pairs_across(members: np.ndarray, labels: np.ndarray, c: int, budget: int, rng):
    """(member, non-member) pairs: all of them when they fit in ``budget``, else sampled."""
    n_other = len(labels) - len(members)
    if n_other == 0:
        return np.zeros(0, int), np.zeros(0, int)
    if len(members) * n_other <= budget:
        others = np.flatnonzero(labels != c)
        return np.repeat(members, n_other), np.tile(others, len(members))
    a = members[rng.integers(0, len(members), budget)]
    b = rng.integers(0, len(labels), budget)
    bad = labels[b] == c
    while bad.any():  # resample the few that fell in the same class
        b[bad] = rng.integers(0, len(labels), int(bad.sum()))
        bad = labels[b] == c
    return a, b


def _centroid_distances(c: np.ndarray) -> np.ndarray:
    """All pairwise L2 distances between centroids (k x k), without a k x k x dim temporary."""
    sq = (c**2).sum(axis=1)
    return np.sqrt(np.maximum(sq[:, None] + sq[None, :] - 2 * c @ c.T, 0))


def _summary(kind: str, d: np.ndarray, cfg: StatsConfig) -> dict:
    q = np.quantile(d, QUANTILES) if len(d) else [np.nan] * len(QUANTILES)
    return {"kind": kind, "count": int(len(d)), "mean": float(np.mean(d)) if len(d) else None,
            "std": float(np.std(d)) if len(d) else None,
            **{f"p{int(p * 100):02d}": float(v) for p, v in zip(QUANTILES, q, strict=True)},
            "seed": cfg.seed}


def compute_stats(store: str | Path | None = None, cfg: StatsConfig | None = None) -> dict:
    """Recompute every statistics table from the store's vectors; returns a summary."""
    from actdb.store.store import Store
    from actdb.store.writer import StoreWriter

    cfg = cfg or StatsConfig()
    t0 = time.perf_counter()
    s = Store.open(store)
    with s.connect() as con:
        first = con.execute(
            "SELECT class_key, class_name, synset, class_index FROM classes ORDER BY class_key"
        ).df()
        rows = con.execute(
            "SELECT image_id, dense_rank() OVER (ORDER BY coalesce(synset, class_name)) - 1 "
            "AS label FROM images WHERE class_name IS NOT NULL ORDER BY label, image_id"
        ).fetchnumpy()
    # rows grouped by class: class c is rows starts[c] : starts[c] + counts[c]
    ids, vecs = s.vectors(rows["image_id"])
    labels = np.asarray(rows["label"], np.int64)
    uniq = first.class_key.to_numpy()
    rng = np.random.default_rng(cfg.seed)
    k, n, dim = len(uniq), len(ids), s.manifest.dim
    starts = np.searchsorted(labels, np.arange(k))
    counts = np.diff(np.append(starts, n))
    centroids = np.zeros((k, dim))
    for c in range(k):  # contiguous blocks; numpy's pairwise float32 sum is accurate here
        centroids[c] = vecs[starts[c] : starts[c] + counts[c]].mean(axis=0)
    dc = np.empty(n)
    for lo in range(0, n, 65536):  # member-to-centroid distances, in chunks
        hi = min(lo + 65536, n)
        dc[lo:hi] = _dist(vecs[lo:hi], centroids[labels[lo:hi]].astype(np.float32))
    cent_rows, same_all, other_all, class_rows = [], [], [], []
    cdist = _centroid_distances(centroids)
    for c in range(k):
        members = np.arange(starts[c], starts[c] + counts[c])
        d = dc[members]
        cent_rows.append((len(members), d.mean(), d.std(), np.quantile(d, 0.5),
                          np.quantile(d, 0.95)))
        i, j = _pairs_within(len(members), cfg.pairs_per_class, rng)
        same = _dist(vecs[members[i]], vecs[members[j]])
        a, b = _pairs_across(members, labels, c, cfg.pairs_per_class, rng)
        other = _dist(vecs[a], vecs[b])
        same_all.append(same)
        other_all.append(other)
        if k > 1:
            row = cdist[c].copy()
            row[c] = np.inf
            near = int(np.argmin(row))
            near_key, near_d = uniq[near], float(row[near])
        else:
            near_key, near_d = None, None
        class_rows.append((uniq[c], first.class_name.iloc[c], len(members),
                           float(same.mean()) if len(same) else None, len(same),
                           float(other.mean()) if len(other) else None, len(other),
                           near_key, near_d))
    pairs = [_summary("same_class", np.concatenate(same_all) if same_all else np.zeros(0), cfg),
             _summary("different_class",
                      np.concatenate(other_all) if other_all else np.zeros(0), cfg)]
    m = min(cfg.pair_sample, n * (n - 1) // 2)
    if n > 1:
        i = rng.integers(0, n, m)
        j = (i + rng.integers(1, n, m)) % n
        pairs.append(_summary("random", _dist(vecs[i], vecs[j]), cfg))
    nn_ids, nn_d = _nn_sample(s.path, ids, vecs, cfg, rng)
    pairs.append(_summary("nearest_neighbour", nn_d, cfg))
    with StoreWriter(s.path, s.manifest) as w, w.connect() as con:
        _write_tables(con, dim, uniq, first, cent_rows, centroids, class_rows, pairs,
                      nn_ids, nn_d, cfg)
    return {"classes": k, "images": n, "seconds": round(time.perf_counter() - t0, 3),
            "config": asdict(cfg), "pair_stats": pairs}


def _nn_sample(store: Path, ids, vecs, cfg: StatsConfig, rng):
    """Distance from a sample of stored images to their nearest *other* stored image.

    Exact (brute force) unless the store has an approximate index, which is then used: at
    ImageNet scale exact search for the whole sample would dominate the statistics' time.
    """
    if len(ids) < 2:
        return np.zeros(0, np.int64), np.zeros(0)
    import faiss

    pick = np.sort(rng.choice(len(ids), min(cfg.nn_sample, len(ids)), replace=False))
    q = np.ascontiguousarray(vecs[pick], np.float32)
    index = _approximate_l2_index(store)
    if index is not None:
        d2, nbr = index.search(q, 2)
        self_hit = nbr[:, 0] == ids[pick]
    else:
        d2, nbr = faiss.knn(q, np.ascontiguousarray(vecs, np.float32), 2,
                            metric=faiss.METRIC_L2)
        self_hit = nbr[:, 0] == pick
    # the first hit is the image itself (or an exact duplicate at distance 0)
    other = np.where(self_hit, d2[:, 1], d2[:, 0])
    return ids[pick], np.sqrt(np.maximum(other, 0))


def _approximate_l2_index(store: Path):
    from actdb.index.faiss_index import load_index, load_info

    try:
        info = load_info(store)
    except Exception:  # noqa: BLE001 - no index yet
        return None
    if info.get("kind") == "flat" or info.get("metric") != "l2":
        return None
    return load_index(store)


def _write_tables(con, dim, uniq, first, cent_rows, centroids, class_rows, pairs,
                  nn_ids, nn_d, cfg) -> None:
    import pandas as pd

    cent = pd.DataFrame({
        "class_key": uniq, "synset": first.synset.to_numpy(), "class_name":
        first.class_name.to_numpy(), "class_index": first.class_index.to_numpy(),
        "n": [r[0] for r in cent_rows],
        "centroid": list(centroids.astype(np.float32)),
        "mean_dist": [r[1] for r in cent_rows], "std_dist": [r[2] for r in cent_rows],
        "p50_dist": [r[3] for r in cent_rows], "p95_dist": [r[4] for r in cent_rows]})
    cls = pd.DataFrame(class_rows, columns=[
        "class_key", "class_name", "n", "mean_dist", "same_pairs", "mean_other_dist",
        "other_pairs", "nearest_class_key", "nearest_class_dist"])
    names = dict(zip(cent.class_key, cent.class_name, strict=True))
    cls.insert(8, "nearest_class", cls.nearest_class_key.map(names))
    pst = pd.DataFrame(pairs)
    pst["pairs_per_class"] = cfg.pairs_per_class
    pst["pair_sample"] = cfg.pair_sample
    nn = pd.DataFrame({"image_id": nn_ids, "dist": nn_d})
    con.execute("BEGIN TRANSACTION")
    for name, df in (("class_stats", cls), ("pair_stats", pst), ("nn_sample", nn)):
        con.register("df_in", df)
        con.execute(f"CREATE OR REPLACE TABLE {name} AS SELECT * FROM df_in")
        con.unregister("df_in")
    con.register("df_in", cent)
    con.execute("CREATE OR REPLACE TABLE centroids AS SELECT * REPLACE "
                f"(centroid::FLOAT[{dim}] AS centroid) FROM df_in")
    con.unregister("df_in")
    con.execute("COMMIT")
