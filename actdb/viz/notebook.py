"""Results as HTML, for notebooks (``_repr_html_``): a nearest result as its query, the class
vote and a grid of neighbour thumbnails; centroids against each class's p95 radius; a
comparison as its CKA heatmap; a channel's examples; a check report; a dream.

Thumbnails are the store's own (:func:`actdb.viz.report.thumbnail`), inline as data: URIs and
small (a nearest result at k=50 stays under 300 KB); every name and path goes through Jinja2's
autoescape, so a class or file named ``<script>`` shows as text. Text reprs stay as they are
for terminals.

>>> html = check_html(type("R", (), {"store": "<s>", "ok": False, "images": 3, "vectors": 2,
...     "shards": 1, "index_ids": None, "problems": ["<b>1 image</b> without a vector"],
...     "notes": [], "repaired": []})())
>>> "&lt;b&gt;1 image&lt;/b&gt;" in html and "<b>1 image" not in html
True
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from actdb.viz.report import templates
from actdb.viz.thumbs import data_uri, stored_file, thumbnails

#: Thumbnails' size a side, in px: a neighbour's, a query's (or a dream's).
THUMB, QUERY_THUMB = 72, 128
#: Classes of the vote shown as bars (the rest are in ``result.classes``).
VOTES = 8


def thumbs(files: list[Path | str | None], size: int) -> list[str]:
    """data: URIs of JPEG thumbnails (grey tiles where a file is missing or broken)."""
    paths = [Path(f) if f is not None and Path(f).is_file() else None for f in files]
    return [data_uri(b, "image/jpeg") for b in thumbnails(paths, size)]


def _macro(name: str, **values) -> str:
    return str(getattr(templates().get_template("notebook.html.j2").module, name)(**values))


def nearest_html(result) -> str:
    """A :class:`~actdb.query.nearest.NearestResult`: per query its thumbnail, the context
    line, the class vote as bars and the neighbours' thumbnails with class and distance."""
    answers = []
    for a in result.answers:
        rows = a.neighbor_rows()
        uris = thumbs([stored_file(r["root"], r["path"]) for r in rows], THUMB)
        query = thumbs([a.picture], QUERY_THUMB)[0] if a.picture else None
        for r, uri in zip(rows, uris, strict=True):
            r["thumb"] = uri
        answers.append({"name": a.query.name, "source": a.query.source, "thumb": query,
                        "context": a.context, "votes": a.vote()[:VOTES], "neighbors": rows})
    return _macro("nearest", answers=answers, k=result.k, metric=result.metric)


def centroids_html(frame: pd.DataFrame) -> str:
    """Centroids: per query, each class's distance against its p95 radius."""
    queries = {}
    for r in frame.to_dict("records"):
        ratio = r.get("ratio_to_p95")
        r["bar"] = 0 if ratio is None or not math.isfinite(ratio) else min(ratio, 2.0) * 50
        label = f'{r["query"]} in {r["space"]}' if "space" in r else r["query"]
        queries.setdefault(label, []).append(r)
    return _macro("centroids", queries=queries)


def compare_html(result) -> str:
    """A comparison: the CKA of every pair of spaces as a heatmap, then class separation."""
    sim = result.similarity
    names = list(dict.fromkeys([*sim.space_a, *sim.space_b]))
    cka = {(n, n): 1.0 for n in names}
    for r in sim.itertuples():
        cka[r.space_a, r.space_b] = cka[r.space_b, r.space_a] = float(r.cka)
    grid = [[cka.get((a, b)) for b in names] for a in names]
    return _macro("compare", names=names, grid=grid,
                  separation=result.separation.to_dict("records"),
                  sep_cols=list(result.separation.columns))


def examples_html(result) -> str:
    """A channel's examples: the top images' thumbnails with value and class."""
    top = result.top.to_dict("records")
    for r, uri in zip(top, thumbs(result.files, THUMB), strict=False):
        r["thumb"] = uri
    return _macro("examples", r=result, top=top,
                  classes=result.classes.to_dict("records"),
                  queries=result.queries.to_dict("records"))


def check_html(report) -> str:
    """A check report: consistent or its problems, notes and repairs."""
    return _macro("check", r=report)


def dream_html(result) -> str:
    """A dream: the image and how the objective rose."""
    return _macro("dream", r=result, thumb=thumbs([result.image], 224)[0])


def frame_html(frame: pd.DataFrame, caption: str) -> str:
    """Any other table of results, escaped, with a caption."""
    return _macro("frame", caption=caption, cols=list(frame.columns),
                  rows=frame.to_dict("records"))


class _Shown(pd.DataFrame):
    """A DataFrame that shows itself as actdb draws it; everything derived from it is a
    plain DataFrame again (``_constructor``)."""

    @property
    def _constructor(self):
        return pd.DataFrame


class Centroids(_Shown):
    """:meth:`Space.centroids`' DataFrame, drawn as distances against each class's p95."""

    def _repr_html_(self) -> str:
        return centroids_html(self)


class Spaces(_Shown):
    """:meth:`Database.spaces`' DataFrame."""

    def _repr_html_(self) -> str:
        return frame_html(self, "spaces of this store (the default first)")


class Across(_Shown):
    """:meth:`Database.across_spaces`' DataFrame: each query in every space."""

    def _repr_html_(self) -> str:
        return frame_html(self, "each query in every space")
