"""One entry point for every plot: the CLI's ``actdb plot KIND`` and ``POST /api/plot/KIND``
both call :func:`plot`.

>>> cfg = PlotConfig(classes=("sea_cucumber",))
>>> plot(db, "umap", ["node4.png"], "umap.png", cfg)          # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from actdb.errors import UsageError
from actdb.viz import figures
from actdb.viz.data import (
    METHODS,
    ProjectionConfig,
    SampleConfig,
    distance_data,
    map_data,
    profile_data,
)

KINDS = (*METHODS, "profile", "distances")


@dataclass(frozen=True)
class PlotConfig:
    """What a plot shows. ``per_class`` applies to maps; distances use every image."""

    classes: tuple[str, ...] | None = None
    random_classes: int = 0
    per_class: int = 100
    seed: int = 0
    log: bool = False
    bins: int = 40


@dataclass
class PlotResult:
    output: Path
    images: int  # stored images drawn
    coords: Path | None = None


def plot(db, kind: str, queries: list, output: str | Path, cfg: PlotConfig | None = None,
         save_coords: str | Path | None = None,
         stage: Callable[[str], None] | None = None) -> PlotResult:
    """Compute the data for ``kind`` and draw it to ``output`` (.png, .svg or .pdf)."""
    cfg = cfg or PlotConfig()
    if kind not in KINDS:
        raise UsageError(f"unknown plot {kind!r}; use one of {', '.join(KINDS)}")
    m = db.store.manifest
    output = Path(output)
    if kind in METHODS:
        sample = SampleConfig(cfg.classes, cfg.random_classes, cfg.per_class, cfg.seed)
        data = map_data(db, queries, sample, ProjectionConfig(kind, seed=cfg.seed), stage)
        figures.draw_map(data, m, output)
        if save_coords:
            data.save(save_coords)
        return PlotResult(output, int((data.coords.kind == "image").sum()),
                          Path(save_coords) if save_coords else None)
    if kind == "profile":
        df = profile_data(db, queries, cfg.classes)
        figures.draw_profile(df, m, output)
        return PlotResult(output, 0)
    sample = SampleConfig(cfg.classes, cfg.random_classes, None, cfg.seed)
    d = distance_data(db, queries, sample, bins=cfg.bins, log=cfg.log)
    figures.draw_distances(d, m, output, log=cfg.log)
    return PlotResult(output, int(d.counts.n.sum()))
