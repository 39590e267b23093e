"""Spaces: several layers from one forward pass, another model added to a store, new images
in every space, a killed fill resumed; each checked against single-space ingests or the
model itself."""

import shutil

import numpy as np
import pytest

import actdb
from actdb.check import check_store
from actdb.errors import QueryError, UsageError
from actdb.ingest.engine import LocalEngine
from actdb.ingest.pipeline import IngestConfig, ingest
from actdb.models.embed import EmbedConfig, Embedder
from actdb.store.store import Store
from tests.helpers import SIZE, WEIGHTS, make_tree

pytestmark = pytest.mark.slow  # builds VGG19 (and ResNet50) and ingests several stores

RECIPE = {"weights": WEIGHTS, "image_size": SIZE, "precision": "fp32"}
B4, B5 = "vgg19/block4_conv4", "vgg19/block5_conv4"


@pytest.fixture(scope="module")
def two_layers(tmp_path_factory):
    """The built store's tree ingested with two layers of vgg19 in one pass."""
    base = tmp_path_factory.mktemp("spaces")
    root = make_tree(base / "data", per_class=6)
    (root / "n01440764" / "broken.JPEG").write_bytes(b"\xff\xd8 truncated")
    store = base / "store"
    actdb.open(store).ingest(root, layers="block4_conv4,block5_conv4", batch_size=8,
                             **RECIPE)
    return store


def _by_path(db, space: str | None = None) -> dict[str, np.ndarray]:
    ids, vecs = db.space(space).vectors()
    paths = db.images().set_index("image_id").path
    return {paths[i]: v for i, v in zip(ids, vecs, strict=True)}


def test_two_layers_in_one_pass_equal_single_layer_ingests(two_layers, built_store):
    """block5 equals the built store (a single-layer ingest of the same tree) to 1e-6, and
    block4 equals its own single-layer Embedder on the same files."""
    with actdb.open(two_layers) as db:
        assert db.spaces().name.tolist() == [B4, B5]
        assert db.space().manifest.space_name == B4  # the first layer is the default
        b5 = _by_path(db, "block5_conv4")
        b4 = _by_path(db)
        root = db.images().root[0]
    with actdb.open(built_store) as one:
        alone = _by_path(one)
        assert db.space(B5).manifest.fingerprint == one.space().manifest.fingerprint
    assert b5.keys() == alone.keys() == b4.keys()
    for p, v in alone.items():
        np.testing.assert_allclose(b5[p], v, rtol=1e-6, atol=1e-6)
    emb = Embedder(EmbedConfig(layer="block4_conv4", **RECIPE))
    paths = sorted(b4)
    ref = emb.embed_files([f"{root}/{p}" for p in paths])
    np.testing.assert_allclose(np.stack([b4[p] for p in paths]), ref, rtol=1e-6, atol=1e-6)
    assert check_store(Store.open(two_layers)).ok


def test_each_space_has_its_view_statistics_and_index(two_layers):
    with actdb.open(two_layers) as db:
        rows = db.sql("SELECT name, view, dim FROM spaces ORDER BY position").to_pylist()
        assert [r["name"] for r in rows] == [B4, B5]
        for r in rows:
            sub = db.space(r["name"])
            ids, vecs = sub.vectors()
            got = db.sql(f"SELECT image_id, vec FROM {r['view']} ORDER BY image_id").to_pylist()
            assert [g["image_id"] for g in got] == ids.tolist()
            np.testing.assert_array_equal(np.array([g["vec"] for g in got], np.float32), vecs)
            cents = db.sql("SELECT class_key, centroid FROM centroids_all WHERE space = "
                           f"'{r['name']}' ORDER BY class_key").to_pandas()
            keys = db.images().set_index("image_id").loc[ids]
            keys = keys.synset.fillna(keys.class_name).to_numpy()
            for key, c in zip(cents.class_key, cents.centroid, strict=True):
                np.testing.assert_allclose(c, vecs[keys == key].mean(axis=0), rtol=1e-5,
                                           atol=1e-6)
            assert sub.nearest("id:0", k=3).neighbors.image_id.tolist()[0] != 0
        # the names from before spaces keep meaning the default space
        assert db.sql("SELECT count(*) AS n FROM centroids").to_pylist() == [{"n": 3}]
        default = db.sql("SELECT vec FROM activations ORDER BY image_id LIMIT 1").to_pylist()
        np.testing.assert_array_equal(default[0]["vec"], db.space().vectors()[1][0])


def test_a_space_is_picked_by_a_unique_short_name(two_layers):
    with actdb.open(two_layers) as db:
        assert db.space("block5_conv4").manifest.layer == "block5_conv4"
        with pytest.raises(QueryError, match="could mean"):
            db.space("vgg19")
        with pytest.raises(QueryError, match="no space 'nope'"):
            db.space("nope")


