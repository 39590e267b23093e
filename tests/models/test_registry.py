"""The registry: every keras.applications model by name, saved models, stable layer names."""

import numpy as np
import pytest

from actdb.errors import UsageError
from actdb.models import registry
from actdb.models.embed import EmbedConfig, Embedder
from tests.helpers import class_image


def test_every_keras_application_is_in_the_registry_with_its_own_preprocessing():
    import keras

    ctors = {n for n in dir(keras.applications) if n[0].isupper()}
    assert {s.constructor for s in registry.MODELS.values()} == ctors
    for spec in registry.MODELS.values():
        assert callable(spec.preprocess_input()), spec.name
        assert spec.native_size >= 224 and spec.default_layer


@pytest.mark.parametrize("spelling", ["inception_v3", "InceptionV3", "inceptionv3",
                                      "Inception-V3"])
def test_a_model_answers_to_any_spelling_of_its_name(spelling):
    spec = registry.get_spec(spelling)
    assert (spec.name, spec.native_size, spec.default_layer) == ("inception_v3", 299, "mixed10")


def test_preprocessing_is_the_registry_models_own_and_a_saved_models_choice(tmp_path):
    with pytest.raises(UsageError, match="own preprocessing"):
        registry.get_spec("vgg19", "tf")
    (tmp_path / "m.keras").write_bytes(b"")
    with pytest.raises(UsageError, match="needs --preprocess caffe|tf|torch|none"):
        registry.get_spec(str(tmp_path / "m.keras"))
    with pytest.raises(UsageError, match="not found"):
        registry.get_spec(str(tmp_path / "other.keras"), "tf")
    with pytest.raises(UsageError, match="unknown model 'vgg20'.*actdb layers"):
        registry.get_spec("vgg20")
    x = np.full((1, 2, 2, 3), 255.0, np.float32)
    spec = registry.get_spec(str(tmp_path / "m.keras"), "tf")
    np.testing.assert_allclose(spec.preprocess_input()(x.copy()), 1.0)
    np.testing.assert_allclose(registry.get_spec(str(tmp_path / "m.keras"), "none")
                               .preprocess_input()(x.copy()), 255.0)


@pytest.mark.slow  # two builds of mobilenet_v3_small
def test_counter_named_layers_get_the_same_names_in_every_build():
    """Keras names unnamed layers by a process-wide counter (activation_316); actdb numbers
    them within the model, so a store's layer means the same layer in every process."""
    spec = registry.MODELS["mobilenet_v3_small"]
    names = [[r.layer for r in registry.layer_rows("mobilenet_v3_small")] for _ in range(2)]
    assert names[0] == names[1] and len(set(names[0])) == len(names[0])
    rows = registry.layer_rows("mobilenet_v3_small")
    assert [r.layer for r in rows if r.default] == [spec.default_layer] == [rows[-1].layer]
    assert rows[-1].output_shape == "7x7x576" and rows[-1].spatial


def test_layer_rows_at_another_size():
    rows = {r.layer: r for r in registry.layer_rows("vgg19", image_size=64)}
    assert rows["block5_conv4"].output_shape == "4x4x512" and rows["block5_conv4"].default
    assert sum(r.default for r in rows.values()) == 1


def _one_of_each_kind() -> list[str]:
    """The smallest model of each kind: one preprocessing module and one default layer. The
    others of a kind (efficientnet_b1..b7, convnext_small..xlarge, densenet169/201, ...) are
    one Keras builder at other widths and depths, with the same layer names: building every
    one took 230 s of the suite to look at each builder again (`actdb layers NAME` builds any
    of them)."""
    kinds: dict[tuple[str, str], str] = {}
    for name, spec in registry.MODELS.items():
        kinds.setdefault((spec.preprocess, spec.default_layer), name)
    return list(kinds.values())


