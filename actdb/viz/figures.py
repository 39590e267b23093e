"""Matplotlib figures drawn from :mod:`actdb.viz.data`. Format follows the output's
extension (PNG, SVG, PDF) when saved. Each ``draw_*`` returns a matplotlib Figure that
belongs to no pyplot state (nothing global is touched). Colours: the Okabe-Ito
colour-blind-safe palette, with marker shapes to tell more than eight groups apart, given to
the groups in one order (classes by name, the random classes last), so a class has the same
colour in every figure that shows the same groups; queries are large labelled stars on top.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from actdb.errors import UsageError
from actdb.viz.data import DistanceData, is_random_group
from actdb.viz.maps import MapData

OKABE_ITO = ["#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7",
             "#999999"]
MARKERS = ["o", "s", "^", "D", "v", "P", "X", "<", ">"]
FORMATS = (".png", ".svg", ".pdf")
LABELS = {"tsne": "t-SNE", "umap": "UMAP", "pca": "PCA"}


@functools.cache
def _shown_figure():
    from matplotlib.figure import Figure

    class ShownFigure(Figure):
        """A Figure that shows itself in a notebook (as PNG), with no pyplot backend."""

        def _repr_png_(self) -> bytes:
            return png_bytes(self)

    return ShownFigure


def _figure(figsize, rows: int = 1):
    """A Figure and its axes, outside pyplot (no global backend or figure registry)."""
    fig = _shown_figure()(figsize=figsize)
    axes = fig.subplots(rows, 1, squeeze=False)
    return fig, axes[:, 0]


def _style(i: int) -> tuple[str, str]:
    return OKABE_ITO[i % len(OKABE_ITO)], MARKERS[(i // len(OKABE_ITO)) % len(MARKERS)]


def styles(groups) -> dict[str, tuple[str, str]]:
    """Colour and marker of each group: classes by name, then the "N random classes" group.

    >>> s = styles(["tench", "3 random classes", "goldfish"])
    >>> s["goldfish"] == _style(0) and s["tench"] == _style(1), s["3 random classes"] == _style(2)
    (True, True)
    """
    def order(g: str):
        return (is_random_group(g), g.lower(), g)

    return {g: _style(i) for i, g in enumerate(sorted(set(groups), key=order))}


def check_format(output: str | Path) -> Path:
    output = Path(output)
    if output.suffix.lower() not in FORMATS:
        raise UsageError(f"cannot write {output.suffix or 'a file without extension'}: "
                         "use .png, .svg or .pdf")
    return output


def save(fig, output: str | Path) -> Path:
    """Write ``fig`` in the format its name asks for."""
    output = check_format(output)
    fig.savefig(output, dpi=150, bbox_inches="tight")
    return output


def png_bytes(fig) -> bytes:
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=150, bbox_inches="tight")
    return buf.getvalue()


def _title(manifest, what: str) -> str:
    return f"{what}: {manifest.model} {manifest.layer}, {manifest.pool}-pooled ({manifest.dim}-d)"


def draw_map(m: MapData, manifest):
    fig, (ax,) = _figure((8, 6.5))
    img = m.coords[m.coords.kind == "image"]
    style = styles(img.group)
    for g in style:
        part = img[img.group == g]
        color, marker = style[g]
        ax.scatter(part.x, part.y, s=14, c=color, marker=marker, alpha=0.75, linewidths=0,
                   label=f"{g} ({len(part)})")
    for q in m.coords[m.coords.kind == "query"].itertuples():
        ax.scatter([q.x], [q.y], s=320, marker="*", c="black", edgecolors="white",
                   linewidths=1.2, zorder=5, label=f"query: {q.name}")
        ax.annotate(q.name, (q.x, q.y), xytext=(8, 8), textcoords="offset points",
                    fontsize=10, weight="bold", zorder=6)
    name = LABELS[m.method]
    ax.set_xlabel(f"{name} 1")
    ax.set_ylabel(f"{name} 2")
    ax.set_title(_title(manifest, name))
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=8, frameon=False,
              markerscale=1.2)
    return fig


def draw_profile(df, manifest):
    fig, (ax,) = _figure((10, 4.5))
    groups = list(df.groupby("series", sort=False))
    classes = [(s, p) for s, p in groups if p.kind.iloc[0] == "class"]
    queries = [(s, p) for s, p in groups if p.kind.iloc[0] == "query"]
    style = styles(p.group.iloc[0] for _, p in classes)
    for series, part in classes:  # class means underneath, queries on top
        ax.plot(part.channel, part.value, color=style[part.group.iloc[0]][0], lw=1.2,
                alpha=0.7, label=series)
    for i, (series, part) in enumerate(queries):
        ax.plot(part.channel, part.value, color="black" if i == 0 else _style(len(classes) + i)[0],
                lw=1.0, zorder=3, label=f"query: {series}")
    ax.set_xlabel("channel")
    ax.set_ylabel("pooled activation")
    ax.set_title(_title(manifest, "Activation profile"))
    ax.legend(fontsize=8, frameon=False)
    return fig


def draw_cka(names: list[str], m: np.ndarray):
    """A heatmap of linear CKA between spaces (in depth order), each cell labelled."""
    side = 2.5 + 0.7 * len(names)
    fig, (ax,) = _figure((side + 1.5, side))
    im = ax.imshow(m, vmin=0, vmax=1, cmap="viridis")
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(names)), names, fontsize=8)
    for i in range(len(names)):
        for j in range(len(names)):
            ax.text(j, i, f"{m[i, j]:.2f}", ha="center", va="center", fontsize=8,
                    color="black" if m[i, j] > 0.6 else "white")
    fig.colorbar(im, ax=ax, label="linear CKA")
    ax.set_title("Linear CKA between spaces")
    fig.tight_layout()
    return fig


def _log_axis(axis) -> None:
    """A log scale labelled at 1, 2 and 5 of each decade, minor ticks unlabelled: distances
    span less than a decade, where matplotlib's own labels of minor ticks overlap."""
    from matplotlib.ticker import FormatStrFormatter, LogLocator, NullFormatter

    axis.axes.set_xscale("log")
    axis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(FormatStrFormatter("%g"))
    axis.set_minor_formatter(NullFormatter())