def test_across_spaces_asks_every_space_as_each_would_alone(two_layers, tree, monkeypatch):
    from pathlib import Path

    query = str(next(tree.rglob("*.JPEG")))
    reads, real = [], Path.read_bytes
    monkeypatch.setattr(Path, "read_bytes", lambda p: reads.append(str(p)) or real(p))
    with actdb.open(two_layers) as db:
        got = db.across_spaces([query, "id:3"], k=5)
        assert reads.count(query) == 1  # parsed once for the shared pass and both spaces
        assert got.space.tolist() == [B4, B5, B4, B5]
        for r in got.itertuples():
            sub = db.space(r.space)
            near = sub.nearest(query if r.query != "id:3" else "id:3", k=5)
            assert r.top_class == near.classes.class_name.iloc[0]
            votes = near.classes.head(3)
            assert r.top_classes == ", ".join(f"{c} {v:.0%}" for c, v in
                                              zip(votes.class_name, votes.share, strict=True))
            assert r.nn_distance == pytest.approx(near.context.nn_distance.iloc[0], rel=1e-5)
            cent = sub.centroids(query if r.query != "id:3" else "id:3", k=1).iloc[0]
            assert (r.nearest_centroid, r.inside_p95) == (cent.class_name, cent.inside)


def test_every_option_of_nearest_and_centroids_means_the_same_in_every_space(two_layers, tree,
                                                                            tmp_path):
    """--space all honours classes, include_self and the query cache, and centroids --space
    all ranks k centroids in each space (not the neighbour vote)."""
    import shutil

    from typer.testing import CliRunner

    from actdb.cli import app

    store = tmp_path / "s"
    shutil.copytree(two_layers, store)
    query = str(next(tree.rglob("*.JPEG")))
    with actdb.open(store) as db:
        got = db.across_spaces([query, "id:3"], k=5, classes="tench", include_self=True)
        assert set(got.top_class) == {"tench"} and set(got.nearest_centroid) == {"tench"}
        assert (got[got["query"] == "id:3"].nn_distance == 0).all()
        assert set(got[got["query"] != "id:3"].route) == {"keras-fp32"}
        for space in (B4, B5):  # each space's cache holds the image now
            assert db.space(space).nearest(query, k=1).answers[0].context["cached"]
        cents = db.centroids_across_spaces(query, k=2)
        assert cents.space.tolist() == [B4, B4, B5, B5] and cents["rank"].tolist() == [1, 2] * 2
        for space in (B4, B5):
            alone = db.space(space).centroids(query, k=2)
            mine = cents[cents.space == space]
            assert mine.class_name.tolist() == alone.class_name.tolist()
            np.testing.assert_allclose(mine.distance, alone.distance)
    res = CliRunner().invoke(app, ["centroids", query, "--space", "all", "-k", "2", "--store",
                                   str(store), "--format", "tsv"])
    assert res.exit_code == 0, res.output
    lines = res.stdout.splitlines()
    assert lines[0].split("\t")[:4] == ["query", "space", "rank", "distance"]
    assert "class_p95_dist" in lines[0] and "vote_share" not in lines[0] and len(lines) == 5


def test_the_keras_spaces_of_one_network_share_one_forward_pass(two_layers, tmp_path,
                                                               monkeypatch):
    """--space all embeds a new image once for both VGG19 layers (each space's cache gets its
    vector, bit-identical to that space's own model), and no space embeds on its own."""
    import shutil

    from actdb.query.context import QueryContext
    from tests.helpers import class_image

    store = tmp_path / "s"
    shutil.copytree(two_layers, store)
    query = tmp_path / "new.png"
    class_image(1, 77).save(query)
    with actdb.open(store) as db:
        with monkeypatch.context() as mp:
            mp.setattr(QueryContext, "embed_images", lambda *a, **k: pytest.fail("embedded"))
            got = db.across_spaces(query, k=3)
        assert set(got.route) == {"keras-fp32"}
        for space in (B4, B5):
            sub = db.space(space)
            cached = sub.resolve(query)[0]
            assert cached.cached
            np.testing.assert_array_equal(cached.vec, sub.embedder.embed_files([query])[0])


