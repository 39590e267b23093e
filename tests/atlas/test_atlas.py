"""The channel atlas: its table against the single commands, resumption, the site, serving."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

import actdb
from actdb.models.predict import PredictConfig, predict
from actdb.serve.app import ServeConfig, create_app
from tests.helpers import browser_page, needs_chromium

pytestmark = pytest.mark.slow  # feature visualisations, classifiers and a browser
SETTINGS = dict(steps=3, batch=2, k=4, examples=3, models=("mobilenet",))  # size: the store's


@pytest.fixture(scope="module")
def atlas_db(built_store, tmp_path_factory):
    store = tmp_path_factory.mktemp("atlas") / "store"
    shutil.copytree(built_store, store)
    db = actdb.open(store)
    db.space().atlas("3-5", **{**SETTINGS, "models": ("vgg19", "mobilenet")})  # the own first
    return db


def test_the_table_agrees_with_predict_nearest_centroids_and_examples(atlas_db):
    db = atlas_db
    rows = db.channels()
    assert sorted(rows.channel) == [3, 4, 5] and not rows.variant.any()
    assert set(rows["size"]) == {db.space().manifest.image_size} == {32}  # the store's own size
    ids, vecs = db.space().vectors()
    images = db.images().set_index("image_id").loc[ids]
    for r in rows.itertuples():
        picture = db.path / "atlas" / r.picture
        pred = predict([picture], PredictConfig(models=("vgg19",), default_weights="random:0"))
        assert r.predicted_vgg19 == pred[0]["top"][0]["class_name"] == r.predicted_class
        near = db.space().nearest(str(picture), k=4)
        assert [n["image_id"] for n in r.neighbours] == \
            near.neighbors.image_id.tolist()
        assert r.vote_class == near.classes.class_name.iloc[0]
        cent = db.space().centroids(str(picture), k=1)
        assert r.nearest_centroid_class == cent.class_name.iloc[0]
        ex = r.examples
        assert ex["top"] == db.space().examples(r.channel, k=3).top.image_id.tolist()
        means = images.assign(v=vecs[:, r.channel]).groupby("class_name").v.mean()
        assert r.top_activation_class == means.idxmax()  # numpy's own class means
        assert r.agree_all == (r.predicted_key == r.nearest_centroid_key
                               == r.top_activation_key)
        side = json.loads(picture.with_suffix(".json").read_text())
        assert side["config"]["channel"] == r.channel
        assert side["final_activation_of_saved_image"] == pytest.approx(r.objective_value)


def test_a_stopped_atlas_continues_and_makes_each_channel_once(built_store, tmp_path):
    shutil.copytree(built_store, tmp_path / "store")
    db = actdb.open(tmp_path / "store")

    class Stop(Exception):
        pass

    def stop_after_one_batch(done, total):
        if done == 2:
            raise Stop

    with pytest.raises(Stop):
        db.space().atlas("0-4", heatmaps=False, progress=stop_after_one_batch, **SETTINGS)
    assert sorted(db.channels().channel) == [0, 1]
    res = db.space().atlas("0-4", heatmaps=False, **SETTINGS)
    assert (res.made, res.skipped) == (3, 2)
    rows = db.channels()
    assert sorted(rows.channel) == [0, 1, 2, 3, 4]  # each exactly once
    again = db.space().atlas("0-4", heatmaps=False, **SETTINGS)
    assert (again.made, again.skipped) == (0, 5)
    assert [t["prob"] for t in site_tiles(db.atlas_site)] == [None] * 5  # not asked of vgg19


def site_tiles(site: Path) -> list[dict]:
    """The atlas index page's data, read as strict JSON (no NaN: the page parses it)."""
    data = re.search(r'id="data">(.*?)</script>', (site / "index.html").read_text(), re.S)
    return json.loads(data.group(1), parse_constant=lambda c: pytest.fail(f"{c} in JSON"))


