"""One entry point for every plot (``db.plot``, ``actdb plot KIND``, ``POST /api/plot/KIND``).
Maps (``tsne``, ``umap``, ``pca``) reuse the stored map of the same sample and projection
(made and stored on first use) and place the queries into it.

>>> from actdb.store.store import Store
>>> fig = plot(Store.open(store), "pca", [], PlotConfig(classes=("tench",)))
>>> fig.axes[0].get_title()
'PCA: vgg19 block5_conv4, mean-pooled (512-d)'
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from actdb.errors import QueryError, UsageError
from actdb.options import PlotConfig
from actdb.viz import figures
from actdb.viz.data import SampleConfig, distance_data, profile_data
from actdb.viz.maps import MapSpec, map_data
from actdb.viz.projection import METHODS

KINDS = (*METHODS, "profile", "distances", "cka")


def cka_matrix(store) -> tuple[list[str], np.ndarray]:
    """The last ``compare``'s CKA of every pair of spaces as a matrix (1 on the diagonal),
    the spaces in depth order; QueryError before a comparison."""
    from actdb.similarity import depth_order
    from actdb.store.catalog import derived, reads

    with store.reader() as con:
        sim, _ = derived.comparison(con)
        rows = reads.spaces(con)
    names = [n for n in depth_order([(r.model, r.layer) for r in rows])
             if n in set(sim.space_a) | set(sim.space_b)]
    if len(rows) < 2:
        from actdb.similarity import one_space

        raise QueryError(one_space(rows[0].name))
    if sim.empty:
        raise QueryError("no comparison of spaces yet: run `actdb compare` (it needs two "
                         "spaces or more)")
    at = {n: i for i, n in enumerate(names)}
    m = np.eye(len(names))
    for r in sim.itertuples():
        m[at[r.space_a], at[r.space_b]] = m[at[r.space_b], at[r.space_a]] = r.cka
    return names, m


def plot(store, kind: str, queries: list, cfg: PlotConfig | None = None,
         output: str | Path | None = None, save_coords: str | Path | None = None,
         progress: Callable[[str], None] | None = None):
    """Compute the data for ``kind`` and draw it; returns the matplotlib Figure, written to
    ``output`` (.png, .svg or .pdf) when given. ``queries`` are resolved QueryVectors."""
    cfg = cfg or PlotConfig()
    if kind not in KINDS:
        raise UsageError(f"unknown plot {kind!r}; use one of {', '.join(KINDS)}")
    if output is not None:
        figures.check_format(output)  # before minutes of t-SNE, not after
    m = store.manifest
    if kind in METHODS:
        spec = MapSpec.of(kind, cfg.per_class, cfg.classes, cfg.random_classes, cfg.seed)
        data = map_data(store, queries, spec, progress)  # a stored map when one matches
        fig = figures.draw_map(data, m)
        if save_coords:
            data.save(save_coords)
    elif kind == "profile":
        fig = figures.draw_profile(profile_data(store, queries, cfg.classes), m)
    elif kind == "cka":
        fig = figures.draw_cka(*cka_matrix(store))
    else:
        sample = SampleConfig(classes=cfg.classes, random_classes=cfg.random_classes,
                              per_class=None, seed=cfg.seed)
        d = distance_data(store, queries, sample, bins=cfg.bins, log=cfg.log)
        fig = figures.draw_distances(d, m, log=cfg.log)
    if output is not None:
        figures.save(fig, output)
    return fig
