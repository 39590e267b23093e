"""examples/study.ipynb runs end to end (random weights, a small tree the test makes), and its
outputs, exported to HTML, show the neighbour grid and the map in a browser."""

import os
from pathlib import Path

import pytest

from tests.helpers import browser_page, make_tree, needs_chromium

pytestmark = pytest.mark.slow  # a kernel that imports TensorFlow and runs the whole study
STUDY = Path(__file__).parents[1] / "examples" / "study.ipynb"
K = 50  # the notebook's nearest cell asks for 50


def parameters(nb) -> dict:
    """The notebook's ``parameters`` cell (as papermill tags it)."""
    [cell] = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    return cell


def test_the_study_notebook_is_kept_without_outputs():
    import nbformat

    nb = nbformat.read(STUDY, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(not c.outputs and c.execution_count is None for c in code)


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    """The notebook, executed in a kernel of this Python on a 3-class tree of 60 images."""
    import nbformat
    from jupyter_client import KernelManager
    from nbclient import NotebookClient

    tmp = tmp_path_factory.mktemp("study")
    data = make_tree(tmp / "data", per_class=20)
    nb = nbformat.read(STUDY, as_version=4)
    parameters(nb).source = "\n".join([
        f"DATA = {str(data)!r}", f"STORE = {str(tmp / 'store')!r}", 'WEIGHTS = "random:0"',
        "SIZE = 32", "STEPS = 4"])
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    km = KernelManager(kernel_name="python3", transport="ipc",  # Unix sockets, not TCP
                       ip=str(tmp / "kernel"))
    NotebookClient(nb, km=km, timeout=600, store_widget_state=False,  # no front-end here
                   resources={"metadata": {"path": str(tmp)}}).execute(env=env)
    return nb, tmp


def outputs(nb, text: str) -> list[dict]:
    """The outputs of the code cell whose source contains ``text``."""
    [cell] = [c for c in nb.cells if c.cell_type == "code" and text in c.source]
    return cell.outputs


def test_each_step_of_the_study_shows_its_result(executed):
    nb, tmp = executed
    assert (tmp / "node4.png").is_file()
    for call in ("run = db.ingest(", "space.stats()", "db.compare()"):  # a progress bar each
        assert any("application/vnd.jupyter.widget-view+json" in o.get("data", {})
                   for o in outputs(nb, call)), call
    near = outputs(nb, "space.nearest(")[-1]["data"]["text/html"]
    assert near.count("<figure") == K and "sea_cucumber" in near
    assert "p95" in outputs(nb, "space.centroids(")[-1]["data"]["text/html"]
    assert "mean_other_dist" in outputs(nb, "FROM class_stats")[-1]["data"]["text/html"]
    assert [o for o in outputs(nb, 'space.plot("tsne"') if "image/png" in o.get("data", {})]
    across = outputs(nb, "db.across_spaces(")[-1]["data"]["text/html"]
    assert "block4_conv4" in across and "block5_conv4" in across
    assert "linear CKA" in outputs(nb, "db.compare()")[-1]["data"]["text/html"]
    live = outputs(nb, 'space.map("tsne"')[-1]["data"]
    assert "application/vnd.jupyter.widget-view+json" in live
    assert "image_id" in outputs(nb, "m.selected")[-1]["data"]["text/html"]  # none selected
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs
              if o.output_type == "error" or o.get("name") == "stderr"]
    assert not errors, errors


@needs_chromium
def test_the_executed_notebook_shows_the_grid_and_the_map_in_a_browser(executed):
    from nbconvert import HTMLExporter

    nb, tmp = executed
    body, _ = HTMLExporter(template_name="basic").from_notebook_node(nb)
    page_file = tmp / "study.html"
    page_file.write_text(f"<!doctype html><meta charset=utf-8><body>{body}</body>",
                         encoding="utf-8")
    with browser_page() as page:
        page.set_viewport_size({"width": 1200, "height": 900})
        page.goto(page_file.as_uri())
        drawn = page.evaluate("""() => {
            const loaded = el => el.complete && el.naturalWidth > 0;
            const grid = [...document.querySelectorAll('.actdb-grid img')];
            const maps = [...document.querySelectorAll('img')].filter(
                el => el.src.startsWith('data:image/png') && loaded(el) && el.naturalWidth > 300);
            return {grid: grid.filter(loaded).length, maps: maps.length};
        }""")
        page.locator(".actdb-grid").first.screenshot(path=str(tmp / "grid.png"))
        page.screenshot(path=str(tmp / "study.png"), full_page=True)
    assert drawn == {"grid": K, "maps": 1}
