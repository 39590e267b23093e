"""PyTorch networks' vectors against plain torch: the module's own output caught by a forward
hook on a model built independently here, pooled with numpy."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from actdb.errors import UsageError
from actdb.models.embed import layers_embedder
from actdb.models.torch_embed import TorchEmbedder
from actdb.options import EmbedConfig
from tests.helpers import class_image, needs_torch

pytestmark = [pytest.mark.slow, needs_torch]  # each builds a network in torch
torch = torchvision = None  # imported by the fixture below, once this module runs


@pytest.fixture(autouse=True, scope="module")
def _frameworks():
    global torch, torchvision
    import torch
    import torchvision

MEAN = np.array([0.485, 0.456, 0.406], np.float32)
STD = np.array([0.229, 0.224, 0.225], np.float32)


def images(size: int, n: int = 3) -> np.ndarray:
    return np.stack([np.asarray(class_image(i, i, size=(size + 9, size)).resize((size, size)))
                     for i in range(n)])


def reference(model, module: str, imgs: np.ndarray, mean=MEAN, std=STD, scale=255.0):
    """The output of ``module``'s last call, for images preprocessed in numpy."""
    x = (imgs.astype(np.float32) / scale - mean) / std
    seen = []
    handle = dict(model.named_modules())[module].register_forward_hook(
        lambda _m, _i, out: seen.append(out.detach().numpy()))
    with torch.no_grad():
        model.eval()(torch.from_numpy(x.transpose(0, 3, 1, 2).copy()))
    handle.remove()
    return seen[-1]


def seeded(build, seed: int):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()


def close(got, want, tol=1e-6):
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=0, atol=tol * np.abs(want).max())


@pytest.mark.parametrize("pool", ["mean", "max"])
def test_resnet18_layer3_equals_a_forward_hook(pool):
    imgs = images(64)
    emb = TorchEmbedder(EmbedConfig(model="torchvision:resnet18", layer="layer3", pool=pool,
                                    weights="random:3", image_size=64, precision="fp32"))
    out = reference(seeded(lambda: torchvision.models.resnet18(), 3), "layer3", imgs)
    want = out.mean(axis=(2, 3)) if pool == "mean" else out.max(axis=(2, 3))
    close(emb.embed(imgs), want)
    assert emb.dim == 256 and emb.route == "torch-fp32"


def test_a_module_called_twice_gives_its_last_call():
    """A ResNet block's ReLU runs twice a pass: after bn1 and after the residual sum."""
    imgs = images(64, 2)
    emb = TorchEmbedder(EmbedConfig(model="torchvision:resnet18", layer="layer2.1.relu",
                                    weights="random:0", image_size=64, precision="fp32"))
    out = reference(seeded(lambda: torchvision.models.resnet18(), 0), "layer2.1.relu", imgs)
    close(emb.embed(imgs), out.mean(axis=(2, 3)))


def test_googlenet_inception4a_and_several_layers_in_one_pass():
    imgs = images(96, 2)
    cfg = EmbedConfig(model="torchvision:googlenet", weights="random:1", image_size=96,
                      precision="fp32")
    ref = seeded(lambda: torchvision.models.googlenet(init_weights=True, aux_logits=True), 1)
    one = TorchEmbedder(replace(cfg, layer="inception4a"))
    want = reference(ref, "inception4a", imgs).mean(axis=(2, 3))
    close(one.embed(imgs), want)
    both = layers_embedder(cfg, ["inception4a", "inception5b"], shared=False)
    got4a, got5b = both.embed(imgs)
    np.testing.assert_array_equal(got4a, one.embed(imgs))  # one pass = one layer alone
    close(got5b, reference(ref, "inception5b", imgs).mean(axis=(2, 3)))
    assert [m.fingerprint for m in both.members][0] == one.fingerprint
    assert one.config.layer == "inception4a" and TorchEmbedder(cfg).config.layer == "inception5b"


