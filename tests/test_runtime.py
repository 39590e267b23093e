"""The ONNX route for query images (actdb.runtime, models/onnx): kept at ingest, exported on
first need, equal to Keras fp32, no TensorFlow or Keras in a query process, and Keras with
one warning wherever the route cannot be taken. Each export takes ~12 s: one store's export
is shared by the tests here."""

import sys
import warnings

import numpy as np
import pytest

import actdb
from actdb.errors import ActdbWarning, UsageError
from actdb.models.embed import Embedder
from actdb.models.onnx import OnnxEmbedder, OnnxUnavailable
from actdb.runtime import keep_onnx, query_embedder
from actdb.store.catalog import files
from actdb.store.store import Store
from tests.helpers import SIZE, WEIGHTS, class_image, make_tree, python_json

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def kept(tmp_path_factory):
    """A store ingested with its model kept as ONNX, and three query images."""
    tmp = tmp_path_factory.mktemp("onnx")
    root = make_tree(tmp / "data", per_class=3)
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("ACTDB_ONNX", raising=False)
        res = actdb.open(tmp / "s").ingest(root, weights=WEIGHTS, image_size=SIZE,
                                           precision="fp32")
    queries = []
    for i in range(3):
        class_image(1, 40 + i).save(tmp / f"q{i}.png")
        queries.append(tmp / f"q{i}.png")
    return res, tmp / "s", queries


def test_ingest_keeps_the_model_and_queries_use_it(kept):
    res, store, queries = kept
    assert res.onnx == {"vgg19/block5_conv4": "kept"}
    assert files.onnx_model_path(store).is_file()
    with actdb.open(store) as db, warnings.catch_warnings():
        warnings.simplefilter("error", ActdbWarning)  # the route is taken without a word
        assert isinstance(db.space().embedder, OnnxEmbedder)
        got = db.space().embed(queries)
    keras = Embedder(db.space().embedder.config)  # an independent Keras build of the recipe
    want = keras.embed_files(queries)
    assert np.abs(got - want).max() <= 1e-5 * np.abs(want).max()
    # ONNX Runtime's optimised graph is cached beside the model for later processes,
    # written under a temporary name and renamed into place
    assert list(store.glob("model.*.ort.onnx")) and not list(store.glob(".model*"))


def test_runtime_keras_is_the_keras_embedder_and_answers_the_same(kept):
    _, store, queries = kept
    with actdb.open(store, runtime="keras") as kd, actdb.open(store, runtime="onnx") as od:
        k, o = kd.space(), od.space()
        assert isinstance(k.embedder, Embedder)
        want = k.nearest(k.embedder.embed_files([queries[1]])[0], k=5).answers[0]
        got = o.nearest(queries[1], k=5).answers[0]
    np.testing.assert_array_equal(got.image_id, want.image_id)
    np.testing.assert_allclose(got.distance, want.distance, rtol=1e-4)
    with pytest.raises(UsageError, match="unknown runtime"):
        actdb.open(store, runtime="tensorrt")


def test_a_query_process_imports_neither_tensorflow_nor_keras(kept):
    _, store, queries = kept
    code = ("import sys, json, actdb\n"
            f"r = actdb.open({str(store)!r}).space().nearest({str(queries[2])!r}, k=3)\n"
            "print(json.dumps([len(r.answers[0].image_id), 'tensorflow' in sys.modules,"
            " 'keras' in sys.modules]))")
    assert python_json(code) == [3, False, False]


def test_first_need_exports_and_a_model_of_another_recipe_is_refused(kept, tmp_path):
    import shutil

    _, store, queries = kept
    copy = tmp_path / "s"
    shutil.copytree(store, copy)
    for p in [files.onnx_model_path(copy), *copy.glob("model.*.ort.onnx")]:
        p.unlink()
    with actdb.open(copy) as db:  # no model kept: Keras, as the store was made
        assert isinstance(db.space().embedder, Embedder)
    with actdb.open(copy, runtime="onnx") as db:  # asked: exported and checked now
        assert isinstance(db.space().embedder, OnnxEmbedder)
    assert files.onnx_model_path(copy).is_file()
    m = Store.open(copy).manifest
    with pytest.raises(OnnxUnavailable, match="another recipe"):
        OnnxEmbedder(files.onnx_model_path(copy), None, "0" * 16)
    assert m.fingerprint != "0" * 16


