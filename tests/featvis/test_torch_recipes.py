"""Dreams on PyTorch networks: the seed recipe against a plain torch loop written here,
the improved recipe raising GoogLeNet's channel, deterministic by seed, a batch as runs of
their own."""

import numpy as np
import pytest
from PIL import Image

from actdb.featvis.dream import DreamConfig, dream, dream_batch
from tests.helpers import needs_torch

pytestmark = [pytest.mark.slow, needs_torch]  # builds torch networks, optimises images
torch = torchvision = None  # imported by the fixture below, once this module runs


@pytest.fixture(autouse=True, scope="module")
def _frameworks():
    global torch, torchvision
    import torch
    import torchvision

MEAN = np.array([0.485, 0.456, 0.406], np.float32)
STD = np.array([0.229, 0.224, 0.225], np.float32)


def test_seed_recipe_equals_a_plain_torch_loop(tmp_path):
    steps, step_size, channel, seed, size = 4, 0.1, 7, 3, 64
    res = dream(DreamConfig(model="torchvision:resnet18", layer="layer3", weights="random:1",
                            image_size=size, steps=steps, step_size=step_size,
                            channel=channel, seed=seed, recipe="seed", precision="fp32"),
                tmp_path / "a.png")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1)
        net = torchvision.models.resnet18().eval()
    seen = []
    net.layer3.register_forward_hook(lambda _m, _i, out: seen.append(out))
    start = np.random.RandomState(seed).randint(0, 255, size=(size, size, 3), dtype=np.uint8)
    img = torch.from_numpy(((start / 255.0 - MEAN) / STD).astype(np.float32)
                           .transpose(2, 0, 1)[None].copy())
    for _ in range(steps):
        img.requires_grad_(True)
        seen.clear()
        net(img)
        loss = seen[0][0, channel].mean()
        (g,) = torch.autograd.grad(loss, img)
        img = (img.detach() + g / g.std(correction=0) * step_size).clamp(-1, 1)
    want = (255 * (img[0] + 1.0) / 2.0).to(torch.uint8).permute(1, 2, 0).numpy()
    got = np.asarray(Image.open(res.image))
    assert np.abs(got.astype(int) - want.astype(int)).max() <= 1  # float rounding at a step
    assert (got != want).mean() < 0.01


def test_improved_recipe_on_googlenet_is_deterministic_and_raises_the_channel(tmp_path):
    cfg = DreamConfig(model="torchvision:googlenet", layer="inception4a", weights="random:0",
                      image_size=96, steps=30, channel=4, seed=0, precision="fp32")
    a = dream(cfg, tmp_path / "a.png")
    b = dream(cfg, tmp_path / "b.png")
    # torchvision's GoogLeNet initialisation (std 0.01) leaves untrained activations tiny:
    # the rise is relative
    assert a.final_activation > 2 * a.start_activation > 0
    assert a.objective_per_step[-1] > a.objective_per_step[0]
    np.testing.assert_array_equal(np.asarray(Image.open(a.image)), np.asarray(Image.open(b.image)))
    assert a.config["model"] == "torchvision:googlenet" and a.config["layer"] == "inception4a"


@pytest.mark.parametrize("recipe", ["improved", "seed"])
def test_a_batch_gives_each_channel_what_its_own_run_gives(tmp_path, recipe):
    cfg = DreamConfig(model="torchvision:resnet18", layer="layer2", weights="random:0",
                      image_size=64, steps=5, seed=2, recipe=recipe, precision="fp32")
    channels = [3, 50]
    batch = dream_batch(cfg, channels, [tmp_path / f"b{c}.png" for c in channels])
    for ch, got in zip(channels, batch, strict=True):
        own = dream(DreamConfig(**{**cfg.__dict__, "channel": ch}), tmp_path / f"s{ch}.png")
        a = np.asarray(Image.open(got.image), np.float64)
        b = np.asarray(Image.open(own.image), np.float64)
        assert np.abs(a - b).max() <= 2, (ch, np.abs(a - b).max())
        np.testing.assert_allclose(got.objective_per_step, own.objective_per_step, rtol=1e-3,
                                   atol=1e-6)