def test_a_timm_stage_with_its_own_preprocessing():
    timm = pytest.importorskip("timm")
    emb = TorchEmbedder(EmbedConfig(model="timm:resnet-18", weights="random:2",
                                    image_size=64, precision="fp32"))
    cfg = timm.create_model("resnet18").pretrained_cfg
    imgs = images(64, 2)
    ref = seeded(lambda: timm.create_model("resnet18"), 2)
    want = reference(ref, "layer4", imgs, np.float32(cfg["mean"]), np.float32(cfg["std"]))
    assert emb.config.model == "timm:resnet18" and emb.config.layer == "layer4"
    close(emb.embed(imgs), want.mean(axis=(2, 3)))


def test_a_vision_transformers_tokens_pooled_or_its_cls_token():
    imgs = images(224, 1)
    cfg = EmbedConfig(model="torchvision:vit_b_16", weights="random:0", precision="fp32")
    ref = seeded(lambda: torchvision.models.vit_b_16(), 0)
    out = reference(ref, "encoder", imgs)  # (N, 197, 768)
    assert TorchEmbedder(cfg).config.layer == "encoder"
    close(TorchEmbedder(replace(cfg, pool="cls")).embed(imgs), out[:, 0])
    close(TorchEmbedder(replace(cfg, pool="max")).embed(imgs), out.max(axis=1))


def test_random_weights_are_the_same_in_every_build_and_leave_torchs_state_alone():
    state = torch.random.get_rng_state()
    a = TorchEmbedder(EmbedConfig(model="torchvision:resnet18", weights="random:5",
                                  image_size=32, precision="fp32"))
    b = TorchEmbedder(EmbedConfig(model="torchvision:resnet18", weights="random:5",
                                  image_size=32, precision="fp32"))
    assert torch.equal(state, torch.random.get_rng_state())
    assert a.weights_sha256 == b.weights_sha256 and a.fingerprint == b.fingerprint
    c = TorchEmbedder(EmbedConfig(model="torchvision:resnet18", weights="random:6",
                                  image_size=32, precision="fp32"))
    assert c.weights_sha256 != a.weights_sha256


def test_a_state_dict_file_is_loaded_and_a_wrong_one_refused(tmp_path):
    from actdb.errors import WeightsUnavailable

    net = seeded(lambda: torchvision.models.resnet18(), 9)
    torch.save(net.state_dict(), tmp_path / "r18.pth")
    cfg = EmbedConfig(model="torchvision:resnet18", layer="layer3",
                      weights=str(tmp_path / "r18.pth"), image_size=64, precision="fp32")
    imgs = images(64, 2)
    close(TorchEmbedder(cfg).embed(imgs), reference(net, "layer3", imgs).mean(axis=(2, 3)))
    with pytest.raises(WeightsUnavailable, match="does not fit torchvision:resnet34"):
        TorchEmbedder(replace(cfg, model="torchvision:resnet34"))


def test_torchscript_and_export_files(tmp_path):
    """A TorchScript model gives its output (here a ResNet cut after layer3); a torch.export
    program keeps its modules' names (exported for one image a pass: run one at a time)."""
    net = seeded(lambda: torchvision.models.resnet18(), 4).eval()
    imgs = images(64, 3)
    want = reference(net, "layer3", imgs).mean(axis=(2, 3))
    x = torch.zeros((1, 3, 64, 64))
    cut = torch.nn.Sequential(*list(net.children())[:7])  # conv1 ... layer3
    torch.jit.save(torch.jit.script(cut), tmp_path / "r18.pt")
    torch.export.save(torch.export.export(net, (x,)), tmp_path / "r18.pt2")
    for name, layer in (("r18.pt", "output"), ("r18.pt2", "layer3")):
        emb = TorchEmbedder(EmbedConfig(model=str(tmp_path / name), preprocess="torch",
                                        layer=layer, image_size=64, precision="fp32"))
        close(emb.embed(imgs), want)
        assert emb.config.weights == "saved" and emb.config.preprocess == "torch"
    assert TorchEmbedder(EmbedConfig(model=str(tmp_path / "r18.pt"), preprocess="torch",
                                     image_size=64)).config.layer == "output"
    with pytest.raises(UsageError, match="takes 64x64"):
        TorchEmbedder(EmbedConfig(model=str(tmp_path / "r18.pt2"), preprocess="torch",
                                  image_size=96))


