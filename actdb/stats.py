"""Class and pair statistics, stored in the catalog (the original study's comparison).

- ``centroids``: per class: n, centroid, mean/std/p50/p95 member-to-centroid L2 distance;
- ``class_stats``: per class: mean same-class pair distance (``mean_dist``), mean distance to
  images of other classes (``mean_other_dist``), the nearest other class by centroid distance;
- ``pair_stats``: count, mean, std, quantiles of same-class, different-class and random pair
  distances, and of stored images' nearest-neighbour distances;
- ``nn_sample``: the nearest-neighbour distances behind that last row (for percentiles).

Pairs are every pair where they fit the budget (``pairs_per_class`` per class for same- and
different-class pairs, ``pair_sample`` for random pairs), else a seeded sample drawn without
replacement; each ``pair_stats`` row says which (``sampled``). The settings are recorded in
``stats_config`` and reused by later runs (after an ingest adds images) until changed. All
distances are L2 (the original study's).

>>> i, j = pairs_from_rank(np.arange(6), 4)     # the 6 pairs of 4 items, in order
>>> list(zip(i.tolist(), j.tolist()))
[(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)]
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, replace

import numpy as np

from actdb.errors import ActdbWarning
from actdb.options import STATS_DEFAULTS, StatsConfig
from actdb.store.catalog import derived, reads, writes
from actdb.store.store import Store
from actdb.store.writer import StoreWriter

QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)


def _dist(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise L2 distances (float32 arithmetic: ~1e-6 relative, plenty for statistics)."""
    d = a - b
    return np.sqrt(np.einsum("ij,ij->i", d, d)).astype(np.float64)