def test_without_onnx_runtime_queries_embed_with_keras_and_say_why(kept, monkeypatch):
    _, store, _ = kept
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as if it were not installed
    with pytest.warns(ActdbWarning, match="ONNX Runtime is not installed.*embedding with "
                                          "Keras"):
        emb = query_embedder(Store.open(store), None)
    assert isinstance(emb, Embedder)


def test_a_failed_export_keeps_nothing_and_says_why(kept, tmp_path, monkeypatch):
    import shutil

    _, store, _ = kept
    copy = tmp_path / "s"
    shutil.copytree(store, copy)
    files.onnx_model_path(copy).unlink()
    monkeypatch.setitem(sys.modules, "onnx", None)  # the exporter's own dependency missing
    why = keep_onnx(Store.open(copy))
    assert why.startswith("Keras could not export vgg19 to ONNX")
    assert not files.onnx_model_path(copy).exists() and not files.temp_files(copy)
    with pytest.warns(ActdbWarning, match="could not export.*embedding with Keras"):
        assert isinstance(query_embedder(Store.open(copy), "onnx"), Embedder)


def test_the_default_route_gives_a_stored_image_back_in_fp32_and_bf16_stores(kept, tmp_path):
    """Every caller's default route (command line, notebook, service) reproduces the
    store's own vectors: a stored image asked by its file lands at distance <= 1e-6 of its
    vector, in an fp32 store (ONNX Runtime) and in a bf16 one (its Keras bf16 model; ONNX
    Runtime's fp32 is ~0.4% off bf16 rounding, and stays a route one asks for)."""
    from actdb.runtime import planned_route

    _, store, _ = kept
    root = make_tree(tmp_path / "data", per_class=2)
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("ACTDB_ONNX", raising=False)
        res = actdb.open(tmp_path / "b16").ingest(root, weights=WEIGHTS, image_size=SIZE,
                                                  precision="bf16")
    assert res.onnx == {}  # no export for a bf16 store: its queries do not use it
    for path, route in ((store, "onnx-fp32"), (tmp_path / "b16", "keras-bf16")):
        assert planned_route(Store.open(path)) == route
        with actdb.open(path) as db:
            assert db.info()["query_route"] == route
            images = db.images().head(3)
            files = [f"{r.root}/{r.path}" for r in images.itertuples()]
            _, stored = db.space().vectors(images.image_id.to_numpy())
            got = db.space().nearest(files, k=1, include_self=True)
            for a, want in zip(got.answers, stored, strict=True):
                assert a.context["route"] == route
                assert np.linalg.norm(a.query.vec - want) <= 1e-6, (path, a.query.name)
    with actdb.open(tmp_path / "b16", runtime="onnx") as db:  # asked for: exported now
        a = db.space().nearest(files[0], k=1).answers[0]
        assert a.context["route"] == "onnx-fp32" and np.linalg.norm(a.query.vec - stored[0]
                                                                    ) > 1e-6


def test_an_answer_does_not_depend_on_which_route_embedded_the_image_first(kept, tmp_path):
    """The query cache keys a vector by its route (runtime and precision): Keras then ONNX,
    or ONNX then Keras, each route answers with its own numbers, bit for bit, and says which
    route it took."""
    import shutil

    _, store, queries = kept
    got = {}
    for order in (("keras", "onnx"), ("onnx", "keras")):
        copy = tmp_path / "-".join(order)
        shutil.copytree(store, copy)
        for runtime in order:
            with actdb.open(copy, runtime=runtime) as db:
                a = db.space().nearest(queries[0], k=3).answers[0]
                assert not a.context["cached"]  # the other route's vector is not this one's
                got[order, runtime] = a.query.vec
                assert a.context["route"] == f"{runtime}-fp32"
        with actdb.open(copy) as db:
            routes = db.sql("SELECT route FROM queries WHERE name = 'q0' ORDER BY route"
                            ).to_pylist()
            assert routes == [{"route": "keras-fp32"}, {"route": "onnx-fp32"}]
    for runtime in ("keras", "onnx"):
        np.testing.assert_array_equal(got[("keras", "onnx"), runtime],
                                      got[("onnx", "keras"), runtime])
    with actdb.open(store, runtime="keras") as db:
        np.testing.assert_array_equal(got[("onnx", "keras"), "keras"],
                                      db.space().embedder.embed_files([queries[0]])[0])
