"""2-D projections that are fitted once and then place new vectors: UMAP, t-SNE (openTSNE)
and PCA, each after a PCA to ``pca_dims`` (faster, same picture).

openTSNE replaced scikit-learn's t-SNE: it measured 1.5-2.9x faster at equal quality here, and
it can place new points into a finished embedding (``transform``), which scikit-learn's cannot.

>>> import numpy as np
>>> x = np.random.default_rng(0).normal(size=(40, 8))
>>> p = Projector(ProjectionConfig(method="pca"))
>>> p.fit(x).shape, p.transform(x[:2]).shape
((40, 2), (2, 2))
"""

from __future__ import annotations

import pickle
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from actdb import heavy
from actdb.errors import UsageError
from actdb.store.catalog.files import atomic_write

METHODS = ("tsne", "umap", "pca")
#: A map's method chosen by its size (:func:`auto_method`).
AUTO = "auto"
#: From this many points ``auto`` takes UMAP, below it openTSNE's t-SNE: every new process
#: compiles UMAP's numba code again (umap-learn caches none of it) and its import brings
#: TensorFlow, which a small map's t-SNE never waits for; at this size the two cost about the
#: same, and beyond it UMAP is the faster (bench/viz.py, figures in bench/RESULTS.md).
AUTO_UMAP_FROM = 20_000


def auto_method(points: int) -> str:
    """The projection ``auto`` means for a map of this many points.

    >>> auto_method(99), auto_method(50_000)
    ('tsne', 'umap')
    """
    return "umap" if points >= AUTO_UMAP_FROM else "tsne"
Stage = Callable[[str], None]


@dataclass(frozen=True, kw_only=True)
class ProjectionConfig:
    """How vectors become 2-D coordinates."""

    method: str = "tsne"
    seed: int = 0
    pca_dims: int = 50
    perplexity: float = 30.0
    n_neighbors: int = 15
    min_dist: float = 0.1

    def __post_init__(self):
        if self.method not in (*METHODS, AUTO):  # auto: resolved before a fit (MapSpec)
            raise UsageError(f"unknown projection {self.method!r}; use one of "
                             f"{', '.join(METHODS)} or {AUTO}")


class Projector:
    """A projection fitted on a sample; ``transform`` places new vectors without refitting."""

    def __init__(self, cfg: ProjectionConfig):
        self.cfg = cfg
        self.pca = None  # the reduction to pca_dims before UMAP / t-SNE
        self.model = None
        self.dim = 0

    def fit(self, x: np.ndarray, stage: Stage | None = None) -> np.ndarray:
        """Fit on the rows of ``x``; returns their coordinates (n, 2)."""
        from sklearn.decomposition import PCA

        say = stage or (lambda _: None)
        cfg = self.cfg
        x = np.asarray(x, np.float64)
        if len(x) < 3:
            raise UsageError(f"a map needs at least 3 images, not {len(x)}")
        self.dim = x.shape[1]
        if cfg.method == "pca":
            self.model = PCA(2, random_state=cfg.seed).fit(x)
            return self.model.transform(x)
        dims = min(cfg.pca_dims, x.shape[1], len(x))
        if dims < x.shape[1]:
            say(f"PCA {x.shape[1]} -> {dims} dims")
            self.pca = PCA(dims, random_state=cfg.seed).fit(x)
            x = self.pca.transform(x)
        if cfg.method == "umap":
            say(f"UMAP on {len(x)} points")
            self.model = heavy.umap().UMAP(
                n_components=2, n_neighbors=min(cfg.n_neighbors, len(x) - 1),
                min_dist=cfg.min_dist, random_state=cfg.seed, n_jobs=1)  # seeded: 1 job
            return np.asarray(self.model.fit_transform(x), np.float64)
        say(f"t-SNE (openTSNE) on {len(x)} points")
        from openTSNE import TSNE

        emb = TSNE(2, perplexity=min(cfg.perplexity, max(1.0, (len(x) - 1) / 3)),
                   initialization="pca", random_state=cfg.seed, n_jobs=-1,
                   verbose=False).fit(x)
        emb.affinities.P = None  # only the neighbour index is needed to place new points
        self.model = emb
        return np.asarray(emb, np.float64)

    def transform(self, q: np.ndarray) -> np.ndarray:
        """Coordinates (m, 2) of new vectors in the fitted map."""
        if self.model is None:
            raise UsageError("the projection is not fitted yet")
        q = np.asarray(q, np.float64).reshape(-1, self.dim)
        if not len(q):
            return np.zeros((0, 2))
        if self.pca is not None:
            q = self.pca.transform(q)
        if self.cfg.method == "tsne":
            return place_tsne(self.model, q)
        return np.asarray(self.model.transform(q), np.float64)

    def save(self, path: str | Path) -> None:
        """Pickle to ``path`` (atomically)."""
        def write(tmp: Path) -> None:
            with open(tmp, "wb") as f:
                pickle.dump(self.cfg.method, f)  # read first: load imports UMAP through heavy
                pickle.dump(self, f, protocol=pickle.HIGHEST_PROTOCOL)

        Path(path).parent.mkdir(parents=True, exist_ok=True)
        atomic_write(Path(path), write)

    @staticmethod
    def load(path: str | Path) -> Projector:
        """A projector saved by :meth:`save` (a store's own file: pickles run code, so never
        load one from a source you do not trust)."""
        with open(path, "rb") as f:
            if pickle.load(f) == "umap":
                heavy.umap()  # quietly, when the application asked for quiet imports
            return pickle.load(f)


def place_tsne(emb, q: np.ndarray, steps: int = 100, learning_rate: float = 2.0,
               exaggeration: float = 1.5) -> np.ndarray:
    """New points placed into a finished openTSNE embedding, each against the fixed map.

    openTSNE's own ``transform`` optimises with a general gradient that rebuilds a tree of the
    whole map every step (seconds a query on a large map). With the map fixed, one
    point's exact t-SNE gradient is a sum over the map's points, cheap in numpy: the same
    affinities (``to_new``), start (the median of the 25 nearest points), exaggeration (1.5),
    momentum (0.8) and gradient clipping (0.25) as openTSNE's ``transform``; 100 steps land
    within 1% of the map's scale of where openTSNE's 250 put the point, far faster (bench/viz.py
    times both).
    """
    import inspect

    y_map = np.asarray(emb, np.float64)
    kw = {"perplexity": 5} if "perplexity" in inspect.signature(
        emb.affinities.to_new).parameters else {}
    p, neighbours, _ = emb.affinities.to_new(q, return_distances=True, **kw)
    p = p.tocsr()
    out = np.empty((len(q), 2))
    for r in range(len(q)):
        lo, hi = p.indptr[r], p.indptr[r + 1]
        idx, pr = p.indices[lo:hi], p.data[lo:hi] / max(p.data[lo:hi].sum(), 1e-12)
        y = np.median(y_map[neighbours[r, :25]], axis=0)
        update = np.zeros(2)
        for _ in range(steps):
            d = y - y_map
            w = 1.0 / (1.0 + np.einsum("ij,ij->i", d, d))  # Student-t similarities
            coef = -(w / w.sum()) * w  # repulsion: q_j w_j
            coef[idx] += exaggeration * pr * w[idx]  # attraction: p_j w_j
            grad = 4.0 * (coef[:, None] * d).sum(axis=0)
            norm = np.linalg.norm(grad)
            if norm > 0.25:
                grad *= 0.25 / norm
            update = 0.8 * update - learning_rate * grad
            y = y + update
        out[r] = y
    return out
