import collections
import json
import shutil

import numpy as np
import pytest

import actdb
from actdb.errors import IngestFailed, StoreMismatch, UsageError
from actdb.ingest.layout import detect_layout
from actdb.ingest.pipeline import IngestConfig, ingest, select_entries
from actdb.models.embed import EmbedConfig
from actdb.store.store import Store
from tests.helpers import SIZE, WEIGHTS, add_bad_files, keras_reference, make_tree

FP32 = EmbedConfig(weights=WEIGHTS, image_size=SIZE, precision="fp32")


def run(root, store, embed=FP32, **kw):
    return ingest(IngestConfig(root=root, store=store, embed=embed, batch_size=4, **kw))


def check_store(path):
    return actdb.open(path).check()


def vectors_by_path(store):
    s = Store.open(store)
    imgs = s.images()
    ids, vecs = s.vectors(imgs.image_id.to_numpy())
    return dict(zip(imgs.path, vecs, strict=True)), imgs


def test_stored_vector_equals_keras_intermediate_output_pooled_by_numpy(built_store):
    """The reference is Keras' own full model, cut at the layer, pooled by numpy."""
    import keras
    from PIL import Image

    s = Store.open(built_store)
    row = s.images().iloc[0]
    _, vec = s.vectors([row.image_id])
    full = keras_reference("VGG19", include_top=False, input_shape=(SIZE, SIZE, 3))
    cut = keras.Model(full.input, full.get_layer("block5_conv4").output)
    img = Image.open(f"{row.root}/{row.path}").convert("RGB").resize((SIZE, SIZE),
                                                                       Image.BILINEAR)
    x = keras.applications.vgg19.preprocess_input(np.asarray(img, np.float32)[None].copy())
    ref = cut.predict(x, verbose=0).mean(axis=(1, 2))[0]
    # fp32 end to end: only summation order differs. Tolerance: 1e-5 relative to the max.
    assert np.max(np.abs(vec[0] - ref)) <= 1e-5 * np.max(np.abs(ref))


@pytest.mark.slow
def test_bad_files_are_recorded_and_skipped(tmp_path):
    root = make_tree(tmp_path / "data", per_class=2)
    bad = add_bad_files(root / "n01440764")
    res = run(root, tmp_path / "s")
    assert res.failed == len(bad)
    assert res.ingested == 6 + 6  # 2 per class x 3 + six hard-but-valid files
    got = {r["path"]: r["reason"] for r in
           actdb.open(tmp_path / "s").sql("SELECT path, reason FROM failures").to_pylist()}
    for name, reason in bad.items():
        assert reason in got[f"n01440764/{name}"]
    assert check_store(tmp_path / "s").ok
    run(root, tmp_path / "s")  # they fail again: each row says when and in which run
    again = actdb.open(tmp_path / "s").sql(
        "SELECT f.run_id, f.failed_at >= r.started_at AS after_start, r.run_id AS last "
        "FROM failures f, (SELECT max(run_id) AS run_id, max(started_at) AS started_at "
        "FROM runs) r").to_pylist()
    assert len(again) == len(bad)
    assert all(r["run_id"] == r["last"] and r["after_start"] for r in again), again


@pytest.mark.slow
def test_strict_makes_a_failure_fatal(tmp_path):
    root = make_tree(tmp_path / "data", per_class=1)
    (root / "n01440764" / "zz_empty.JPEG").write_bytes(b"")
    with pytest.raises(IngestFailed, match="zz_empty.JPEG: empty file"):
        run(root, tmp_path / "s", strict=True)
    assert check_store(tmp_path / "s").ok  # what was committed before the failure is sound


@pytest.mark.slow
def test_incremental_ingest_adds_only_new_images(tmp_path):
    root = make_tree(tmp_path / "data", classes=("n01440764", "n02105056"), per_class=3)
    first = run(root, tmp_path / "s")
    make_tree(root, classes=("n02321529",), per_class=3)
    second = run(root, tmp_path / "s")
    assert (first.ingested, second.ingested, second.skipped) == (6, 3, 6)
    imgs = Store.open(tmp_path / "s").images()
    assert imgs.image_id.is_unique and len(imgs) == 9
    assert check_store(tmp_path / "s").ok


def test_different_settings_of_a_space_are_refused(tmp_path, built_store):
    """Another recipe for a space the store has (its model and layer) is refused; another
    layer or model would add a space (tests/ingest/test_spaces.py)."""
    root = make_tree(tmp_path / "data", per_class=1)
    with pytest.raises(StoreMismatch, match="pool"):
        run(root, built_store, embed=EmbedConfig(weights=WEIGHTS, image_size=SIZE,
                                                 precision="fp32", pool="max"))
    with pytest.raises(StoreMismatch, match="weights"):
        run(root, built_store, embed=EmbedConfig(weights="random:1", image_size=SIZE,
                                                 precision="fp32"))


