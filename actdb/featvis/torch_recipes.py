"""The dream recipes on a PyTorch network (``dream --model torchvision:googlenet``): the same
two as on Keras (``featvis.dream``), written in torch, on the network's NCHW activations.

``seed``: the original's pixel ascent on the preprocessed image (each step the gradient over
its own standard deviation, clipped to -1..1); ``improved``: Lucid's Fourier parameterisation
in decorrelated colour, seeded transformation robustness and Adam. Seeded: the same seed gives
the same picture (``torch.Generator``s of their own; torch's global random state untouched).
Every image of a batch is scored on its own channel, so a batch gives each channel what a run
of its own gives.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from actdb.errors import UsageError
from actdb.featvis.param import COLOR_CORR, fourier_scale, seed_start
from actdb.models.torchnet import torch


def channel_objectives(kind: str, channels: list[int], dim: int, layer: str) -> Callable:
    """(B, C, h, w) activations -> (B,) values: image ``i``'s mean of ``channels[i]`` over
    positions (``channel``) or its value at the centre position (``neuron``)."""
    t = torch()
    for ch in channels:
        if not 0 <= ch < dim:
            raise UsageError(f"channel {ch} out of range; {layer} has {dim} channels")

    def objectives(act):
        if act.dim() != 4:
            raise UsageError(f"dream needs a spatial (N, C, H, W) layer; {layer} gives "
                             f"{tuple(act.shape[1:])}", param="layer")
        act = act.float()
        if kind == "neuron":
            h, w = act.shape[2] // 2, act.shape[3] // 2
            return t.stack([act[i, ch, h, w] for i, ch in enumerate(channels)])
        return t.stack([act[i, ch].mean() for i, ch in enumerate(channels)])

    return objectives


def _features(emb) -> Callable:
    """Preprocessed NCHW images -> the layer's activations (gradients flow)."""
    net, layer = emb.network, emb.config.layer
    return lambda x: net.outputs(x, [layer])[0]


def run_seed(emb, cfg, objectives, n: int, progress):
    t = torch()
    features = _features(emb)
    one = emb.network.preprocess(t.from_numpy(seed_start(cfg.image_size, cfg.seed))[None])
    imgs = one.repeat(n, 1, 1, 1)  # every channel from the same start
    with t.no_grad():
        start = objectives(features(imgs)).numpy()
    values = []
    for i in range(cfg.steps):
        x = imgs.detach().requires_grad_(True)
        v = objectives(features(x))
        (g,) = t.autograd.grad(v.sum(), x)
        step = g / g.std(dim=(1, 2, 3), correction=0, keepdim=True) * cfg.step_size
        imgs = (x.detach() + step).clamp(-1, 1)
        values.append(v.detach().numpy())
        if progress:
            progress(i + 1, cfg.steps, float(values[-1].mean()))
    # the original maps back with a contrast stretch (truncated to uint8)
    out = (255 * (imgs + 1.0) / 2.0).to(t.uint8).permute(0, 2, 3, 1).numpy()
    return list(out), np.asarray(values).T, start


def _crop(x, side: int, gen):
    """A seeded random crop of an NCHW batch, the same for every image."""
    t = torch()
    room = x.shape[2] - side + 1
    oy, ox = (int(t.randint(0, room, (1,), generator=gen)) for _ in range(2))
    return x[:, :, oy:oy + side, ox:ox + side]


def _crop_or_pad(x, side: int):
    """Centre crop, or zero padding around, to ``side`` (as tf.image's)."""
    f = torch().nn.functional
    d = side - x.shape[2]
    if d >= 0:
        return f.pad(x, (d // 2, d - d // 2, d // 2, d - d // 2))
    o = -d // 2
    return x[:, :, o:o + side, o:o + side]


def robustness(size: int, seed: int) -> Callable:
    """NHWC [0, 1] -> NHWC: reflect-pad 12, jitter 8, scale 0.9-1.1, jitter 4, from a
    generator of its own seeded with ``seed``."""
    t = torch()
    f = t.nn.functional
    gen = t.Generator().manual_seed(seed)

    def robust(x):
        x = f.pad(x.permute(0, 3, 1, 2), (12, 12, 12, 12), mode="reflect")
        x = _crop(x, size + 16, gen)
        s = 0.9 + 0.2 * float(t.rand((), generator=gen))
        new = int(round(s * (size + 16)))
        x = f.interpolate(x, size=(new, new), mode="bilinear", align_corners=False)
        x = _crop(_crop_or_pad(x, size + 8), size, gen)
        return x.permute(0, 2, 3, 1)

    return robust


def run_improved(emb, cfg, objectives, n: int, progress):
    t = torch()
    features, net, size = _features(emb), emb.network, cfg.image_size
    rng = np.random.default_rng(cfg.seed)
    shape = (3, size, size // 2 + 1)
    re, im = rng.normal(0, 0.01, shape), rng.normal(0, 0.01, shape)
    spec_re = t.tensor(np.broadcast_to(re, (n, *shape)), dtype=t.float32, requires_grad=True)
    spec_im = t.tensor(np.broadcast_to(im, (n, *shape)), dtype=t.float32, requires_grad=True)
    scale = t.from_numpy(fourier_scale(size))
    corr = t.from_numpy(COLOR_CORR.T.copy())
    robust = robustness(size, cfg.seed)

    def to_rgb():  # (n, size, size, 3) in [0, 1]
        x = t.fft.irfft2(t.complex(spec_re * scale, spec_im * scale), s=(size, size))
        return t.sigmoid((x.permute(0, 2, 3, 1) / 4.0) @ corr)

    def score(x01):
        return objectives(features(net.preprocess(x01 * 255.0)))

    opt = t.optim.Adam([spec_re, spec_im], lr=cfg.step_size)
    with t.no_grad():
        start = score(to_rgb()).numpy()
    values = []
    for i in range(cfg.steps):
        opt.zero_grad()
        v = score(robust(to_rgb()))
        (-v.sum()).backward()
        opt.step()
        values.append(v.detach().numpy())
        if progress:
            progress(i + 1, cfg.steps, float(values[-1].mean()))
    with t.no_grad():
        out = np.clip(np.round(to_rgb().numpy() * 255.0), 0, 255).astype(np.uint8)
    return list(out), np.asarray(values).T, start


def final_values(emb, objectives, images: list[np.ndarray]) -> np.ndarray:
    """The objective of the saved pictures, read back (float RGB in 0..255)."""
    t = torch()
    with t.no_grad():
        x = emb.network.preprocess(t.from_numpy(np.stack(images).astype(np.float32)))
        return objectives(_features(emb)(x)).numpy()
