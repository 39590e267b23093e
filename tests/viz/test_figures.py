from html.parser import HTMLParser

import pytest
from PIL import Image
from typer.testing import CliRunner

import actdb
from actdb.cli import app
from tests.helpers import browser_page, needs_chromium

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


@pytest.mark.slow
def test_report_is_self_contained_and_has_every_section(built_store, tmp_path):
    from actdb.viz.report import SECTIONS
    from tests.helpers import class_image

    class_image(1, 50).save(tmp_path / "node4.png")
    out = tmp_path / "r.html"
    res = runner.invoke(app, ["report", str(tmp_path / "node4.png"), "id:3", "-o", str(out),
                              "-k", "4", "--store", str(built_store)])
    assert res.exit_code == 0, res.output
    p = _Collect()
    p.feed(out.read_text())
    assert set(SECTIONS) <= p.ids
    assert p.srcs and all(s.startswith("data:image/") for s in p.srcs)  # no network, no files
    text = out.read_text()
    assert "node4" in text and "id:3" in text


@needs_chromium
@pytest.mark.slow
def test_the_report_map_draws_offline_with_the_query_placed(built_store, tmp_path):
    out = tmp_path / "r.html"
    actdb.open(built_store).report(out, ["id:3"], k=4)
    with browser_page() as page:
        page.route("**/*", lambda route: route.abort() if not route.request.url.startswith(
            "file:") else route.continue_())  # no network at all
        page.goto(out.as_uri())
        page.wait_for_selector("#actdb-map .main-svg")
        names = page.evaluate("document.getElementById('actdb-map').data.map((t) => t.name)")
        assert names[-1] == "query" and len(names) >= 2
