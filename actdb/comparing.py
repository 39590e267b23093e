"""``compare``: how alike a store's spaces are, and how well each separates classes, over one
shared seeded sample of images; kept in the catalog (``space_similarity``,
``space_separation``) and drawn by ``plot cka``.

Every pair of spaces gets linear CKA (Kornblith et al. 2019) over the same images: exact
when the sample's vectors of the two spaces fit ``memory_bytes``, else the debiased
minibatch estimate (Nguyen et al. 2021), which reads one batch of rows at a time. Every space
gets the leave-one-out k-NN class accuracy of a seeded set of its labelled sample images and
the mean same-class over different-class pair distance. The arithmetic is
:mod:`actdb.similarity`'s; this module picks the images, reads their vectors and keeps the
answers.

A store of one space has nothing to compare (``ingest --layers`` or ``--model`` add some):

>>> import actdb
>>> compare_spaces(actdb.open(store).store, CompareConfig(sample=12))  # doctest: +ELLIPSIS
Traceback (most recent call last):
actdb.errors.UsageError: this store has one space (vgg19/block5_conv4); compare needs two ...
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np

from actdb.errors import QueryError, StoreError, UsageError
from actdb.options import CompareConfig
from actdb.similarity import (
    knn_accuracy,
    linear_cka,
    minibatch_cka,
    one_space,
    same_over_different,
)
from actdb.store.catalog import reads, writes
from actdb.store.store import Store
from actdb.store.writer import StoreWriter


@dataclass
class CompareResult:
    """``similarity`` (space_a, space_b, cka, method, n, seed) and ``separation`` (space,
    knn_accuracy, k, queries, same_over_different, n, seed) DataFrames, as kept."""

    similarity: object
    separation: object
    seconds: float

    def _repr_html_(self) -> str:
        from actdb.viz.notebook import compare_html

        return compare_html(self)

    def to_dict(self) -> dict:
        return {"similarity": self.similarity.to_dict("records"),
                "separation": self.separation.to_dict("records"), "seconds": self.seconds}


#: The fewest shared images a comparison is made on.
MIN_SAMPLE = 4


def _check(cfg: CompareConfig) -> None:
    if cfg.sample < MIN_SAMPLE:
        raise UsageError(f"sample must be at least {MIN_SAMPLE} images, not {cfg.sample}",
                         param="sample")
    for name in ("k", "queries", "pairs"):
        if getattr(cfg, name) < 1:
            raise UsageError(f"{name} must be at least 1, not {getattr(cfg, name)}",
                             param=name)
    if cfg.batch < 4:
        raise UsageError(f"batch must be at least 4, not {cfg.batch}", param="batch")


def shared_sample(store: Store, cfg: CompareConfig) -> tuple[np.ndarray, list[str]]:
    """The seeded sample of images every space holds (sorted ids) and the spaces' names."""
    with store.reader() as con:
        names = [r.name for r in reads.spaces(con)]
        shared = reads.space_image_ids(con, names[0])
        for n in names[1:]:
            shared = np.intersect1d(shared, reads.space_image_ids(con, n), assume_unique=True)
    if len(shared) > cfg.sample:
        rng = np.random.default_rng(cfg.seed)
        shared = np.sort(rng.choice(shared, cfg.sample, replace=False))
    return shared, names


def sample_vectors(store: Store, ids: np.ndarray) -> np.ndarray:
    """A sample's vectors in one space: from its memory-mapped index when that holds them
    unchanged (a few rows of every shard would otherwise mean reading every shard whole),
    else from its shards."""
    from actdb.index.loaded import LoadedIndex

    try:
        vecs = LoadedIndex.open(store.dir).vectors(ids)
    except (StoreError, QueryError):  # no index, or one that lacks some of the images
        vecs = None
    return store.vectors(ids)[1] if vecs is None else np.asarray(vecs, np.float32)


def compare_spaces(store: Store, cfg: CompareConfig | None = None,
                   progress: Callable[..., None] | None = None) -> CompareResult:
    """Compare every space of the store on one shared sample, keep the answers in the
    catalog (replacing the last comparison's) and return them; ``progress`` gets ``(done,
    total, description)``: each space's sample read, each pair's CKA, each space's
    separation."""
    import pandas as pd

    cfg = cfg or CompareConfig()
    _check(cfg)
    t0 = time.perf_counter()
    ids, names = shared_sample(store, cfg)
    if len(names) < 2:
        raise UsageError(one_space(names[0]))
    if len(ids) < MIN_SAMPLE:
        raise UsageError(f"the spaces share {len(ids)} images; comparing needs at least "
                         f"{MIN_SAMPLE}")
    s = len(names)
    total, done = s + s * (s - 1) // 2 + s, 0
    report = progress or (lambda *_: None)
    vecs = {}
    for n in names:
        vecs[n] = sample_vectors(store.in_space(n), ids)
        done += 1
        report(done, total, "reading the sample")
    with store.reader() as con:
        meta = reads.image_meta(con, ids)
    keys = np.array([s or c for s, c in zip(meta["synset"], meta["class_name"], strict=True)],
                    dtype=object)
    labelled = np.flatnonzero(keys != None)  # noqa: E711 - an object array's None
    sim = []
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            x, y = vecs[a], vecs[b]
            exact = (x.nbytes + y.nbytes) * 2 <= cfg.memory_bytes  # float64 copies, chunked
            cka = linear_cka(x, y) if exact else minibatch_cka(x, y, batch=cfg.batch,
                                                                 seed=cfg.seed)
            sim.append({"space_a": a, "space_b": b, "cka": cka,
                        "method": "exact" if exact else "minibatch", "n": len(ids),
                        "seed": cfg.seed})
            done += 1
            report(done, total, "CKA")
    sep = []
    for n in names:
        x, lab = vecs[n][labelled], keys[labelled]
        acc, asked = knn_accuracy(x, lab, k=cfg.k, queries=cfg.queries, seed=cfg.seed) \
            if len(labelled) >= 2 else (None, 0)
        try:
            ratio = same_over_different(x, lab, pairs=cfg.pairs, seed=cfg.seed)
        except UsageError:  # one class, or no class with two images: no ratio
            ratio = None
        sep.append({"space": n, "knn_accuracy": acc, "k": cfg.k, "queries": asked,
                    "same_over_different": ratio, "n": len(labelled), "seed": cfg.seed})
        done += 1
        report(done, total, "class separation")
    similarity = pd.DataFrame(sim, columns=["space_a", "space_b", "cka", "method", "n", "seed"])
    separation = pd.DataFrame(sep, columns=["space", "knn_accuracy", "k", "queries",
                                            "same_over_different", "n", "seed"])
    with StoreWriter(store.path) as w, w.connect() as con:
        writes.put_comparison(con, similarity, separation, asdict(cfg))
    return CompareResult(similarity, separation, round(time.perf_counter() - t0, 3))