def draw_distances(d: DistanceData, manifest, log: bool = False):
    queries = list(dict.fromkeys(d.distances["query"]))
    fig, axes = _figure((9, 4.4 * len(queries)), rows=len(queries))
    centres = (d.bins[:-1] + d.bins[1:]) / 2
    widths = np.diff(d.bins)
    for ax, qname in zip(axes, queries, strict=True):
        rows = d.counts[d.counts["query"] == qname]
        style = styles(rows.group)
        for r in rows.itertuples():
            color, _ = style[r.group]
            ax.bar(centres, r.counts, width=widths, color=color, alpha=0.55,
                   label=f"query to {r.group} ({r.n})")
        top = ax.get_ylim()[1]
        for j, p in enumerate(d.pair_stats.itertuples() if not d.pair_stats.empty else []):
            y = top * (1.04 + 0.07 * j)
            ax.plot([p.p05, p.p95], [y, y], color="0.25", lw=2)
            ax.plot([p.p50], [y], marker="|", color="0.25", ms=10)
            ax.annotate(f"{p.kind.replace('_', ' ')} pairs", (p.p95, y), xytext=(4, -3),
                        textcoords="offset points", fontsize=7)
        if log:
            _log_axis(ax.xaxis)
        ax.set_xlabel("L2 distance" + (" (log)" if log else ""))
        ax.set_ylabel("images")
        ax.set_title(_title(manifest, f"Distances from {qname}"), fontsize=10)
        ax.legend(fontsize=8, frameon=False, loc="upper center", ncol=3,
                  bbox_to_anchor=(0.5, -0.2))
    fig.text(0.99, 0.005, "bars above: p05-p95 (tick: median) of stored pair distances",
             ha="right", fontsize=7, color="0.3")
    return fig
