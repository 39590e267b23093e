import os
from dataclasses import replace

import numpy as np
import pytest

from actdb.errors import UsageError
from actdb.models.common import model_fingerprint
from actdb.models.embed import EmbedConfig, Embedder
from tests.helpers import class_image, keras_reference


@pytest.mark.parametrize("model,layer,dim,module", [
    pytest.param("vgg16", "block5_conv3", 512, "vgg16", marks=pytest.mark.slow),
    pytest.param("resnet50", "conv5_block3_out", 2048, "resnet50", marks=pytest.mark.slow),
    pytest.param("vgg19", "block4_pool", 512, "vgg19", marks=pytest.mark.slow),
    # the preprocessing runs inside the graph: tf mode (x / 127.5 - 1) and torch mode too
    pytest.param("mobilenet_v2", "out_relu", 1280, "mobilenet_v2", marks=pytest.mark.slow),
    pytest.param("densenet121", "relu", 1024, "densenet", marks=pytest.mark.slow),
])
def test_each_model_equals_keras_with_its_own_preprocessing(model, layer, dim, module):
    import keras

    img = np.asarray(class_image(1, 3).resize((32, 32)))[None]
    emb = Embedder(EmbedConfig(model=model, layer=layer, weights="random:0", image_size=32,
                               precision="fp32", pool="max"))
    got = emb.embed(img)
    app = keras_reference(emb.spec.constructor, include_top=False, input_shape=(32, 32, 3))
    cut = keras.Model(app.input, app.get_layer(layer).output)
    x = getattr(keras.applications, module).preprocess_input(img.astype(np.float32))
    ref = cut.predict(x, verbose=0).max(axis=(1, 2))
    assert got.shape == (1, dim)
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6 * np.abs(ref).max())


def test_fingerprint_depends_on_recipe_not_weight_source():
    a = EmbedConfig(weights="random:0", precision="fp32", layer="x")
    b = EmbedConfig(weights="/path/to/same.h5", precision="fp32", layer="x")
    assert model_fingerprint(a, "sha") == model_fingerprint(b, "sha")
    assert model_fingerprint(a, "sha") != model_fingerprint(EmbedConfig(
        weights="random:0", precision="bf16", layer="x"), "sha")


def test_bad_options_are_usage_errors():
    for cfg in (EmbedConfig(pool="median"), EmbedConfig(resize="stretch"),
                EmbedConfig(precision="fp8"), EmbedConfig(model="alexnet"),
                EmbedConfig(weights="random:x")):
        with pytest.raises(UsageError):
            Embedder(cfg)


def test_embed_takes_uint8_images_only():
    emb = Embedder(EmbedConfig(weights="random:0", image_size=32, precision="fp32"))
    with pytest.raises(UsageError, match="uint8"):
        emb.embed(np.zeros((1, 32, 32, 3), np.float32))


@pytest.mark.slow
def test_embedders_of_one_recipe_are_shared_and_a_changed_weights_file_is_built_again(
        tmp_path):
    from actdb.models import embed
    from actdb.models.cache import BUILT

    BUILT.clear()  # what earlier tests built: this test counts its own
    cfg = EmbedConfig(weights="random:0", image_size=32, precision="fp32")
    a = embed.shared_embedder(cfg)
    assert embed.shared_embedder(cfg) is a
    path = tmp_path / "w.weights.h5"
    keras_reference("VGG19", include_top=False, input_shape=(32, 32, 3)).save_weights(path)
    from_file = embed.shared_embedder(replace(cfg, weights=str(path)))
    assert from_file is not a and from_file.weights_sha256 == a.weights_sha256
    assert embed.shared_embedder(replace(cfg, weights=str(path))) is from_file
    os.utime(path, ns=(1, 1))  # the file changed: its model is built again
    assert embed.shared_embedder(replace(cfg, weights=str(path))) is not from_file
    assert len(BUILT) <= BUILT.size
    BUILT.clear()
    assert embed.shared_embedder(cfg) is not a  # cleared: built again


@pytest.mark.slow  # four VGG19 builds
@pytest.mark.parametrize("pool", ["mean", "max"])
def test_several_layers_in_one_pass_equal_each_layer_alone(pool):
    from actdb.models.embed import LayersEmbedder

    cfg = EmbedConfig(weights="random:0", image_size=32, precision="fp32", pool=pool)
    layers = ["block3_conv4", "block4_conv4", "block5_conv4"]
    both = LayersEmbedder(cfg, layers)
    imgs = np.stack([np.asarray(class_image(c, 0).resize((32, 32))) for c in range(3)])
    got = both.embed(imgs)
    for lyr, vecs, member in zip(layers, got, both.members, strict=True):
        alone = Embedder(replace(cfg, layer=lyr))
        assert member.fingerprint == alone.fingerprint and member.dim == alone.dim
        np.testing.assert_allclose(vecs, alone.embed(imgs), rtol=1e-6, atol=1e-6)
    with pytest.raises(UsageError, match="each layer once"):
        LayersEmbedder(cfg, ["block5_conv4", "block5_conv4"])


@pytest.mark.slow  # builds seven models
def test_several_models_and_batch_sizes_draw_no_retracing_warning():
    """Each Embedder traces its forward pass once, whatever the batch size: a process of a
    few spaces (--layers, --space all) printed TensorFlow's retracing warnings."""
    import logging

    seen = []
    handler = logging.Handler()
    handler.emit = lambda record: seen.append(record.getMessage())
    logger = logging.getLogger("tensorflow")
    logger.addHandler(handler)
    try:
        for layer in ("block1_conv2", "block2_conv1", "block2_conv2", "block3_conv2",
                      "block3_conv4", "block4_conv2", "block4_conv4"):  # over TF's 5 traces
            emb = Embedder(EmbedConfig(weights="random:0", image_size=32, precision="fp32",
                                       layer=layer))
            for n in (5, 3):  # more models than calls each: the traces come close together
                assert emb.embed(np.zeros((n, 32, 32, 3), np.uint8)).shape[0] == n
    finally:
        logger.removeHandler(handler)
    assert not [m for m in seen if "retracing" in m]
