"""actdb.space: a space held as an object, its calls refreshing once, the Database's shape."""

import shutil

import numpy as np
import pytest

import actdb
from actdb.database import Database
from actdb.query.context import QueryContext
from actdb.space import Space

#: What a Database answers: the store-wide questions only (issue 35: at most 24 names).
STORE_WIDE = {"path", "store", "close", "exists", "space", "spaces", "ingest", "info", "check",
              "compare", "sql", "images", "count", "classes", "image_file", "thumbnail",
              "channels", "atlas_site", "maps", "across_spaces", "centroids_across_spaces"}


@pytest.fixture
def db(built_store, tmp_path):
    shutil.copytree(built_store, tmp_path / "s")
    with actdb.open(tmp_path / "s") as opened:
        yield opened


def test_a_database_answers_store_wide_questions_only(db):
    public = {n for n in dir(Database) if not n.startswith("_")} | {"path"}
    assert public == STORE_WIDE and len(public) <= 24
    per_space = {n for n in dir(Space) if not n.startswith("_")}
    assert not per_space & (public - {"close", "info", "path"})  # one home for each question


def test_a_space_is_kept_and_named_by_any_of_its_names(db):
    space = db.space()
    assert space is db.space("vgg19/block5_conv4") is db.space("block5_conv4")
    assert space.name == "vgg19/block5_conv4" and space.path == db.path
    with pytest.raises(actdb.errors.NotFound, match="no space 'nope'"):
        db.space("nope")


def test_a_closed_database_gives_a_new_space_that_answers_the_same(db):
    first = db.space()
    want = first.nearest("id:1", k=4).neighbors.image_id.tolist()
    db.close()
    again = db.space()
    assert again is not first
    assert again.nearest("id:1", k=4).neighbors.image_id.tolist() == want


@pytest.mark.parametrize("call", ["nearest", "centroids", "lands", "plot", "export",
                                  "export_atlas", "map", "place"])
def test_each_call_refreshes_its_context_once(db, tmp_path, monkeypatch, call):
    space = db.space()
    space.map("pca", per_class=3)  # what place and export --to atlas read
    refreshes = []
    real = QueryContext.refresh_if_changed
    monkeypatch.setattr(QueryContext, "refresh_if_changed",
                        lambda self: refreshes.append(1) or real(self))
    run = {
        "nearest": lambda: space.nearest("id:0", k=3),
        "centroids": lambda: space.centroids("id:0", k=2),
        "lands": lambda: space.lands(["id:0"], k=3, centroids=2),
        "plot": lambda: space.plot("pca", ["id:0"], per_class=3),
        "export": lambda: space.export("parquet", tmp_path / "v.parquet", per_class=2),
        "export_atlas": lambda: space.export("atlas", tmp_path / "a.parquet", method="pca",
                                             per_class=3, queries=["id:2"]),
        "map": lambda: space.map("pca", per_class=3),
        "place": lambda: space.place("id:0", space.map("pca", per_class=3).map_id),
    }
    run[call]()
    assert len(refreshes) == (2 if call == "place" else 1)  # place: its map(), then itself


def test_lands_is_nearest_and_centroids_asked_together(db):
    space = db.space()
    near, cents = space.lands(["id:0", "id:7"], k=4, centroids=2)
    alone = space.nearest(["id:0", "id:7"], k=4)
    assert near.neighbors.image_id.tolist() == alone.neighbors.image_id.tolist()
    np.testing.assert_allclose(near.neighbors.distance, alone.neighbors.distance)
    assert cents.equals(space.centroids(["id:0", "id:7"], k=2))


def test_an_option_a_config_lacks_is_refused_by_name(db):
    with pytest.raises(actdb.errors.UsageError, match="atlas has no option 'bacth'"):
        db.space().atlas("0", bacth=2)
    with pytest.raises(actdb.errors.UsageError, match="plot has no option 'bnis'"):
        db.space().plot("pca", bnis=3)
    with pytest.raises(actdb.errors.UsageError, match="embed has no option 'pol'"):
        actdb.embed([], pol="max")


@pytest.mark.parametrize("ask", ["nearest", "lands", "across_spaces"])
def test_a_recall_out_of_range_is_refused_on_every_route(db, ask):
    run = {"nearest": db.space().nearest, "lands": db.space().lands,
           "across_spaces": db.across_spaces}[ask]
    with pytest.raises(actdb.errors.UsageError, match=r"recall must be in \(0, 1\]"):
        run("id:0", k=3, recall=1.5)
