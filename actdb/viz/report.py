"""``report``: one self-contained HTML file per question (images embedded as data: URIs; no
server, no network): the query images, their top-k neighbours as thumbnails with class and
distance, the class vote, the centroid ranking, t-SNE and UMAP maps and the distance
histograms. Rendered from Jinja2 templates (autoescaped), shared with the atlas site.

Most callers use ``actdb.open(store).report("report.html", queries)``, which computes
``near`` and ``cents`` and calls :func:`build_report`.
"""

from __future__ import annotations

import base64
import functools
import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from actdb.options import PlotConfig, ReportConfig
from actdb.viz import figures
from actdb.viz.plot import plot
from actdb.viz.thumbs import data_uri, thumbnail

#: The report's sections, by their anchor (``report.html#umap``); a store of several spaces
#: adds ``spaces`` (each query in every space) and, once compared, ``cka``.
SECTIONS = ("queries", "neighbours", "votes", "centroids", "map", "tsne", "umap", "distances")


def _num(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return "" if v is None else str(v)


@functools.cache
def templates():
    """The Jinja2 environment of actdb's HTML pages (autoescaped)."""
    from jinja2 import Environment, PackageLoader, select_autoescape

    env = Environment(loader=PackageLoader("actdb.viz", "templates"),
                      autoescape=select_autoescape(["html", "j2"]))
    env.filters["num"] = _num
    return env


def interactive_map(store, queries: list, answers: list, cents, pcfg: PlotConfig) -> dict:
    """The report's interactive map: the stored map (``auto``: t-SNE or UMAP by its size) of
    the report's sample with the queries placed, plotly.js and map.js inlined (the file
    stays self-contained)."""
    from actdb.viz.interactive import embedded_points, map_js, plotly_js
    from actdb.viz.maps import MapSpec, Placement, get_map

    m = get_map(store, MapSpec.of("auto", pcfg.per_class, pcfg.classes, pcfg.random_classes,
                                  pcfg.seed))
    placed = Placement.of(m, queries, distances=True)
    top = [c["class_name"] for c in answers[0]["classes"]] + [
        c for c in cents[cents["query"] == answers[0]["query"]].class_name]
    payload = json.loads(embedded_points(m.points, top))
    payload.update(method=m.method, map_id=m.map_id, queries=placed.coords.to_dict("records"),
                   top=top,
                   distances=base64.b64encode(placed.distances[0].astype("float32")).decode())
    return {"plotly": plotly_js().read_text(encoding="utf-8"),
            "script": map_js().read_text(encoding="utf-8"),
            "data": json.dumps(payload).replace("</", "<\\/")}


def build_report(store, queries: list, near, cents, output: str | Path,
                 cfg: ReportConfig | None = None,
                 progress: Callable[[str], None] | None = None, across=None) -> Path:
    """Write the report for resolved ``queries`` with their ``near`` (NearestResult) and
    ``cents`` (centroid ranking) answers, and ``across`` (each query in every space, a
    DataFrame; None: one space); returns its path."""
    from actdb.errors import QueryError

    cfg = cfg or ReportConfig()
    say = progress or (lambda _: None)
    output = Path(output)
    answers = near.to_dict()["queries"]
    for a in answers:
        for n in a["neighbors"]:
            n["thumb"] = data_uri(thumbnail(Path(n["root"]) / n["path"], cfg.thumb),
                                  "image/jpeg")
    qs = [{"name": q.name, "thumb": data_uri(thumbnail(q.source, 224), "image/jpeg")
           if Path(q.source).is_file() else ""} for q in queries]
    plots = []
    for kind, title, pcfg in (("tsne", "t-SNE map", cfg), ("umap", "UMAP map", cfg),
                              ("distances", "Distance histograms", replace(cfg, log=True))):
        say(f"{title}")
        fig = plot(store, kind, queries, pcfg, progress=say)
        plots.append({"id": kind, "title": title,
                      "src": data_uri(figures.png_bytes(fig), "image/png")})
    if across is not None:
        try:
            fig = plot(store, "cka", [])
        except QueryError:  # the spaces were never compared
            fig = None
        if fig is not None:
            plots.append({"id": "cka", "title": "Linear CKA between spaces (actdb compare)",
                          "src": data_uri(figures.png_bytes(fig), "image/png")})
    say("interactive map")
    page = templates().get_template("report.html.j2").render(
        names=", ".join(q.name for q in queries), m=store.manifest, store=store.path,
        queries=qs, answers=answers, centroids=cents.to_dict("records"), plots=plots,
        across=None if across is None else across.to_dict("records"),
        interactive=interactive_map(store, queries, answers, cents, cfg))
    output.write_text(page, encoding="utf-8")
    return output