@pytest.mark.slow  # seconds each: the fast subset builds mobilenet_v3_small's layers above
@pytest.mark.parametrize("name", _one_of_each_kind())
def test_each_kind_of_model_builds_with_random_weights_and_embeds_at_its_own_size(name):
    """The default layer is the last convolutional stage: the output of Keras' own
    ``include_top=False`` model (VGG: its last convolution, before the pooling)."""
    from actdb.models.embed import Network

    spec = registry.MODELS[name]
    cfg = EmbedConfig(model=name, weights="random:0", precision="fp32")
    net = Network(cfg)  # Keras' include_top=False model, built once for both checks
    emb = Embedder(cfg, network=net)
    size = spec.native_size
    assert emb.config.image_size == size and emb.config.layer == spec.default_layer
    img = np.asarray(class_image(1, 0, size=(size, size)))[None]
    vec = emb.embed(img)
    assert vec.shape == (1, emb.dim) and np.isfinite(vec).all() and vec.std() > 0
    last = registry.layer_names(net.base)[-1 if spec.family != "vgg" else -2]
    assert last == spec.default_layer
    assert emb.dim == net.base.output.shape[-1]


@pytest.mark.slow  # builds and saves a Keras model
def test_a_saved_model_embeds_like_keras_with_its_preprocessing_and_its_weights_name_it(
        tmp_path):
    import shutil

    import keras

    from actdb.models.common import model_fingerprint

    inp = keras.Input((40, 40, 3))
    x = keras.layers.Conv2D(8, 3, activation="relu", name="c1")(inp)
    x = keras.layers.Conv2D(6, 3, strides=2, name="c2")(x)
    out = keras.layers.Dense(3, name="head")(keras.layers.GlobalAveragePooling2D()(x))
    model = keras.Model(inp, out)
    path = tmp_path / "tuned.keras"
    model.save(path)
    emb = Embedder(EmbedConfig(model=str(path), preprocess="torch", precision="fp32"))
    assert (emb.config.layer, emb.config.image_size, emb.config.weights) == ("c2", 40, "saved")
    img = np.asarray(class_image(0, 1, size=(40, 40)))[None]
    x = keras.applications.imagenet_utils.preprocess_input(img.astype(np.float32), mode="torch")
    ref = keras.Model(inp, model.get_layer("c2").output).predict(x, verbose=0).mean(axis=(1, 2))
    np.testing.assert_allclose(emb.embed(img), ref, rtol=1e-5, atol=1e-6)
    # the fingerprint is the recipe and the weights, wherever the file lies
    shutil.copy(path, tmp_path / "moved.keras")
    moved = Embedder(EmbedConfig(model=str(tmp_path / "moved.keras"), preprocess="torch",
                                 precision="fp32"))
    assert moved.fingerprint == emb.fingerprint
    assert model_fingerprint(emb.config, "other") != emb.fingerprint
    with pytest.raises(UsageError, match="takes 40x40 images; pass --image-size 40"):
        Embedder(EmbedConfig(model=str(path), preprocess="torch", image_size=64))
    with pytest.raises(UsageError, match="no saved weights"):
        Embedder(EmbedConfig(model="vgg19", weights="saved", image_size=32))
    # listing its layers needs no preprocessing
    rows = registry.layer_rows(str(path))
    assert [(r.layer, r.default) for r in rows if r.spatial][-1] == ("c2", True)


def test_a_failed_download_names_the_file_keras_wanted(monkeypatch, tmp_path):
    import keras.src.utils.file_utils as fu

    from actdb.errors import WeightsUnavailable

    url = "https://storage.example/keras-applications/mobilenet_1_0_224_tf_no_top.h5"

    def offline(*a, **k):
        raise Exception(f"URL fetch failure on {url}: None -- [Errno -3] no network")

    monkeypatch.setattr(fu, "get_file", offline)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    with pytest.raises(WeightsUnavailable) as err:
        Embedder(EmbedConfig(model="mobilenet", image_size=128))
    msg = str(err.value)
    assert "put mobilenet_1_0_224_tf_no_top.h5 in " + str(tmp_path / "models") in msg
    assert "no network" in msg and "\n" not in msg