def pairs_from_rank(k: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The (i, j), i < j, numbered ``k`` in the row-major order of all pairs of ``n`` items."""
    k = np.asarray(k, np.int64)
    b = 2 * n - 1
    i = np.floor((b - np.sqrt(np.maximum(b * b - 8.0 * k, 0))) / 2).astype(np.int64)

    def before(r):  # pairs in the rows before row r
        return r * (2 * n - r - 1) // 2

    i = np.where(before(i + 1) <= k, i + 1, i)  # float rounding, either way
    i = np.where(before(i) > k, i - 1, i)
    return i, k - before(i) + i + 1


def _pairs_within(n: int, budget: int, rng) -> tuple[np.ndarray, np.ndarray, bool]:
    """All i<j pairs of n items when they fit ``budget``, else ``budget`` distinct ones."""
    total = n * (n - 1) // 2
    if total <= budget:
        i, j = np.triu_indices(n, 1)
        return i, j, False
    return (*pairs_from_rank(np.sort(rng.choice(total, budget, replace=False)), n), True)


def _pairs_across(start: int, count: int, n: int, budget: int, rng):
    """(member, non-member) pairs for the class at ``order[start:start + count]``, as
    (member offsets in the class, positions in ``order``): all of them when they fit
    ``budget``, else ``budget`` distinct ones."""
    n_other = n - count
    if n_other == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), False
    total = count * n_other
    sampled = total > budget
    k = np.sort(rng.choice(total, budget, replace=False)) if sampled else np.arange(total)
    member, other = np.divmod(k, n_other)
    other = np.where(other < start, other, other + count)  # skip the class's own rows
    return member, other, sampled


def _centroid_distances(c: np.ndarray) -> np.ndarray:
    """All pairwise L2 distances between centroids (k x k), without a k x k x dim temporary."""
    sq = (c**2).sum(axis=1)
    return np.sqrt(np.maximum(sq[:, None] + sq[None, :] - 2 * c @ c.T, 0))


def _summary(kind: str, d: np.ndarray, sampled: bool, cfg: StatsConfig) -> dict:
    q = np.quantile(d, QUANTILES) if len(d) else [np.nan] * len(QUANTILES)
    return {"kind": kind, "count": int(len(d)), "mean": float(np.mean(d)) if len(d) else None,
            "std": float(np.std(d)) if len(d) else None,
            **{f"p{int(p * 100):02d}": float(v) for p, v in zip(QUANTILES, q, strict=True)},
            "seed": cfg.seed, "sampled": bool(sampled),
            "pairs_per_class": cfg.pairs_per_class, "pair_sample": cfg.pair_sample}


#: A space whose vectors' median L2 norm is below this is degenerate (float32 rounding
#: dominates every distance between such vectors).
DEGENERATE_NORM = 1e-6


def degenerate(vecs: np.ndarray) -> str | None:
    """Why these vectors are too close to zero for any statistic to mean anything (None
    when they are not): a random-initialised network with batch normalisation can shrink
    its activations to ~1e-11.

    >>> degenerate(np.full((4, 3), 1e-11, np.float32))[:42]
    'its vectors are nearly zero (median norm 1'
    >>> degenerate(np.ones((4, 3), np.float32)) is None
    True
    """
    if not len(vecs):
        return None
    norm = float(np.median(np.linalg.norm(np.asarray(vecs, np.float64), axis=1)))
    if norm >= DEGENERATE_NORM:
        return None
    return (f"its vectors are nearly zero (median norm {norm:.2g}): every distance and "
            "statistic on it is rounding noise; its network needs trained weights "
            "(--weights imagenet or FILE)")


def settings(store: Store, given: StatsConfig | None = None) -> StatsConfig:
    """The settings a run uses: ``given``'s, where None the ones the store recorded last
    time, else :data:`~actdb.options.STATS_DEFAULTS` (every field set)."""
    with store.reader() as con:
        recorded = derived.stats_config(con, store.space.name) or {}
    cfg = StatsConfig(**{**STATS_DEFAULTS, **recorded})
    return replace(cfg, **{k: v for k, v in asdict(given or StatsConfig()).items()
                           if v is not None})


def compute_stats(store: Store, cfg: StatsConfig | None = None,
                  progress: Callable[..., None] | None = None) -> dict:
    """Recompute every statistics table from the store's vectors; returns a summary.

    ``cfg`` None: the settings the store's statistics were last computed with; ``progress``
    gets ``(done, total, description)``: each class, the random pairs, the nearest
    neighbours. The vectors are
    read once, in id order; each class's rows are gathered once (its centroid, spread and
    same-class pairs come from that block), other rows only as the pair samples need them.
    """
    import pandas as pd

    cfg = cfg or settings(store)
    t0 = time.perf_counter()
    with store.reader() as con:
        first = reads.classes(con)
        rows = reads.labelled_images(con)  # grouped by class, then id
    all_ids, vecs = store.vectors()
    if (why := degenerate(vecs)) is not None:
        warnings.warn(ActdbWarning(f"the space {store.space.name}: {why}"), stacklevel=2)
    held = np.isin(rows["image_id"], all_ids)  # a space being filled holds fewer images
    labels = np.asarray(rows["label"], np.int64)[held]
    ids = np.asarray(rows["image_id"], np.int64)[held]
    order = np.searchsorted(all_ids, ids)  # class-grouped rows of ``vecs``
    n, dim = len(ids), store.manifest.dim
    starts = np.searchsorted(labels, np.arange(len(first)))
    counts = np.diff(np.append(starts, n))
    held_classes = np.flatnonzero(counts)  # a space being (re)filled may lack whole classes
    first = [first[c] for c in held_classes]
    starts, counts = starts[held_classes], counts[held_classes]
    keys = [r[0] for r in first]
    rng = np.random.default_rng(cfg.seed)
    k = len(keys)
    centroids = np.zeros((k, dim))
    spread, same_all, other_all = [], [], []
    same_sampled = other_sampled = False
    report = progress or (lambda *_: None)
    for c in range(k):
        lo, cnt = int(starts[c]), int(counts[c])
        block = vecs[order[lo : lo + cnt]]
        centroids[c] = block.mean(axis=0, dtype=np.float64)
        spread.append(_dist(block, np.broadcast_to(centroids[c].astype(np.float32),
                                                   block.shape)))
        i, j, s1 = _pairs_within(cnt, cfg.pairs_per_class, rng)
        same_all.append(_dist(block[i], block[j]))
        a, b, s2 = _pairs_across(lo, cnt, n, cfg.pairs_per_class, rng)
        other_all.append(_dist(block[a], vecs[order[b]]))
        same_sampled, other_sampled = same_sampled or s1, other_sampled or s2
        report(c + 1, k + 2, "classes")
    cent_rows, class_rows = [], []
    cdist = _centroid_distances(centroids)
    for c in range(k):
        d, same, other = spread[c], same_all[c], other_all[c]
        key, name, synset, index, _ = first[c]
        cent_rows.append((key, synset, name, index, len(d), centroids[c].astype(np.float32),
                          d.mean(), d.std(), np.quantile(d, 0.5), np.quantile(d, 0.95)))
        near_key = near_name = near_d = None
        if k > 1:
            row = cdist[c].copy()
            row[c] = np.inf
            near = int(np.argmin(row))
            near_key, near_name, near_d = keys[near], first[near][1], float(row[near])
        class_rows.append((key, name, len(d), float(same.mean()) if len(same) else None,
                           len(same), float(other.mean()) if len(other) else None, len(other),
                           near_name, near_key, near_d))
    pairs = [_summary("same_class", np.concatenate(same_all) if same_all else np.zeros(0),
                      same_sampled, cfg),
             _summary("different_class",
                      np.concatenate(other_all) if other_all else np.zeros(0), other_sampled,
                      cfg)]
    if n > 1:
        i, j, sampled = _pairs_within(n, cfg.pair_sample, rng)
        pairs.append(_summary("random", _dist(vecs[order[i]], vecs[order[j]]), sampled, cfg))
    report(k + 1, k + 2, "random pairs")
    nn_ids, nn_d = _nn_sample(store, all_ids, vecs, ids, cfg, rng)
    pairs.append(_summary("nearest_neighbour", nn_d, len(nn_ids) < n, cfg))
    report(k + 2, k + 2, "nearest neighbours")
    seconds = round(time.perf_counter() - t0, 3)
    cent = pd.DataFrame(cent_rows, columns=[
        "class_key", "synset", "class_name", "class_index", "n", "centroid", "mean_dist",
        "std_dist", "p50_dist", "p95_dist"])
    cls = pd.DataFrame(class_rows, columns=[
        "class_key", "class_name", "n", "mean_dist", "same_pairs", "mean_other_dist",
        "other_pairs", "nearest_class", "nearest_class_key", "nearest_class_dist"])
    with StoreWriter(store.path) as w, w.connect() as con:
        writes.write_stats(con, store.space.name,
                           {**asdict(cfg), "images": n, "classes": k, "seconds": seconds},
                           cent, cls, pd.DataFrame(pairs),
                           pd.DataFrame({"image_id": nn_ids, "dist": nn_d}))
    return {"classes": k, "images": n, "seconds": seconds, "config": asdict(cfg),
            "pair_stats": pairs}


def _nn_sample(store: Store, all_ids, vecs, labelled, cfg: StatsConfig, rng):
    """Distance from a sample of labelled stored images to their nearest *other* stored
    image (``all_ids``/``vecs``: every stored image, by id).

    Exact (brute force) unless the store has an approximate index, which is then used: at
    ImageNet scale exact search for the whole sample would dominate the statistics' time.
    """
    if len(labelled) < 2:
        return np.zeros(0, np.int64), np.zeros(0)
    import faiss

    pick = np.sort(rng.choice(labelled, min(cfg.nn_sample, len(labelled)), replace=False))
    q = np.ascontiguousarray(vecs[np.searchsorted(all_ids, pick)], np.float32)
    index = _approximate_l2_index(store)
    if index is not None:
        d, nbr = index.search(q, 2)
        nbr = np.where(nbr >= 0, nbr, -1)
    else:
        d2, pos = faiss.knn(q, np.ascontiguousarray(vecs, np.float32), 2,
                            metric=faiss.METRIC_L2)
        d, nbr = np.sqrt(np.maximum(d2, 0)), all_ids[pos]
    # the first hit is the image itself (or an exact duplicate at distance 0)
    return pick, np.where(nbr[:, 0] == pick, d[:, 1], d[:, 0])


def _approximate_l2_index(store: Store):
    """The store's approximate L2 index, loaded for searching (None when exact or none)."""
    from actdb.index.info import IndexInfo
    from actdb.index.loaded import LoadedIndex

    info = IndexInfo.of_store(store.dir)
    if info is None or info.kind == "flat" or info.metric != "l2":
        return None
    return LoadedIndex.open(store.dir)


def refresh_index_and_stats(store: Store, index: bool = True, stats: bool = True,
                            stale_only: bool = False) -> tuple[dict | None, dict | None]:
    """What every writer of vectors does last (ingest, merge), in every space: bring the index
    up to date, then recompute the statistics with their recorded settings (``stale_only``:
    only where they are missing or cover another number of images). Returns the default
    space's (index info, stats summary)."""
    from actdb.index.store_index import update_index

    out: tuple[dict | None, dict | None] = (None, None)
    for row in store.spaces():
        space = store.in_space(row.name)
        got = (update_index(space) if index else None,
               compute_stats(space) if stats and not (stale_only and _current(space))
               else None)
        if row.is_default:
            out = got
    return out


def _current(store: Store) -> bool:
    """Whether a space's statistics cover exactly the images it holds."""
    with store.reader() as con:
        rec = derived.stats_record(con, store.space.name)
        n = reads.labelled_count(con, store.space.name)
    return rec is not None and rec["images"] == n