def test_adding_a_model_fills_every_image_and_new_images_go_into_every_space(two_layers,
                                                                              tmp_path):
    store = tmp_path / "store"
    shutil.copytree(two_layers, store)
    before = actdb.open(store).images()
    more = make_tree(tmp_path / "more", per_class=2, seed=5)
    with actdb.open(store) as db:
        res = db.ingest(more, model="resnet50", weights=WEIGHTS, image_size=SIZE,
                        rows_per_shard=4, batch_size=4)
        assert res.ingested == 6  # the new images, in every space
        spaces = db.spaces()
        assert spaces.name.tolist() == [B4, B5, "resnet50/conv5_block3_out"]
        n = len(before) + 6
        assert spaces.vectors.tolist() == [n, n, n]
        assert spaces.dim.tolist() == [512, 512, 2048]
        got = _by_path(db, "resnet50")
        images = db.images()
    # the reference: every image ingested into a new store of resnet50 alone
    ref = tmp_path / "ref"
    for root in sorted(set(images.root)):
        actdb.open(ref).ingest(root, model="resnet50", rows_per_shard=4, batch_size=4,
                               **RECIPE)
    alone = _by_path(actdb.open(ref))
    assert got.keys() == alone.keys()
    for p, v in alone.items():
        np.testing.assert_allclose(got[p], v, rtol=1e-5, atol=1e-5)
    assert check_store(Store.open(store)).ok


def test_new_images_build_the_network_once_for_the_weights_check_and_the_run(two_layers,
                                                                             tmp_path,
                                                                             monkeypatch):
    """The IngestPlan's weights check builds the network the run embeds with (both of the
    store's layers), so an ingest of new images builds it once, not once a layer set."""
    from actdb.ingest import engine

    store = tmp_path / "store"
    shutil.copytree(two_layers, store)
    built, real = [], engine.layers_embedder
    monkeypatch.setattr(engine, "layers_embedder",
                        lambda ec, layers: built.append((ec.model, list(layers)))
                        or real(ec, layers))
    res = actdb.open(store).ingest(make_tree(tmp_path / "more", per_class=1, seed=7),
                                   batch_size=4, **RECIPE)
    assert res.ingested == 3
    assert built == [("vgg19", ["block4_conv4", "block5_conv4"])]


class _DiesInFill(LocalEngine):
    """Dies after ``fills`` shards of the fill have been embedded (a killed run)."""

    def __init__(self, fills: int, **kw):
        super().__init__(**kw)
        self.left = fills

    def produce(self, todo, root):  # the store holds every image: each call is the fill's
        if self.left == 0:
            raise KeyboardInterrupt
        self.left -= 1
        yield from super().produce(todo, root)


def test_a_killed_fill_resumes_without_duplicates_or_gaps(tmp_path):
    """A layer added to a store of three shards, the run killed after one was filled: run
    again, the space holds every image once, as the layer's own Embedder makes them."""
    root = make_tree(tmp_path / "data", per_class=4)
    store = tmp_path / "s"
    actdb.open(store).ingest(root, rows_per_shard=4, batch_size=4, **RECIPE)

    def run(engine=None):
        return ingest(IngestConfig.of(root, store, layer="block3_conv4", rows_per_shard=4,
                                      batch_size=4, **RECIPE), engine=engine)

    with pytest.raises(KeyboardInterrupt):
        run(_DiesInFill(1))
    with actdb.open(store) as db:
        part = db.spaces().set_index("name").shards
        assert (part["vgg19/block3_conv4"], part[B5]) == (1, 3)
    assert run().ingested == 0
    with actdb.open(store) as db:
        counts = db.spaces().set_index("name").vectors
        assert counts["vgg19/block3_conv4"] == counts[B5] == 12
        filled = _by_path(db, "block3_conv4")
    assert check_store(Store.open(store)).ok
    emb = Embedder(EmbedConfig(layer="block3_conv4", **RECIPE))
    paths = sorted(filled)
    ref = emb.embed_files([f"{root}/{p}" for p in paths])
    np.testing.assert_allclose(np.stack([filled[p] for p in paths]), ref, rtol=1e-6,
                               atol=1e-6)


def test_the_report_of_a_store_of_spaces_asks_every_space_and_shows_the_cka(two_layers,
                                                                           tmp_path, tree):
    import re

    store = tmp_path / "store"
    shutil.copytree(two_layers, store)
    query = str(next(tree.rglob("*.JPEG")))
    with actdb.open(store) as db:
        db.compare(sample=100)
        out = db.space().report(tmp_path / "r.html", [query, "id:2"], k=4, per_class=4)
        want = db.across_spaces([query, "id:2"])
    html = out.read_text()
    ids = set(re.findall(r'<section id="(\w+)"', html))
    assert {"spaces", "cka", "umap"} <= ids
    section = html.split('<section id="spaces">')[1].split("</section>")[0]
    for r in want.itertuples():
        assert r.space in section and r.top_class in section
    with pytest.raises(UsageError, match="vector of one space"):
        actdb.open(store).across_spaces(np.zeros(512, np.float32))
