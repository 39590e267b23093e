import shutil
from html.parser import HTMLParser

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

import actdb
from actdb.cli import app
from tests.helpers import assert_no_cloud_controls, browser_page, needs_chromium

runner = CliRunner()


@pytest.mark.parametrize("ext", [".png", ".svg", ".pdf"])
def test_map_plot_writes_the_requested_format(built_store, tmp_path, ext):
    out = tmp_path / f"m{ext}"
    res = runner.invoke(app, ["plot", "pca", "--query", "id:0", "--classes", "tench",
                              "--random-classes", "1", "-o", str(out), "--store",
                              str(built_store), "--save-coords", str(tmp_path / "c.parquet")])
    assert res.exit_code == 0, res.output
    head = out.read_bytes()[:200]
    if ext == ".png":
        w, h = Image.open(out).size
        assert w > 600 and h > 400
    elif ext == ".svg":
        assert b"<svg" in out.read_bytes()[:2000]
    else:
        assert head.startswith(b"%PDF")
    assert (tmp_path / "c.parquet").exists()


def test_a_plot_asking_for_more_random_classes_than_exist_notes_it(built_store, tmp_path):
    res = runner.invoke(app, ["plot", "pca", "--random-classes", "10", "-o",
                              str(tmp_path / "m.png"), "--store", str(built_store)])
    assert res.exit_code == 0, res.output
    assert "note: --random-classes 10: the store has only 3 other classes" in res.stderr


@pytest.mark.slow
def test_profile_and_distance_plots(built_store, tmp_path):
    res = runner.invoke(app, ["plot", "profile", "id:0", "--classes", "tench,groenendael",
                              "-o", str(tmp_path / "p.png"), "--store", str(built_store)])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["plot", "distances", "id:0", "--classes", "sea_cucumber",
                              "--random-classes", "2", "--log", "-o", str(tmp_path / "d.png"),
                              "--store", str(built_store)])
    assert res.exit_code == 0, res.output
    assert Image.open(tmp_path / "d.png").format == "PNG"
    res = runner.invoke(app, ["plot", "umap", "--classes", "sea_cucumbr", "-o",
                              str(tmp_path / "u.png"), "--store", str(built_store)])
    assert res.exit_code == 1 and "did you mean sea_cucumber" in res.stderr
    res = runner.invoke(app, ["plot", "pca", "-o", str(tmp_path / "u.gif"), "--store",
                              str(built_store)])
    assert res.exit_code == 2 and ".png, .svg or .pdf" in res.stderr


def _tick_labels_overlap(fig) -> bool:
    """Whether two shown x tick labels (major or minor, inside the axis) overlap."""
    fig.canvas.draw()
    boxes = []
    for ax in fig.axes:
        lo, hi = ax.get_xlim()
        for minor in (False, True):
            locs = ax.xaxis.get_minorticklocs() if minor else ax.xaxis.get_majorticklocs()
            boxes += [t.get_window_extent() for loc, t in zip(
                locs, ax.xaxis.get_ticklabels(minor=minor), strict=False)
                if lo <= loc <= hi and t.get_visible() and t.get_text()]
    return any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1:])


@pytest.mark.parametrize("lo,hi", [(0.0021, 0.064), (0.03, 0.09), (0.1, 1.5)])
def test_log_distances_label_ticks_without_overlap(lo, hi):
    """Distances of real stores span one or two decades, where matplotlib's labels of minor
    ticks (2x10^-3, 3x10^-3, ...) run into each other."""
    import types

    import pandas as pd

    from actdb.viz.data import DistanceData
    from actdb.viz.figures import draw_distances

    edges = np.geomspace(lo, hi, 41)
    counts = pd.DataFrame([{"query": "q", "group": "tench", "n": 40, "counts": [1] * 40}])
    d = DistanceData(pd.DataFrame({"query": ["q"], "group": ["tench"], "image_id": [0],
                                   "distance": [lo * 2]}), edges, counts, pd.DataFrame())
    m = types.SimpleNamespace(model="vgg19", layer="block5_conv4", pool="mean", dim=512)
    fig = draw_distances(d, m, log=True)
    assert fig.axes[0].get_xscale() == "log" and not _tick_labels_overlap(fig)


def _colours(fig) -> dict:
    """Legend label (less its count and the 'query to' of histograms) -> face colour."""
    import re

    from matplotlib.colors import to_hex

    handles, labels = fig.axes[0].get_legend_handles_labels()
    out = {}
    for h, label in zip(handles, labels, strict=True):
        face = h.get_facecolor() if hasattr(h, "get_facecolor") else h.patches[0].get_facecolor()
        face = face[0] if np.ndim(face) == 2 else face
        out[re.sub(r"^query to | \(\d+\)$", "", label)] = to_hex(face, keep_alpha=False)
    return out


