"""The map in a notebook cell: the widget carries the map and the placed queries, a selection
sent by its front-end reaches ``m.selected``, a hover is answered with that image's
thumbnail; in Chromium, the widget's module draws the map and sends a box selection back."""

import base64
import json
import shutil
import sys

import numpy as np
import pytest

import actdb
from actdb.errors import UsageError
from actdb.viz.interactive import encode_points
from actdb.viz.thumbs import data_uri, thumbnail
from tests.helpers import browser_page, class_image, drag_across, needs_chromium

pytest.importorskip("anywidget")


@pytest.fixture(scope="module")
def shown(built_store, tmp_path_factory):
    """A copy of the tiny store, its PCA map with one query placed, and the query."""
    tmp = tmp_path_factory.mktemp("widget")
    db = actdb.open(shutil.copytree(built_store, tmp / "store"))
    query = tmp / "q.png"
    class_image(0, 77).save(query)
    return db, db.space().map("pca", queries=[str(query)]), query


def front_end(widget, method: str, data: dict) -> None:
    """A comm message as the widget's front-end model sends it (an ``update`` of its state,
    or a ``custom`` message)."""
    body = {"method": method, "buffer_paths": []}
    body.update({"state": data} if method == "update" else {"content": data})
    widget._handle_msg({"content": {"data": body}, "buffers": []})


def test_the_widget_carries_the_map_and_its_placed_queries(shown):
    db, m, query = shown
    w = m.widget
    data, meta = encode_points(m.points, w.top)
    assert w.points == data and {k: w.meta[k] for k in meta} == meta
    assert (w.meta["method"], w.meta["map_id"]) == ("pca", m.map_id)
    want = db.space().place(str(query), m.map_id).coords
    assert [q["name"] for q in w.queries] == want.name.tolist()
    np.testing.assert_allclose([[q["x"], q["y"]] for q in w.queries], want[["x", "y"]])
    d = m.placed.distances[0]  # the classes coloured first: those the query lands nearest
    assert w.top[0] == m.points.class_name.iloc[int(np.argmin(d))]
    assert "application/vnd.jupyter.widget-view+json" in m._repr_mimebundle_()[0]
    assert db.space().map("pca").selected.empty  # every call is a handle of its own


def test_a_selection_made_in_the_front_end_reaches_m_selected(shown):
    db, m, _ = shown
    ids = m.points.image_id.iloc[[4, 1, 7]].tolist()
    front_end(m.widget, "update", {"selected_ids": ids})
    sel = m.selected
    assert sorted(sel.image_id) == sorted(ids)
    assert sel.class_name.tolist() == db.images().set_index("image_id").loc[
        sel.image_id].class_name.tolist()
    where = f"image_id IN ({', '.join(map(str, sel.image_id))})"  # on to SQL
    assert db.sql(f"SELECT count(*) AS n FROM images WHERE {where}").to_pylist() == [{"n": 3}]


def test_a_hover_is_answered_with_that_images_thumbnail_and_only_the_maps(shown, monkeypatch):
    db, m, _ = shown
    sent = []
    monkeypatch.setattr(m.widget, "send", lambda content, buffers=None: sent.append(content))
    image_id = int(m.points.image_id.iloc[2])
    front_end(m.widget, "custom", {"kind": "thumbnail", "image_id": image_id})
    front_end(m.widget, "custom", {"kind": "thumbnail", "image_id": 10**9})  # not a point
    front_end(m.widget, "custom", {"kind": "other"})
    assert sent == [{"kind": "thumbnail", "image_id": image_id,
                     "uri": data_uri(thumbnail(db.image_file(image_id), 128), "image/jpeg")}]


