"""Fixtures shared by the tests and the doctests in the package: one tiny store, built once."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from _pytest.doctest import DoctestItem

from tests.helpers import SIZE, WEIGHTS, make_tree

#: Docstring examples that take seconds (they build a network or merge stores): slow-marked,
#: so the fast subset stays under a minute; the full suite runs them.
SLOW_DOCTESTS = {"actdb.models.embed.LayersEmbedder", "actdb.merging"}


def pytest_collection_modifyitems(items):
    for item in items:
        if isinstance(item, DoctestItem) and item.name in SLOW_DOCTESTS:
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def built_store(tmp_path_factory) -> Path:
    """A store over 3 classes x 6 images (and one broken file), ingested once for the
    read-only tests."""
    import actdb

    base = tmp_path_factory.mktemp("built")
    root = make_tree(base / "data", per_class=6)
    (root / "n01440764" / "broken.JPEG").write_bytes(b"\xff\xd8 truncated")  # one failure
    store = base / "store"
    actdb.open(store).ingest(root, batch_size=8, weights=WEIGHTS, image_size=SIZE,
                             precision="fp32")
    return store


@pytest.fixture(autouse=True)
def _doctest_names(request):
    """Docstring examples see ``store`` (a copy of the tiny store), ``tmp`` (an empty
    folder) and ``tree`` (a small image tree)."""
    if not isinstance(request.node, DoctestItem):
        return
    tmp = request.getfixturevalue("tmp_path")
    store = tmp / "store"
    shutil.copytree(request.getfixturevalue("built_store"), store)
    request.getfixturevalue("doctest_namespace").update(
        store=store, tmp=tmp, tree=make_tree(tmp / "tree", per_class=2))