def test_a_class_has_one_colour_in_every_figure_of_the_same_groups(built_store):
    db = actdb.open(built_store)
    kw = dict(classes="tench,sea_cucumber", random_classes=1, seed=0)
    mapped = _colours(db.space().plot("pca", **kw))
    hist = _colours(db.space().plot("distances", ["id:0"], **kw))
    groups = {"tench", "sea_cucumber", "1 random class"}
    assert groups <= set(mapped) and groups <= set(hist)
    assert {g: mapped[g] for g in groups} == {g: hist[g] for g in groups}
    assert len({mapped[g] for g in groups}) == 3


class _Collect(HTMLParser):
    def __init__(self):
        super().__init__()
        self.ids, self.srcs = set(), []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if "id" in a:
            self.ids.add(a["id"])
        if tag in ("img", "script", "link") and (a.get("src") or a.get("href")):
            self.srcs.append(a.get("src") or a.get("href"))


@pytest.fixture
def own_store(built_store, tmp_path):
    """A copy of the shared store, for a test that writes to it (a report caches its queries
    and keeps its maps): the shared one stays as every other test expects it."""
    copy = tmp_path / "store"
    shutil.copytree(built_store, copy)
    return copy


@pytest.mark.slow
def test_report_is_self_contained_and_has_every_section(own_store, tmp_path):
    from actdb.viz.report import SECTIONS
    from tests.helpers import class_image

    class_image(1, 50).save(tmp_path / "node4.png")
    out = tmp_path / "r.html"
    res = runner.invoke(app, ["report", str(tmp_path / "node4.png"), "id:3", "-o", str(out),
                              "-k", "4", "--store", str(own_store)])
    assert res.exit_code == 0, res.output
    p = _Collect()
    p.feed(out.read_text())
    assert set(SECTIONS) <= p.ids
    assert p.srcs and all(s.startswith("data:image/") for s in p.srcs)  # no network, no files
    text = out.read_text()
    assert "node4" in text and "id:3" in text
    _check_map_colours(text, own_store)


def _check_map_colours(html: str, store) -> None:
    """The embedded map payload colours what map.js will colour: the query's top classes
    (vote first), each point by its own class."""
    import base64
    import json
    import re

    import numpy as np

    d = json.loads(re.search(r'<script type="application/json" id="map-data">(.*?)</script>',
                             html, re.S).group(1).replace("<\\/", "</"))
    assert len(d["classes"]) == len(set(d["classes"]))
    raw = base64.b64decode(d["data"])
    col = {f["name"]: np.frombuffer(raw, f["dtype"], d["n"], f["offset"]) for f in d["layout"]}
    codes = []  # map.js's highlighted(): the top classes' codes, top-N of them
    for name in d["top"]:
        if name in d["classes"] and d["classes"].index(name) not in codes:
            codes.append(d["classes"].index(name))
    codes = codes[:10]
    meta = actdb.open(store).images().set_index("image_id").class_name
    names = meta.loc[col["image_id"].astype(np.int64)].to_numpy()
    for c in codes:  # every highlighted point has its own class's colour
        assert (names[col["class"] == c] == d["classes"][c]).all()
    first = d["top"][0]  # the class with the vote is drawn in colour, every point of it
    assert d["classes"].index(first) in codes
    assert (col["class"][names == first] == d["classes"].index(first)).all()


@needs_chromium
@pytest.mark.slow
def test_the_report_map_draws_offline_with_the_query_placed(own_store, tmp_path):
    out = tmp_path / "r.html"
    actdb.open(own_store).space().report(out, ["id:3"], k=4)
    with browser_page() as page:  # no network at all: every request but file: fails it
        page.goto(out.as_uri())
        page.wait_for_selector("#actdb-map .main-svg")
        assert_no_cloud_controls(page)
        names = page.evaluate("document.getElementById('actdb-map').data.map((t) => t.name)")
        assert names[-1] == "query" and len(names) >= 2


def test_points_payload_names_each_class_once_whatever_comes_first():
    import pandas as pd

    from actdb.viz.interactive import encode_points

    pts = pd.DataFrame({"image_id": [0, 1, 2, 3, 4], "x": [0.0] * 5, "y": [0.0] * 5,
                        "class_name": ["a", "b", "b", "c", None]})
    data, meta = encode_points(pts, ["c", "a", "c", "zzz", "a"])  # vote + centroids overlap
    assert meta["classes"] == ["c", "a", "b"]
    off = {f["name"]: f["offset"] for f in meta["layout"]}
    codes = np.frombuffer(data, np.int32, 5, off["class"])
    assert [meta["classes"][c] if c >= 0 else None for c in codes] == ["a", "b", "b", "c", None]