STUB = """<!doctype html><meta charset=utf-8><body><div id=cell></div>
<script type=module>
const state = JSON.parse(document.getElementById("state").textContent);
const bytes = Uint8Array.from(atob(state.points), (c) => c.charCodeAt(0));
state.points = new DataView(bytes.buffer);
const handlers = {};
window.sent = []; window.saved = [];
const model = {  // what anywidget hands render(): get, set, save_changes, send, on
  get: (k) => state[k], set: (k, v) => { state[k] = v; },
  save_changes: () => window.saved.push(state.selected_ids.slice()),
  send: (msg) => { window.sent.push(msg);
    for (const h of handlers["msg:custom"] || []) h({kind: "thumbnail", image_id: msg.image_id,
      uri: THUMB}); },
  on: (name, h) => { (handlers[name] = handlers[name] || []).push(h); },
};
const src = document.getElementById("widget").textContent;
const mod = await import(URL.createObjectURL(new Blob([src], {type: "text/javascript"})));
mod.default.render({model, el: document.getElementById("cell")});
window.ready = true;
</script>"""


@needs_chromium
def test_in_a_browser_the_widget_draws_the_map_and_sends_a_selection_back(shown, tmp_path):
    _, m, _ = shown
    w = m.widget
    state = {"_plotly": w._plotly, "_map_js": w._map_js, "meta": w.meta, "queries": w.queries,
             "top": w.top, "selected_ids": [], "points": base64.b64encode(w.points).decode()}
    thumb = data_uri(thumbnail(tmp_path / "none.jpg", 16), "image/jpeg")
    page_file = tmp_path / "widget.html"
    page_file.write_text(
        STUB.replace("THUMB", json.dumps(thumb))
        + '<script id=state type="application/json">'
        + json.dumps(state).replace("</", "<\\/") + "</script>"
        + '<script id=widget type="text/plain">' + w._esm.replace("</", "<\\/")
        + "</script>", encoding="utf-8")
    with browser_page() as page:
        page.set_viewport_size({"width": 900, "height": 700})
        page.goto(page_file.as_uri())
        page.wait_for_function("window.ready && document.querySelector('.actdb-widget .nsewdrag')")
        # hover: the kernel is asked for that image's thumbnail; it shows with the class
        x, y = page.evaluate("""([x, y]) => {
            const el = document.querySelector('.js-plotly-plot'), fl = el._fullLayout;
            const box = el.getBoundingClientRect();
            return [box.left + fl._size.l + fl.xaxis.l2p(x),
                    box.top + fl._size.t + fl.yaxis.l2p(y)];
        }""", [float(m.points.x.iloc[0]), float(m.points.y.iloc[0])])
        page.mouse.move(x, y)
        page.wait_for_function("document.querySelector('.actdb-widget img')")
        [asked] = page.evaluate("window.sent")  # the point under the mouse (its cluster's)
        assert asked["kind"] == "thumbnail"
        cls = m.points.set_index("image_id").class_name[asked["image_id"]]
        tip = page.locator(".actdb-widget div", has=page.locator("img")).last.inner_text()
        assert f"#{asked['image_id']} · {cls}" in tip
        page.mouse.move(1, 1)
        page.evaluate("Plotly.relayout(document.querySelector('.js-plotly-plot'), "
                      "{dragmode: 'select'})")
        drag_across(page, ".actdb-widget .nsewdrag")
        page.wait_for_function("window.saved.length > 0")
        saved = page.evaluate("window.saved[window.saved.length - 1]")
        assert saved and set(saved) <= set(m.points.image_id.tolist())
        assert "selected" in page.inner_text(".actdb-selection")
        page.screenshot(path=str(tmp_path / "widget.png"))


def test_without_anywidget_the_map_says_how_to_see_it_live(shown, monkeypatch):
    db, _, _ = shown
    monkeypatch.delitem(sys.modules, "actdb.viz.widget", raising=False)
    monkeypatch.setitem(sys.modules, "anywidget", None)  # as if not installed
    m = db.space().map("pca")
    with pytest.raises(UsageError, match=r"pip install 'actdb\[notebook\]'"):
        m.widget  # noqa: B018 - the property makes the widget
    assert m._repr_mimebundle_() == {"text/plain": f"{m!r}\n(a live map in a notebook needs "
                                     "anywidget: pip install 'actdb[notebook]')"}
