"""PyTorch spaces in a store beside Keras ones: added to a Keras store (and the reverse),
each equal to a store of it alone, asked with --space all, compared by CKA, queried through
ONNX Runtime, and ingested by the Ray engine as by the local one."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import actdb
from actdb.check import check_store
from actdb.comparing import CompareConfig, shared_sample
from actdb.errors import ActdbWarning
from actdb.store.store import Store
from tests.helpers import SIZE, WEIGHTS, make_tree, needs_torch, python_json
from tests.test_comparing import gram_cka

pytestmark = [pytest.mark.slow, needs_torch]  # builds VGG19 twice and GoogLeNet, ingests

TV = {"weights": "random:0", "image_size": 64, "precision": "fp32"}
KERAS = {"weights": WEIGHTS, "image_size": SIZE, "precision": "fp32"}


def by_path(db, space: str | None = None) -> dict[str, np.ndarray]:
    ids, vecs = db.space(space).vectors()
    paths = db.images().set_index("image_id").path
    return {paths[i]: v for i, v in zip(ids, vecs, strict=True)}


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    """Keras vgg19, then torchvision vgg19 and googlenet added."""
    base = tmp_path_factory.mktemp("torch")
    root = make_tree(base / "data", per_class=5)
    store = base / "store"
    with actdb.open(store) as db:
        db.ingest(root, batch_size=8, **KERAS)
        db.ingest(root, model="torchvision:vgg19", batch_size=8, **TV)
        db.ingest(root, model="torchvision:googlenet", batch_size=8, **TV)
    return store, root


def test_torch_spaces_beside_keras_equal_stores_of_them_alone(mixed, tmp_path):
    store, root = mixed
    with actdb.open(store) as db:
        names = db.spaces().name.tolist()
        got = by_path(db, "torchvision:googlenet")
        assert check_store(Store.open(store)).ok
    assert names == ["vgg19/block5_conv4", "torchvision:vgg19/features.35",
                     "torchvision:googlenet/inception5b"]
    with actdb.open(tmp_path / "alone") as db:
        db.ingest(root, model="torchvision:googlenet", batch_size=8, **TV)
        alone = by_path(db)
    assert got.keys() == alone.keys()
    for p, v in alone.items():
        np.testing.assert_array_equal(got[p], v)


def test_a_keras_space_added_to_a_torch_store(mixed, tmp_path):
    _, root = mixed
    with actdb.open(tmp_path / "s") as db:
        db.ingest(root, model="torchvision:resnet18", layer="layer3", batch_size=8, **TV)
        db.ingest(root, model="mobilenet", batch_size=8, **KERAS)
        assert db.spaces().name.tolist() == ["torchvision:resnet18/layer3",
                                             "mobilenet/conv_pw_13_relu"]
        n = len(db.images())
        assert n > 0 and db.spaces().vectors.tolist() == [n, n]


def test_space_all_and_compare(mixed):
    store, root = mixed
    query = sorted(root.glob("*/*"))[0]
    with actdb.open(store) as db:
        res = db.across_spaces([query], k=5)
        assert sorted(res.space) == sorted(db.spaces().name)
        routes = dict(zip(res.space, res.route, strict=True))
        assert routes["torchvision:googlenet/inception5b"] == "torch-fp32"
        assert routes["vgg19/block5_conv4"] == "keras-fp32"
        cmp = db.compare(sample=12, seed=1)
        pairs = {(r.space_a, r.space_b): r.cka for r in cmp.similarity.itertuples()}
        ids, _ = shared_sample(db.store, CompareConfig(sample=12, seed=1))
        vecs = {name: db.space(name).vectors(ids)[1].astype(np.float64)
                for name in db.spaces().name}
    assert len(pairs) == 3
    for (a, b), cka in pairs.items():  # Keras VGG19 against torchvision's, and GoogLeNet
        assert cka == pytest.approx(gram_cka(vecs[a], vecs[b]), rel=1e-9)


def test_onnx_queries_equal_torch_and_import_neither_torch_nor_tensorflow(mixed):
    store, root = mixed
    query = str(sorted(root.glob("*/*"))[0])
    with warnings.catch_warnings():
        warnings.simplefilter("error", ActdbWarning)  # no fallback to torch, said or not
        with actdb.open(store, runtime="onnx") as db:
            onnx_vec = db.space("googlenet").embed([query])
    with actdb.open(store, runtime="torch") as db:
        torch_vec = db.space("googlenet").embed([query])
    np.testing.assert_allclose(onnx_vec, torch_vec, rtol=0,
                               atol=1e-5 * np.abs(torch_vec).max())
    code = ("import sys, json, actdb\n"
            f"r = actdb.open({str(store)!r}).space('googlenet').nearest({query!r}, k=3)\n"
            "print(json.dumps([r.answers[0].context['route'], len(r.answers[0].image_id)] + "
            "[m in sys.modules for m in ('torch', 'tensorflow', 'keras')]))")
    assert python_json(code) == ["onnx-fp32", 3, False, False, False]


def test_the_ray_engine_equals_the_local_one(mixed, tmp_path):
    pytest.importorskip("ray")
    _, root = mixed
    with actdb.open(tmp_path / "ray") as db:
        db.ingest(root, model="torchvision:resnet18", layer="layer3", engine="ray",
                  batch_size=8, **TV)
        ray_vecs = by_path(db)
    with actdb.open(tmp_path / "local") as db:
        db.ingest(root, model="torchvision:resnet18", layer="layer3", batch_size=8, **TV)
        local = by_path(db)
    assert ray_vecs.keys() == local.keys()
    for p, v in local.items():
        np.testing.assert_array_equal(ray_vecs[p], v)


def test_a_torch_space_dreams_with_its_own_network_and_refuses_the_atlas(mixed, tmp_path):
    from actdb.errors import UsageError

    store, _ = mixed
    with actdb.open(store) as db:
        space = db.space("googlenet")
        res = space.dream(tmp_path / "d.png", channel=3, steps=2, recipe="seed")
        assert (res.config["model"], res.config["layer"], res.config["image_size"]) == (
            "torchvision:googlenet", "inception5b", 64)
        assert res.model_fingerprint == space.manifest.fingerprint
        with pytest.raises(UsageError, match="the atlas runs on Keras spaces"):
            space.atlas("0-1")


def test_a_changed_state_dict_is_refused_by_its_sha256(mixed, tmp_path):
    import torch
    import torchvision

    from actdb.errors import StoreMismatch
    from actdb.models.cache import BUILT

    _, root = mixed
    weights = tmp_path / "r18.pth"
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1)
        torch.save(torchvision.models.resnet18().state_dict(), weights)
    query = str(sorted(root.glob("*/*"))[0])
    with actdb.open(tmp_path / "s") as db:
        db.ingest(root, model="torchvision:resnet18", layer="layer3", weights=str(weights),
                  image_size=64, precision="fp32", batch_size=8)
        assert db.space().nearest(query, k=1).answers[0].image_id.size == 1
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(2)
        torch.save(torchvision.models.resnet18().state_dict(), weights)
    BUILT.clear()  # this process's built networks: as a new process finds them
    other = str(sorted(root.glob("*/*"))[1])  # not in the query cache: embedded now
    with actdb.open(tmp_path / "s") as db, pytest.raises(StoreMismatch, match="not the ones"):
        db.space().nearest(other, k=1)