def test_a_killed_atlas_run_continues_and_makes_each_channel_once(built_store, tmp_path):
    """SIGKILL the command line's atlas while it commits its batches; the rerun finishes
    every channel once, whatever the kill interrupted."""
    store = shutil.copytree(built_store, tmp_path / "store")
    cmd = [sys.executable, "-m", "actdb", "atlas", "--store", str(store), "--channels", "0-7",
           "--size", "32", "--steps", "3", "--batch", "2", "-k", "4", "--examples", "3",
           "--models", "mobilenet", "--no-heatmaps"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while len(list((store / "atlas").rglob("*.json"))) < 3:  # into its second batch
            assert proc.poll() is None and time.monotonic() < deadline, "atlas did not start"
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    db = actdb.open(store)
    res = db.space().atlas("0-7", heatmaps=False, **SETTINGS)
    assert res.made + res.skipped == 8 and res.made > 0
    assert sorted(db.channels().channel) == list(range(8))  # each exactly once


class Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.links = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        for key in ("href", "src"):
            if a.get(key):
                self.links.append(a[key])


def test_the_site_has_a_page_per_channel_and_every_link_resolves_offline(atlas_db):
    site = atlas_db.path / "atlas" / "site"
    pages = sorted(site.rglob("*.html"))
    assert {p.relative_to(site).as_posix() for p in pages} == {
        "index.html", *(f"vgg19/block5_conv4/{c}.html" for c in (3, 4, 5))}
    for page in pages:
        p = Links()
        text = page.read_text()
        p.feed(text)
        assert not re.search(r"""(src|href)=["']?(https?:)?//""", text), page
        for link in p.links:
            if link.startswith("/?sql="):  # the SQL box of actdb serve
                continue
            assert (page.parent / link).resolve().is_file(), (page, link)
    assert all(0 <= t["prob"] <= 1 for t in site_tiles(site))  # vgg19 predicted its own
    heat = list((site / "heat").rglob("*.jpg"))
    assert len(heat) >= 6  # top examples of each channel, overlaid and cropped


def test_serve_shows_the_atlas_and_its_table(atlas_db):
    with TestClient(create_app(ServeConfig(store=atlas_db.path, warm_model=False,
                                           map_method=None))) as c:
        assert "Channel atlas" in c.get("/atlas/").text
        page = c.get("/atlas/vgg19/block5_conv4/4.html")
        assert page.status_code == 200 and "channel 4" in page.text
        rows = c.get("/api/channels").json()
        assert sorted(r["channel"] for r in rows) == [3, 4, 5]
        for r in rows:  # JSON columns arrive as JSON, not as strings of JSON
            assert isinstance(r["predictions"], dict) and isinstance(r["neighbours"], list)
            assert set(r["examples"]) >= {"top", "bottom", "quantiles"}
        assert c.get("/atlas/..%2F..%2Fcatalog.duckdb").status_code in (403, 404)
        assert c.get("/atlas/nope.html").status_code == 404


@needs_chromium
def test_the_browser_opens_the_atlas_and_a_channel_page(atlas_db):
    from tests.serve.test_live import running_server

    with running_server(atlas_db.path, warm_model=False, map_method=None) as url, \
            browser_page(url) as page:
        page.goto(url + "/atlas/")
        page.wait_for_selector("#grid .tile")
        assert page.locator("#grid .tile").count() == 3
        page.fill("#cls", "zzz-no-such-class")
        assert page.inner_text("#count") == "0 shown"
        page.fill("#cls", "")
        page.click("#grid .tile a >> nth=1")
        page.wait_for_selector("text=channel 4")
        assert page.locator("#neighbours img").count() == 4
        # wait for every image to finish loading (CI once checked before they had), then
        # require that none is broken
        page.wait_for_function("[...document.images].every((i) => i.complete)")
        broken = page.evaluate("[...document.images].filter((i) => !i.naturalWidth)"
                               ".map((i) => i.src)")
        assert broken == []
        page.screenshot(path=str(_shot()), full_page=True)


def test_with_a_token_the_atlas_pages_take_it_as_a_cookie_and_the_api_does_not(atlas_db):
    with TestClient(create_app(ServeConfig(store=atlas_db.path, warm_model=False,
                                           map_method=None, token="s3cret"))) as c:
        asked = c.get("/atlas/", headers={"accept": "text/html"})
        assert asked.status_code == 401 and "needs its token" in asked.text
        assert c.get("/atlas/").json()["error"] == "missing or wrong token"  # not a browser
        c.cookies.set("actdb-token", "wrong")
        assert c.get("/atlas/").status_code == 401
        c.cookies.set("actdb-token", "s3cret")
        assert "Channel atlas" in c.get("/atlas/").text
        assert c.get("/api/channels").status_code == 401  # the cookie opens pages only
        assert c.get("/api/channels", headers={"authorization": "Bearer s3cret"}).json()


@needs_chromium
def test_with_a_token_the_browser_asks_once_and_follows_links_into_the_atlas(atlas_db):
    from tests.serve.test_live import running_server

    with running_server(atlas_db.path, warm_model=False, map_method=None,
                        token="s3cret") as url:
        for start in ("/", "/atlas/"):  # from the page's link, or straight to the atlas
            asked = []
            with browser_page(url) as page:
                page.on("dialog", lambda d, asked=asked: (asked.append(d.message),
                                                          d.accept("s3cret")))
                page.goto(url + start)
                if start == "/":
                    page.wait_for_function("document.getElementById('info').textContent"
                                           ".includes('block5_conv4')")
                    page.click("text=channel atlas")
                page.wait_for_selector("#grid .tile")
                page.click("#grid .tile a >> nth=1")
                page.wait_for_selector("text=channel 4")
                assert len(asked) == 1, (start, asked)


def _shot() -> Path:
    from tests.helpers import ARTIFACTS

    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS / "atlas-channel.png"


def test_channel_lists_are_parsed_and_checked():
    from actdb.atlas.run import parse_channels

    assert parse_channels("4,0-2", 8) == [0, 1, 2, 4]
    with pytest.raises(actdb.ActdbError, match="out of range"):
        parse_channels("510-512", 512)
    with pytest.raises(actdb.ActdbError, match="numbers and ranges"):
        parse_channels("four", 512)
    assert np.array_equal(parse_channels(None, 3), [0, 1, 2])


def test_the_site_folder_is_made_when_missing_and_a_file_is_refused(atlas_db, tmp_path):
    from typer.testing import CliRunner

    from actdb.cli import app

    out = tmp_path / "new" / "site"
    res = CliRunner().invoke(app, ["atlas", "--channels", "3-5", "-o", str(out), "--store",
                                   str(atlas_db.path), "--size", "32", "--steps", "3",
                                   "--models", "mobilenet", "-k", "4", "--examples", "3",
                                   "--batch", "2"])
    assert res.exit_code == 0, res.output
    assert (out / "index.html").is_file()
    (tmp_path / "f").write_text("")
    res = CliRunner().invoke(app, ["atlas", "--channels", "3", "-o", str(tmp_path / "f"),
                                   "--store", str(atlas_db.path)])
    assert res.exit_code == 2 and "is a file" in res.stderr
