"""Progress of long calls: a callable gets every report; nothing shows in a script unless asked;
a bar shows in a Jupyter kernel (faked here; the executed notebook shows the real one)."""

import shutil
import sys
import types

import pytest

import actdb
from actdb.progress import in_notebook, progress_for
from tests.helpers import SIZE, WEIGHTS, make_tree


@pytest.fixture
def db(built_store, tmp_path):
    return actdb.open(shutil.copytree(built_store, tmp_path / "store"))


def counted(reports: list) -> list:
    return [r for r in reports if not isinstance(r[0], str)]


def test_a_callable_gets_each_step_up_to_the_total_and_nothing_is_printed(db, capfd):
    reports = []
    db.space().stats(progress=lambda *r: reports.append(r))
    classes = len(db.classes())
    assert [r[:2] for r in reports] == [(i, classes + 2) for i in range(1, classes + 3)]
    assert reports[-1][2] == "nearest neighbours"
    db.space().stats()  # a script: no bar unless asked
    db.space().map("pca", per_class=2)
    assert capfd.readouterr() == ("", "")


def test_asked_for_a_bar_a_script_gets_one_on_stderr(db, capfd):
    db.space().stats(progress=True)
    out, err = capfd.readouterr()
    assert out == "" and "stats: nearest neighbours" in err


def test_in_a_kernel_the_bar_shows_without_being_asked(db, capfd, monkeypatch):
    shell = types.SimpleNamespace(kernel=object(), config={})
    monkeypatch.setitem(sys.modules, "IPython", types.SimpleNamespace(get_ipython=lambda: shell))
    assert in_notebook()
    db.space().stats()
    assert "stats" in capfd.readouterr().err  # tqdm.auto's text bar: no ipywidgets front-end
    with progress_for(False, "stats") as report:
        assert report is None  # unless told not to


@pytest.mark.slow  # two layers ingested
def test_compare_reports_each_space_each_pair_and_each_separation(tmp_path):
    db = actdb.open(tmp_path / "store")
    db.ingest(make_tree(tmp_path / "data", per_class=4), layers="block4_conv4,block5_conv4",
              weights=WEIGHTS, image_size=SIZE, precision="fp32")
    reports = []
    db.compare(sample=8, progress=lambda *r: reports.append(r))
    assert [r[2] for r in reports] == ["reading the sample"] * 2 + ["CKA"] + [
        "class separation"] * 2
    assert [r[:2] for r in reports] == [(i, 5) for i in range(1, 6)]