def test_unknown_layer_points_to_the_layers_command(tmp_path):
    root = make_tree(tmp_path / "data", per_class=1)
    with pytest.raises(UsageError, match=r"'nope' for vgg19.*`actdb layers vgg19` lists its "
                       r"2\d layers"):
        run(root, tmp_path / "s", embed=EmbedConfig(weights=WEIGHTS, image_size=SIZE,
                                                    layer="nope"))


def test_per_class_and_limit_are_seeded_samples(tmp_path):
    root = make_tree(tmp_path / "data", per_class=5)
    entries = detect_layout(root).entries
    a = select_entries(entries, IngestConfig(root=root, store="s", per_class=2, seed=1))
    b = select_entries(entries, IngestConfig(root=root, store="s", per_class=2, seed=1))
    c = select_entries(entries, IngestConfig(root=root, store="s", per_class=2, seed=2))
    assert a == b and a != c and len(a) == 6
    assert {e.class_name for e in a} == {e.class_name for e in entries}
    lim = select_entries(entries, IngestConfig(root=root, store="s", limit=4, seed=0))
    again = select_entries(entries, IngestConfig(root=root, store="s", limit=4))
    assert len(lim) == 4 and lim == again


def test_per_class_counts_a_class_across_its_splits(tmp_path):
    make_tree(tmp_path / "train", per_class=3)
    make_tree(tmp_path / "val", per_class=3)
    entries = detect_layout(tmp_path).entries
    both = select_entries(entries, IngestConfig(root=tmp_path, store="s", per_class=4))
    counts = collections.Counter(e.class_name for e in both)
    assert sorted(counts.values()) == [4, 4, 4] and {e.split for e in both} == {"train", "val"}
    val = select_entries(entries, IngestConfig(root=tmp_path, store="s", per_class=2,
                                               split="val"))
    assert len(val) == 6 and {e.split for e in val} == {"val"}


@pytest.mark.slow
def test_weights_file_gives_the_same_vectors_as_its_source(tmp_path, built_store):

    model = keras_reference("VGG19", include_top=False, input_shape=(SIZE, SIZE, 3))
    path = tmp_path / "vgg19_random0.weights.h5"
    model.save_weights(path)
    root = make_tree(tmp_path / "data", per_class=1)
    run(root, tmp_path / "a", embed=EmbedConfig(weights=str(path), image_size=SIZE,
                                                precision="fp32"))
    run(root, tmp_path / "b")
    va, _ = vectors_by_path(tmp_path / "a")
    vb, _ = vectors_by_path(tmp_path / "b")
    assert va.keys() == vb.keys()
    for k in va:
        np.testing.assert_array_equal(va[k], vb[k])
    assert Store.open(tmp_path / "a").manifest.weights_sha256 == \
        Store.open(built_store).manifest.weights_sha256


@pytest.mark.slow
def test_decoding_in_processes_gives_the_same_store_as_threads(tmp_path):
    root = make_tree(tmp_path / "data", per_class=3)
    add_bad_files(root / "n01440764")
    stores = {}
    for decoders in ("threads", "processes"):
        store = tmp_path / decoders
        run(root, store, decoders=decoders, workers=2)
        db = actdb.open(store)
        imgs = db.images().set_index("path")
        stores[decoders] = (imgs.image_id.to_dict(), db.space().vectors(), db.sql(
            "SELECT path, reason FROM failures ORDER BY path").to_pylist())
    (ids_t, (vi_t, vt), fail_t), (ids_p, (vi_p, vp), fail_p) = stores.values()
    assert ids_t == ids_p and fail_t == fail_p and len(fail_t) == 4
    np.testing.assert_array_equal(vi_t, vi_p)
    np.testing.assert_array_equal(vt, vp)
    with pytest.raises(UsageError, match="decoders must be one of"):
        run(root, tmp_path / "x", decoders="fibers")


@pytest.mark.slow
def test_a_stores_manifest_is_the_recipe_of_every_later_ingest(built_store, tmp_path):
    from typer.testing import CliRunner

    from actdb.cli import app

    store = tmp_path / "store"
    shutil.copytree(built_store, store)
    more = make_tree(tmp_path / "more", classes=("n01440764",), per_class=2, seed=7)
    runner = CliRunner()
    res = runner.invoke(app, ["ingest", str(more), "--store", str(store), "--image-size", "64",
                              "--pool", "max"])
    assert res.exit_code == 1
    assert res.stderr.startswith("error: --pool max conflicts with the store's mean; "
                                 "--image-size 64 conflicts with the store's 32")
    res = runner.invoke(app, ["ingest", str(more), "--store", str(store), "--image-size",
                              str(SIZE), "--json"])  # no --weights: the store's random:0
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["ingested"] == 2
    again = make_tree(tmp_path / "again", classes=("n02105056",), per_class=1, seed=8)
    assert actdb.open(store).ingest(again).ingested == 1  # from Python too
    m = actdb.open(store).space().manifest
    assert (m.weights, m.image_size, m.pool) == (WEIGHTS, SIZE, "mean")
