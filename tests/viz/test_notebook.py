"""Results in a notebook: each ``_repr_html_`` shows the expected thumbnails and numbers, stays
small, and shows hostile names as text."""

import base64
import re
from html.parser import HTMLParser

import numpy as np
import pandas as pd
import pytest
from PIL import Image

import actdb
from actdb.viz.notebook import QUERY_THUMB, THUMB
from actdb.viz.thumbs import stored_file, thumbnail
from tests.helpers import SIZE, WEIGHTS, class_image, make_tree

HOSTILE = "<img src=x onerror=alert(1)>"


class Page(HTMLParser):
    """The tags, image sources and visible text of an HTML fragment."""

    def __init__(self, html: str):
        super().__init__()
        self.tags, self.images, self.text = [], [], []
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        if tag == "img":
            self.images.append(dict(attrs)["src"])

    def handle_data(self, data):
        self.text.append(data)


def jpeg(uri: str) -> bytes:
    head, data = uri.split(",", 1)
    assert head == "data:image/jpeg;base64"
    return base64.b64decode(data)


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    """A store of 66 photos-like noisy images (the largest thumbnails), one class and one
    file named as markup."""
    base = tmp_path_factory.mktemp("notebook")
    root = make_tree(base / "data", per_class=20)
    rng = np.random.default_rng(0)
    for d in sorted(root.iterdir()):  # noise on top: thumbnails as large as photos' or more
        for f in sorted(d.iterdir()):
            a = np.asarray(Image.open(f).resize((160, 120)), np.int16)
            noisy = np.clip(a + rng.normal(0, 40, a.shape), 0, 255).astype(np.uint8)
            Image.fromarray(noisy).save(f, "JPEG", quality=95)
    hostile = root / HOSTILE
    hostile.mkdir()
    for i in range(5):
        class_image(1, 50 + i).save(hostile / f"<script>{i}.JPEG")
    db = actdb.open(base / "store")
    db.ingest(root, weights=WEIGHTS, image_size=SIZE, precision="fp32")
    query = base / "query.png"
    class_image(1, 99).save(query)
    return db, query


def test_a_nearest_result_shows_its_query_votes_and_each_neighbour(db):
    db, query = db
    res = db.space().nearest([str(query)], k=50)
    html = res._repr_html_()
    assert len(html.encode()) <= 300_000  # k=50 stays small
    page = Page(html)
    rows = res.neighbors
    files = [stored_file(r, p) for r, p in zip(rows.root, rows.path, strict=True)]
    assert [jpeg(u) for u in page.images] == [thumbnail(query, QUERY_THUMB)] + [
        thumbnail(f, THUMB) for f in files]  # the query, then the neighbours in rank order
    text = " ".join(page.text)
    for r in rows.itertuples():
        assert f"#{r.rank} {r.class_name}" in text and f"d {r.distance:.4g}" in text
    for v in res.classes.itertuples():
        assert f"{v.class_name} {v.count}/50" in text
    ctx = res.context.iloc[0]
    assert f"nearest stored image at {ctx.nn_distance:.4g}" in text
    assert f"{ctx.nn_percentile:.0f}%" in text


def test_hostile_names_show_as_text(db):
    db, query = db
    ids = db.images(f"class_name = '{HOSTILE}'").image_id.tolist()
    assert len(ids) == 5
    res = db.space().nearest([f"id:{ids[0]}", str(query)], k=10, names=["<script>q", "q2"])
    for html in (res._repr_html_(), db.space().examples(0, k=66)._repr_html_(),
                 db.space().centroids(str(query), k=4)._repr_html_()):
        page = Page(html)
        assert "script" not in page.tags and page.tags.count("img") == len(page.images)
        assert not any(t.startswith("img") and "onerror" in t for t in page.tags)
        assert HOSTILE in " ".join(page.text) or "<script>" in " ".join(page.text)
        assert "onerror=alert(1)>" not in html.replace("&gt;", "")  # only escaped
    first = db.images(f"image_id = {ids[0]}").iloc[0]
    assert jpeg(Page(res._repr_html_()).images[0]) == thumbnail(  # an id: query's own image
        stored_file(first.root, first.path), QUERY_THUMB)


def test_examples_and_centroids_show_their_numbers(db):
    db, query = db
    ex = db.space().examples(4, k=6)
    page = Page(ex._repr_html_())
    files = [stored_file(r, p) for r, p in
             zip(*zip(*[(m.root, m.path) for m in db.images().set_index("image_id")
                        .loc[ex.top.image_id].itertuples()], strict=True), strict=True)]
    assert [jpeg(u) for u in page.images] == [thumbnail(f, THUMB) for f in files]
    text = " ".join(page.text)
    assert all(f"{v:.4g}" in text for v in ex.top.value)
    cent = db.space().centroids(str(query), k=3)
    text = " ".join(Page(cent._repr_html_()).text)
    for r in cent.itertuples():
        assert f"{r.class_name} · {r.distance:.4g} vs p95 {r.class_p95_dist:.4g}" in text
    assert type(cent[cent["rank"] == 1]) is pd.DataFrame  # derived frames are plain


def test_a_comparison_is_a_heatmap_of_its_cka(tmp_path):
    sim = pd.DataFrame([{"space_a": "a", "space_b": "b", "cka": 0.25},
                        {"space_a": "a", "space_b": HOSTILE, "cka": 0.75},
                        {"space_a": "b", "space_b": HOSTILE, "cka": 0.5}])
    sep = pd.DataFrame([{"space": "a", "knn_accuracy": 0.9}])
    from actdb.comparing import CompareResult

    html = CompareResult(sim, sep, 1.0)._repr_html_()
    cells = re.findall(r"<td[^>]*>([0-9.–]+)</td>", html)
    assert cells[:9] == ["1.000", "0.250", "0.750", "0.250", "1.000", "0.500", "0.750",
                         "0.500", "1.000"]
    assert "onerror=alert(1)>" not in html.replace("&gt;", "")


def test_a_check_report_and_a_space_table_show_themselves(db):
    db, _ = db
    html = db.check()._repr_html_()
    assert "consistent" in html and f"{db.count()} images" in html
    spaces = db.spaces()
    assert "block5_conv4" in spaces._repr_html_() and isinstance(spaces, pd.DataFrame)


def test_a_dream_shows_its_image_and_how_far_it_rose(tmp_path):
    from actdb.featvis.dream import DreamResult

    class_image(0, 1, size=(300, 300)).save(tmp_path / "node4.png")
    res = DreamResult(image=str(tmp_path / "node4.png"), sidecar="", model_fingerprint="f",
                      config={"layer": "block5_conv4", "channel": 4},
                      objective_per_step=[0.5, 2.0], start_activation=0.5,
                      final_activation=2.0)
    page = Page(res._repr_html_())
    assert jpeg(page.images[0]) == thumbnail(tmp_path / "node4.png", 224)
    assert "block5_conv4 channel 4: activation 0.5 → 2 in 2 steps" in " ".join(page.text)
