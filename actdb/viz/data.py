"""The data behind the plots: samples of stored vectors, channel profiles and distance
histograms (maps: :mod:`actdb.viz.maps`). Plots (``figures``) only draw what these functions
return, and tests check these numbers.

>>> from actdb.store.store import Store
>>> s = sample_vectors(Store.open(store), SampleConfig(classes=("tench",), per_class=4))
>>> s.vecs.shape, set(s.labels)
((4, 512), {'tench'})
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

from actdb.errors import ActdbWarning, UsageError
from actdb.store.catalog import derived, reads


@dataclass(frozen=True, kw_only=True)
class SampleConfig:
    """Which stored images a plot shows: named classes, plus random other classes."""

    classes: tuple[str, ...] | None = None
    random_classes: int = 0
    per_class: int | None = 100
    seed: int = 0


@dataclass
class Sample:
    ids: np.ndarray
    vecs: np.ndarray
    labels: np.ndarray  # class name per row
    groups: np.ndarray  # the class name, or "N random classes"
    named: list[str]
    random: list[str]


def random_group(n: int) -> str:
    """The plot group of the random classes of a sample.

    >>> random_group(1), random_group(3), is_random_group("3 random classes")
    ('1 random class', '3 random classes', True)
    """
    return f"{n} random class" + ("" if n == 1 else "es")


def is_random_group(group: str) -> bool:
    return bool(re.fullmatch(r"\d+ random class(es)?", group))


def sample_vectors(store, cfg: SampleConfig) -> Sample:
    """Seeded per-class sample of stored vectors of the named and random classes."""
    rng = np.random.default_rng(cfg.seed)
    if cfg.random_classes < 0:
        raise UsageError(f"random_classes must be at least 0, not {cfg.random_classes}",
                         param="random_classes")
    if cfg.per_class is not None and cfg.per_class < 1:
        raise UsageError(f"per_class must be at least 1, not {cfg.per_class}",
                         param="per_class")
    with store.reader() as con:
        classes = [(r[0], r[1]) for r in reads.classes(con)]
        if not classes:
            raise UsageError("the store has no labelled images to plot")
        named = reads.resolve_classes(con, cfg.classes) if cfg.classes else []
        others = [k for k, _ in classes if k not in set(named)]
        n_random = min(cfg.random_classes, len(others))
        if n_random < cfg.random_classes:
            warnings.warn(ActdbWarning(
                f"random_classes {cfg.random_classes}: the store has only {n_random} other "
                f"classes; showing {'all of them' if n_random else 'none'}",
                param="random_classes"), stacklevel=2)
        rand = sorted(rng.choice(others, n_random, replace=False).tolist()) if n_random else []
        if not named and not rand:
            named = [k for k, _ in classes]
        keys = named + rand
        rows = reads.class_members(con, keys)
    names = dict(classes)
    keep = []
    for key in keys:
        idx = np.flatnonzero(rows["key"] == key)
        if cfg.per_class is not None and len(idx) > cfg.per_class:
            idx = np.sort(rng.choice(idx, cfg.per_class, replace=False))
        keep.append(idx)
    sel = np.concatenate(keep) if keep else np.zeros(0, int)
    ids, vecs = store.vectors(np.asarray(rows["image_id"])[sel])
    labels = np.asarray(rows["class_name"], dtype=object)[sel]
    rand_set = set(rand)
    group_name = random_group(len(rand))
    groups = np.array([group_name if k in rand_set else names[k]
                       for k in np.asarray(rows["key"], dtype=object)[sel]], dtype=object)
    return Sample(ids, vecs, labels, groups, [names[k] for k in named], [names[k] for k in rand])


def profile_data(store, qs: list, classes) -> pd.DataFrame:
    """Channel values of each query and the mean profile of each named class (long form:
    series, kind, group (the class, for its colour), channel, value)."""
    if not qs and not classes:
        raise UsageError("a profile needs queries or classes to draw")
    keys = []
    if classes:
        with store.reader() as con:
            keys = reads.resolve_classes(con, classes)
            cent = derived.centroids(con, store.space.name).set_index("class_key")
    frames = []
    for q in qs:
        frames.append(pd.DataFrame({"series": q.name, "kind": "query", "group": q.name,
                                    "channel": np.arange(len(q.vec)), "value": q.vec}))
    for k in keys:
        c = np.asarray(cent.centroid[k])
        frames.append(pd.DataFrame({"series": f"{cent.class_name[k]} (mean)", "kind": "class",
                                    "group": cent.class_name[k], "channel": np.arange(len(c)),
                                    "value": c}))
    return pd.concat(frames, ignore_index=True)


@dataclass
class DistanceData:
    """Distances from each query to every image of each group, histogrammed on shared bins."""

    distances: pd.DataFrame  # query, group, image_id, distance
    bins: np.ndarray
    counts: pd.DataFrame  # query, group, n, counts (list per bin)
    pair_stats: pd.DataFrame


def distance_data(store, qs: list, sample: SampleConfig, bins: int = 40,
                  log: bool = False) -> DistanceData:
    """Every image of the named and random classes (no per-class cap), the query distances,
    and pair_stats for context (when computed)."""
    if not qs:
        raise UsageError("distance histograms need at least one query")
    if bins < 1:
        raise UsageError(f"bins must be at least 1, not {bins}", param="bins")
    s = sample_vectors(store, SampleConfig(classes=sample.classes,
                                           random_classes=sample.random_classes,
                                           per_class=None, seed=sample.seed))
    rows = []
    x = s.vecs.astype(np.float64)
    for q in qs:
        d = np.sqrt(((x - q.vec.astype(np.float64)) ** 2).sum(axis=1))
        rows.append(pd.DataFrame({"query": q.name, "group": s.groups, "image_id": s.ids,
                                  "distance": d}))
    dist = pd.concat(rows, ignore_index=True)
    with store.reader() as con:
        space = store.space.name
        ps = derived.pair_stats(con, space) if derived.has_stats(con, space) else pd.DataFrame()
    values = np.concatenate([dist.distance.to_numpy()] + (
        [ps[["p05", "p95"]].to_numpy().ravel()] if not ps.empty else []))
    hi = max(float(values.max()), 1e-12) * 1.0001
    if log:  # from the smallest positive distance; exact zeros (the image itself) go in bin 1
        positive = values[values > 0]
        lo = float(positive.min()) / 1.5 if len(positive) else hi / 10
        edges = np.geomspace(lo, max(hi, lo * 10), bins + 1)
    else:
        edges = np.linspace(0, hi, bins + 1)
    counts = [{"query": qn, "group": g, "n": len(part), "counts": np.histogram(
                   np.clip(part.distance, edges[0], edges[-1]), edges)[0].tolist()}
              for (qn, g), part in dist.groupby(["query", "group"], sort=False)]
    return DistanceData(dist, edges, pd.DataFrame(counts), ps)
