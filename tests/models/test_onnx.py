"""models/onnx: a network exported through Keras' own ONNX export equals Keras fp32 to 1e-5
in ONNX Runtime, on images other than the export's own check, and a file of another recipe
is refused; a network whose export ONNX Runtime cannot run is refused with the reason (its
store's queries embed with Keras). vgg19 goes through tests/test_runtime.py and MobileNet
(depthwise convolutions, the smallest export) here; ``bench/runtimes.py --exports`` tries
every family (VGG16 and ResNet50 were exported here too, at ~17 and ~27 s a run)."""

import numpy as np
import pytest

from actdb.models.embed import EmbedConfig, Embedder
from actdb.models.onnx import TOLERANCE, OnnxEmbedder, OnnxUnavailable, export
from tests.helpers import class_image


def _embedder(name: str) -> Embedder:
    return Embedder(EmbedConfig(model=name, weights="random:0", precision="fp32"))


@pytest.mark.slow  # an export takes seconds
def test_a_network_exports_and_equals_keras_fp32(tmp_path):
    emb = _embedder("mobilenet")
    path = tmp_path / "model.onnx"
    assert export(emb, path, emb.fingerprint) <= TOLERANCE
    onnx = OnnxEmbedder(path, emb.config, emb.fingerprint)
    size = emb.config.image_size
    images = np.stack([np.asarray(class_image(c, 7, size=(size, size))) for c in range(3)])
    got, want = onnx.embed(images), emb.embed(images)
    assert got.shape == want.shape == (3, emb.dim) and onnx.dim == emb.dim
    assert np.abs(got - want).max() <= TOLERANCE * np.abs(want).max()
    with pytest.raises(OnnxUnavailable, match="another recipe"):
        OnnxEmbedder(path, emb.config, "f" * 16)


@pytest.mark.slow
def test_an_export_onnx_runtime_cannot_run_is_refused_with_the_reason(tmp_path):
    # Keras 3.15's export leaves EfficientNet's Normalization constants as graph inputs
    path = tmp_path / "model.onnx"
    with pytest.raises(OnnxUnavailable, match="ONNX Runtime cannot run the export of "
                                              "efficientnet_b0"):
        export(_embedder("efficientnet_b0"), path, "x")
    assert not path.exists()
