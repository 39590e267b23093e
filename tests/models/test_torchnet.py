"""PyTorch networks by name: spellings, preprocessing, default layers and module listings
(found on the meta device, without weights); Keras users never import torch."""

from __future__ import annotations

import pytest

from actdb.errors import UsageError
from actdb.models.common import is_torch_model
from actdb.models.registry import get_spec, layer_rows
from tests.helpers import needs_torch, python_json

pytestmark = [pytest.mark.slow, needs_torch]  # torch and its zoos imported (seconds)


@pytest.mark.parametrize("name,layer,size", [
    ("torchvision:googlenet", "inception5b", 224),
    ("torchvision:GoogLeNet", "inception5b", 224),
    ("torchvision:vgg19", "features.35", 224),  # the last ReLU: block5_conv4's place
    ("torchvision:alexnet", "features.11", 224),
    ("torchvision:resnet50", "layer4", 224),
    ("torchvision:inception-v3", "Mixed_7c", 299),
    ("torchvision:densenet121", "features", 224),
    ("torchvision:efficientnet_b3", "features", 300),
    ("torchvision:convnext_tiny", "features", 224),
    ("torchvision:regnet_y_400mf", "trunk_output", 224),
    ("torchvision:vit_b_16", "encoder", 224),
    ("timm:resnet18", "layer4", 224),
    ("timm:convnext_atto", "stages.3", 224),
])
def test_default_layers_are_the_last_convolutional_stage(name, layer, size):
    spec = get_spec(name)
    assert (spec.default_layer, spec.native_size, spec.framework) == (layer, size, "torch")
    assert spec.name == "torchvision:" + spec.constructor or spec.name.startswith("timm:")


def test_each_zoo_gives_its_own_preprocessing():
    tv, tm = get_spec("torchvision:resnet18"), get_spec("timm:inception_v3.tf_in1k")
    assert tv.mean == pytest.approx((0.485, 0.456, 0.406)) and tv.scale == 255.0
    assert tm.mean == pytest.approx((0.5, 0.5, 0.5)) and tm.native_size == 299
    assert tm.name == "timm:inception_v3.tf_in1k"


def test_layers_lists_modules_in_the_order_they_run_with_their_shapes():
    rows = layer_rows("torchvision:googlenet")
    names = [r.layer for r in rows]
    assert names.index("inception4a") < names.index("inception4a.branch1") \
        < names.index("inception5b")
    row = {r.layer: r for r in rows}
    assert row["inception4a"].output_shape == "512x14x14" and row["inception4a"].spatial
    assert row["inception5b"].default and sum(r.default for r in rows) == 1
    assert row["fc"].output_shape == "1000" and not row["fc"].spatial
    assert row["aux1"].output_shape == "-"  # an auxiliary head: not run at inference
    small = {r.layer: r for r in layer_rows("torchvision:googlenet", image_size=64)}
    assert small["inception4a"].output_shape == "512x4x4"


def test_names_and_mistakes():
    assert is_torch_model("timm:x") and is_torch_model("m.pt2") and not is_torch_model("vgg19")
    with pytest.raises(UsageError, match="unknown model torchvision:resnet1000"):
        get_spec("torchvision:resnet1000")
    with pytest.raises(UsageError, match="model file nowhere.pt not found"):
        get_spec("nowhere.pt", "torch")
    with pytest.raises(UsageError, match="cannot take 16x16"):
        layer_rows("torchvision:vgg19", image_size=16)


def test_keras_users_never_import_torch(tmp_path):
    from PIL import Image

    Image.new("RGB", (40, 30), (200, 10, 10)).save(tmp_path / "red.png")
    code = ("import sys, json, actdb\n"
            "actdb.layers('vgg19')\n"
            f"v = actdb.embed({str(tmp_path / 'red.png')!r}, weights='random:0', "
            "image_size=32, precision='fp32')\n"
            "print(json.dumps([v.shape[1], 'torch' in sys.modules]))")
    assert python_json(code) == [512, False]
