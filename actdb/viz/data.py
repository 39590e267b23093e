"""The data behind every plot: samples of stored vectors, 2-D projections, profiles and
distance histograms. Plots (``figures``) only draw what these functions return, and tests
check these numbers.

>>> from actdb.store.store import Store
>>> m = map_data(Store.open(store), [], SampleConfig(classes=("tench",)), ProjectionConfig("pca"))
>>> m.coords[["kind", "class_name"]].value_counts().to_dict()
{('image', 'tench'): 6}
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from actdb import heavy
from actdb.errors import UsageError
from actdb.store.catalog import reads

METHODS = ("tsne", "umap", "pca")
Stage = Callable[[str], None]


@dataclass(frozen=True)
class SampleConfig:
    """Which stored images a plot shows: named classes, plus random other classes."""

    classes: tuple[str, ...] | None = None
    random_classes: int = 0
    per_class: int | None = 100
    seed: int = 0


@dataclass(frozen=True)
class ProjectionConfig:
    """How 512-d vectors become 2-D coordinates."""

    method: str = "tsne"
    seed: int = 0
    pca_dims: int = 50
    perplexity: float = 30.0
    n_neighbors: int = 15
    min_dist: float = 0.1


@dataclass
class Sample:
    ids: np.ndarray
    vecs: np.ndarray
    labels: np.ndarray  # class name per row
    groups: np.ndarray  # the class name, or "N random classes"
    named: list[str]
    random: list[str]


def sample_vectors(store, cfg: SampleConfig) -> Sample:
    """Seeded per-class sample of stored vectors of the named and random classes."""
    rng = np.random.default_rng(cfg.seed)
    if cfg.random_classes < 0:
        raise UsageError(f"random_classes must be at least 0, not {cfg.random_classes}")
    if cfg.per_class is not None and cfg.per_class < 1:
        raise UsageError(f"per_class must be at least 1, not {cfg.per_class}")
    with store.reader() as con:
        classes = [(r[0], r[1]) for r in reads.classes(con)]
        if not classes:
            raise UsageError("the store has no labelled images to plot")
        named = reads.resolve_classes(con, cfg.classes) if cfg.classes else []
        others = [k for k, _ in classes if k not in set(named)]
        if cfg.random_classes > len(others):
            raise UsageError(f"random_classes {cfg.random_classes}: only {len(others)} "
                             "other classes in the store")
        rand = sorted(rng.choice(others, cfg.random_classes, replace=False).tolist()
                      ) if cfg.random_classes else []
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
    group_name = f"{len(rand)} random class" + ("" if len(rand) == 1 else "es")
    groups = np.array([group_name if k in rand_set else names[k]
                       for k in np.asarray(rows["key"], dtype=object)[sel]], dtype=object)
    return Sample(ids, vecs, labels, groups, [names[k] for k in named], [names[k] for k in rand])


def project(x: np.ndarray, q: np.ndarray, cfg: ProjectionConfig,
            stage: Stage | None = None) -> tuple[np.ndarray, np.ndarray]:
    """2-D coordinates of the sample ``x`` and the queries ``q``.

    PCA to ``pca_dims`` first (when the data has more), which speeds t-SNE and UMAP without
    changing the picture. UMAP and PCA fit on the sample and place queries with ``transform``;
    t-SNE has no transform, so queries are embedded jointly with the sample.
    """
    from sklearn.decomposition import PCA

    if cfg.method not in METHODS:
        raise UsageError(f"unknown projection {cfg.method!r}; use one of {', '.join(METHODS)}")
    say = stage or (lambda _: None)
    x = np.asarray(x, np.float64)
    q = np.asarray(q, np.float64).reshape(-1, x.shape[1])
    if cfg.method == "pca":
        pca = PCA(2, random_state=cfg.seed).fit(x)
        return pca.transform(x), pca.transform(q) if len(q) else np.zeros((0, 2))
    dims = min(cfg.pca_dims, x.shape[1], len(x))
    if dims < x.shape[1]:
        say(f"PCA {x.shape[1]} -> {dims} dims")
        pca = PCA(dims, random_state=cfg.seed).fit(x)
        x, q = pca.transform(x), (pca.transform(q) if len(q) else q[:, :dims])
    if cfg.method == "umap":
        say(f"UMAP on {len(x)} points")
        reducer = heavy.umap().UMAP(n_components=2, n_neighbors=min(cfg.n_neighbors, len(x) - 1),
                            min_dist=cfg.min_dist, random_state=cfg.seed)
        xc = reducer.fit_transform(x)
        return xc, reducer.transform(q) if len(q) else np.zeros((0, 2))
    say(f"t-SNE on {len(x) + len(q)} points")
    from sklearn.manifold import TSNE

    both = np.vstack([x, q]) if len(q) else x
    perplexity = min(cfg.perplexity, max(1.0, (len(both) - 1) / 3))
    yc = TSNE(2, perplexity=perplexity, init="pca", random_state=cfg.seed).fit_transform(both)
    return yc[: len(x)], yc[len(x):]


@dataclass
class MapData:
    """Coordinates of sampled images and queries, and how they were made."""

    coords: pd.DataFrame  # kind (image|query), image_id, name, class_name, group, x, y
    method: str
    params: dict

    def save(self, path) -> None:
        """Parquet with the parameters in the schema metadata (to reproduce or re-style)."""
        import json

        import pyarrow as pa
        import pyarrow.parquet as pq

        t = pa.Table.from_pandas(self.coords, preserve_index=False)
        meta = {**(t.schema.metadata or {}), b"actdb": json.dumps(
            {"method": self.method, **self.params}, default=str).encode()}
        pq.write_table(t.replace_schema_metadata(meta), path)


def map_data(store, qs: list, sample: SampleConfig, proj: ProjectionConfig,
             stage: Stage | None = None) -> MapData:
    """Sample, project, and return the coordinates of images and (resolved) queries."""
    say = stage or (lambda _: None)
    say("sampling stored vectors")
    s = sample_vectors(store, sample)
    qv = np.stack([q.vec for q in qs]) if qs else np.zeros((0, s.vecs.shape[1]))
    xc, qc = project(s.vecs, qv, proj, say)
    img = pd.DataFrame({"kind": "image", "image_id": s.ids, "name": None,
                        "class_name": s.labels, "group": s.groups,
                        "x": xc[:, 0], "y": xc[:, 1]})
    qdf = pd.DataFrame({"kind": "query", "image_id": None, "name": [q.name for q in qs],
                        "class_name": None, "group": "query",
                        "x": qc[:, 0] if len(qs) else [], "y": qc[:, 1] if len(qs) else []})
    coords = pd.concat([img, qdf], ignore_index=True) if len(qs) else img
    m = store.manifest
    params = {**asdict(proj), "sample": asdict(sample), "model": m.model, "layer": m.layer,
              "pool": m.pool, "named_classes": s.named, "random_classes": s.random}
    return MapData(coords, proj.method, params)


def profile_data(store, qs: list, classes) -> pd.DataFrame:
    """Channel values of each query and the mean profile of each named class (long form:
    series, kind, channel, value)."""
    if not qs and not classes:
        raise UsageError("a profile needs queries or classes to draw")
    keys = []
    if classes:
        with store.reader() as con:
            keys = reads.resolve_classes(con, classes)
            cent = reads.centroids(con).set_index("class_key")
    frames = []
    for q in qs:
        frames.append(pd.DataFrame({"series": q.name, "kind": "query",
                                    "channel": np.arange(len(q.vec)), "value": q.vec}))
    for k in keys:
        c = np.asarray(cent.centroid[k])
        frames.append(pd.DataFrame({"series": f"{cent.class_name[k]} (mean)", "kind": "class",
                                    "channel": np.arange(len(c)), "value": c}))
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
        raise UsageError(f"bins must be at least 1, not {bins}")
    s = sample_vectors(store, SampleConfig(sample.classes, sample.random_classes, None,
                                           sample.seed))
    rows = []
    x = s.vecs.astype(np.float64)
    for q in qs:
        d = np.sqrt(((x - q.vec.astype(np.float64)) ** 2).sum(axis=1))
        rows.append(pd.DataFrame({"query": q.name, "group": s.groups, "image_id": s.ids,
                                  "distance": d}))
    dist = pd.concat(rows, ignore_index=True)
    with store.reader() as con:
        ps = reads.pair_stats(con) if reads.has_stats(con) else pd.DataFrame()
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
