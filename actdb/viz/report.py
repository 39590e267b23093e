"""``actdb report``: one self-contained HTML file per question (images embedded as data:
URIs; no server, no network): the query image, its top-k neighbours as thumbnails with class
and distance, the class vote, the centroid ranking, t-SNE and UMAP maps and the distance
histograms.

>>> build_report(db, ["node4.png"], "report.html")        # doctest: +SKIP
"""

from __future__ import annotations

import base64
import html
import io
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from actdb.viz.plot import PlotConfig, plot

SECTIONS = ("queries", "neighbours", "votes", "centroids", "tsne", "umap", "distances")


@dataclass(frozen=True)
class ReportConfig:
    k: int = 12
    plot: PlotConfig = PlotConfig()
    thumb: int = 112


def _data_uri(data: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def _thumb(source, size: int) -> str:
    from PIL import Image

    try:
        im = Image.open(source)
        im.draft("RGB", (size * 2, size * 2))
        im = im.convert("RGB")
        im.thumbnail((size, size))
    except Exception:  # noqa: BLE001 - a missing or broken file shows as a blank tile
        im = Image.new("RGB", (size, size), (220, 220, 220))
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=85)
    return _data_uri(buf.getvalue(), "image/jpeg")


def _png(path: Path) -> str:
    return _data_uri(path.read_bytes(), "image/png")


def _table(rows: list[dict], cols: list[str]) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_fmt(r.get(c)))}</td>" for c in cols) + "</tr>"
        for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return "" if v is None else str(v)


CSS = """body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222}
h1{font-size:1.5em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;font-size:.9em}td,th{padding:.2em .6em;border-bottom:1px solid #eee;
text-align:left}.grid{display:flex;flex-wrap:wrap;gap:.6em}.tile{width:120px;font-size:.75em}
.tile img{width:112px;height:112px;object-fit:cover;display:block}img.plot{max-width:100%}
.q img{width:224px}"""


def build_report(db, queries: list, output: str | Path, cfg: ReportConfig | None = None,
                 stage: Callable[[str], None] | None = None) -> Path:
    """Write the report and return its path."""
    cfg = cfg or ReportConfig()
    say = stage or (lambda _: None)
    m = db.store.manifest
    qv = db.resolve(queries)
    say("nearest neighbours")
    near = db.nearest(qv, k=cfg.k).to_dict()
    cents = db.centroids(qv, k=10)
    parts = [f"<h1>actdb report: {html.escape(', '.join(q.name for q in qv))}</h1>",
             f"<p>{html.escape(m.model)} {html.escape(m.layer)}, {m.pool}-pooled, "
             f"{m.dim}-d; weights {html.escape(m.weights)}; store {html.escape(str(db.store.path))}"
             "</p>", '<section id="queries"><h2>Query images</h2><div class="grid q">']
    for q in qv:
        src = Path(q.source)
        img = _thumb(src, 224) if src.is_file() else ""
        parts.append(f'<div class="tile q"><img alt="{html.escape(q.name)}" src="{img}">'
                     f"{html.escape(q.name)}</div>")
    parts.append("</div></section>")
    parts.append('<section id="neighbours"><h2>Nearest stored images</h2>')
    for q in near["queries"]:
        c = q["context"]
        parts.append(f"<h3>{html.escape(q['query'])}</h3><p>nearest-neighbour distance "
                     f"{_fmt(c['nn_distance'])}" + (
                         f", farther than {c['nn_percentile']:.1f}% of stored images' nearest "
                         "neighbours" if c.get("nn_percentile") is not None else "") + "</p>")
        parts.append('<div class="grid">')
        for n in q["neighbors"]:
            thumb = _thumb(Path(n["root"]) / n["path"], cfg.thumb)
            parts.append(f'<div class="tile"><img alt="" src="{thumb}">#{n["rank"]} '
                         f'{html.escape(str(n["class_name"]))}<br>d={_fmt(n["distance"])}</div>')
        parts.append("</div>")
    parts.append("</section>")
    parts.append('<section id="votes"><h2>Class vote among the neighbours</h2>')
    for q in near["queries"]:
        parts.append(f"<h3>{html.escape(q['query'])}</h3>"
                     + _table(q["classes"], ["class_name", "synset", "count", "share"]))
    parts.append("</section>")
    parts.append('<section id="centroids"><h2>Nearest class centroids</h2>'
                 + _table(cents.to_dict("records"), ["query", "rank", "class_name", "distance",
                                                     "class_mean_dist", "class_p95_dist",
                                                     "inside"]) + "</section>")
    with tempfile.TemporaryDirectory() as tmp:
        for method in ("tsne", "umap"):
            say(f"{method} map")
            png = plot(db, method, qv, Path(tmp) / f"{method}.png", cfg.plot, stage=say).output
            parts.append(f'<section id="{method}"><h2>{method.upper()} map</h2>'
                         f'<img class="plot" alt="{method} map" src="{_png(png)}"></section>')
        say("distance histograms")
        png = plot(db, "distances", qv, Path(tmp) / "dist.png", replace(cfg.plot, log=True)).output
        parts.append('<section id="distances"><h2>Distance histograms</h2>'
                     f'<img class="plot" alt="distance histograms" src="{_png(png)}"></section>')
    page = ("<!doctype html><html lang=en><head><meta charset=utf-8>"
            f"<title>actdb report</title><style>{CSS}</style></head><body>"
            + "\n".join(parts) + "</body></html>\n")
    output = Path(output)
    output.write_text(page, encoding="utf-8")
    return output