def test_user_mistakes_are_one_line_errors():
    base = EmbedConfig(model="torchvision:resnet18", weights="random:0", image_size=32,
                       precision="fp32")
    for cfg, match in [
        (replace(base, model="torchvision:resnet17"), "unknown model torchvision:resnet17"),
        (replace(base, layer="layer9"), "unknown layer 'layer9'.*close: layer"),
        (replace(base, layer="fc"), "gives \\(1000,\\)"),
        (replace(base, pool="cls", layer="layer3"), "pool cls"),
        (replace(base, preprocess="tf"), "own preprocessing"),
        (replace(base, model="missing.pt", preprocess="torch"), "not found"),
        (replace(base, model="torchvision:resnet18", weights="random:x"), "random:SEED"),
    ]:
        with pytest.raises(UsageError, match=match):
            TorchEmbedder(cfg)


def test_offline_imagenet_weights_fail_in_one_line_naming_the_file(tmp_path, monkeypatch):
    from urllib.error import URLError

    from actdb.errors import WeightsUnavailable

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))

    def offline(*_a, **_k):
        raise URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    with pytest.raises(WeightsUnavailable) as err:
        TorchEmbedder(EmbedConfig(model="torchvision:googlenet", weights="imagenet",
                                  image_size=64, precision="fp32"))
    msg = str(err.value)
    assert "\n" not in msg and "googlenet-1378be20.pth" in msg
    assert str(tmp_path / "torch" / "hub" / "checkpoints") in msg


def test_bf16_runs_under_autocast_and_stays_near_fp32():
    """bf16 rounds at every layer: the vectors move, but little (the route says which)."""
    imgs = images(64, 4)
    cfg = EmbedConfig(model="torchvision:resnet18", layer="layer3", weights="random:0",
                      image_size=64)
    fp32 = TorchEmbedder(replace(cfg, precision="fp32")).embed(imgs)
    emb = TorchEmbedder(replace(cfg, precision="bf16"))
    got = emb.embed(imgs)
    assert got.dtype == np.float32 and emb.route == "torch-bf16"
    cos = (got * fp32).sum(1) / np.linalg.norm(got, axis=1) / np.linalg.norm(fp32, axis=1)
    assert cos.min() > 0.99 and not np.array_equal(got, fp32)


def test_actdb_embed_takes_a_torch_model(tmp_path):
    import actdb

    class_image(0, 1).save(tmp_path / "a.png")
    recipe = {"model": "torchvision:resnet18", "layer": "layer3", "weights": "random:0",
              "image_size": 64, "precision": "fp32"}
    got = actdb.embed(tmp_path / "a.png", **recipe)
    want = TorchEmbedder(EmbedConfig(**recipe)).embed_files([tmp_path / "a.png"])
    np.testing.assert_array_equal(got, want)


def test_timm_weights_offline_fail_in_one_line_naming_the_hub_file(tmp_path):
    import os
    import subprocess
    import sys

    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    code = ("from actdb.models.torch_embed import TorchEmbedder\n"
            "from actdb.options import EmbedConfig\n"
            "TorchEmbedder(EmbedConfig(model='timm:resnet18', image_size=64))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, env=env)
    last = out.stderr.strip().splitlines()[-1]
    assert out.returncode == 1 and last.startswith("actdb.errors.WeightsUnavailable")
    assert "timm/resnet18.a1_in1k's model.safetensors" in last and "--weights FILE" in last
