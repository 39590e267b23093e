"""Where in an image a channel fires: its spatial map (e.g. 14 x 14 for VGG19 block5_conv4 at
224 px), computed on demand for the few images a page shows, overlaid on the image; and the
image cropped to the receptive field of the channel's strongest position.

>>> rf = receptive_field_of([("conv", 3, 1, "same"), ("pool", 2, 2, "valid")])
>>> rf.size, rf.stride, rf.start
(4, 2, 0.5)
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ReceptiveField:
    """Output position p sees input pixels centred on ``start + p * stride``, ``size`` wide."""

    size: int
    stride: int
    start: float


def receptive_field_of(layers: list[tuple[str, int, int, str]]) -> ReceptiveField:
    """The receptive field after a chain of (kind, kernel, stride, padding) layers."""
    size, jump, start = 1, 1, 0.5
    for _, k, s, padding in layers:
        pad = (k - 1) / 2 if padding == "same" else 0
        size += (k - 1) * jump
        start += ((k - 1) / 2 - pad) * jump
        jump *= s
    return ReceptiveField(int(size), int(jump), start - 0.5)


def receptive_field(model, layer: str) -> ReceptiveField | None:
    """The receptive field of ``layer`` in a chain of convolutions and poolings (VGG); None
    for models with branches (ResNet), where it is not one window."""
    import keras

    chain = []
    for lyr in model.layers[1:]:
        if isinstance(lyr, keras.layers.Conv2D):
            chain.append(("conv", lyr.kernel_size[0], lyr.strides[0], lyr.padding))
        elif isinstance(lyr, keras.layers.MaxPooling2D | keras.layers.AveragePooling2D):
            chain.append(("pool", lyr.pool_size[0], lyr.strides[0], lyr.padding))
        elif not isinstance(lyr, keras.layers.InputLayer):
            return None
        if lyr.name == layer:
            return receptive_field_of(chain)
    return None


def channel_maps(emb, paths: list, channels: list[int]) -> np.ndarray:
    """(images, channels, h, w) float32 maps of these channels, by the store's model."""
    from actdb.images import decode_image

    x = np.stack([decode_image(p, emb.config.image_size, emb.config.resize)[0] for p in paths])
    out = []
    for i in range(0, len(x), 16):
        act = np.asarray(emb.features(emb.preprocess(x[i:i + 16]), training=False), np.float32)
        out.append(np.moveaxis(act[..., channels], -1, 1))
    return np.concatenate(out)


def overlay(path, heat: np.ndarray, size: int = 160) -> bytes:
    """JPEG: the image (squashed to a square, as the model saw it) under the channel's map."""
    from matplotlib import colormaps
    from PIL import Image

    from actdb.images import decode_image

    img = Image.fromarray(decode_image(path, size, "squash")[0])
    h = heat - heat.min()
    h = h / h.max() if h.max() > 0 else h
    colour = (colormaps["inferno"](h)[..., :3] * 255).astype(np.uint8)
    heat_img = Image.fromarray(colour).resize((size, size), Image.BILINEAR)
    buf = io.BytesIO()
    Image.blend(img, heat_img, 0.5).save(buf, "JPEG", quality=85)
    return buf.getvalue()


def crop(path, heat: np.ndarray, rf: ReceptiveField, input_size: int, size: int = 160
         ) -> bytes:
    """JPEG: the image cropped to the receptive field of the map's strongest position."""
    from PIL import Image

    from actdb.images import decode_image

    img = Image.fromarray(decode_image(path, input_size, "squash")[0])
    py, px = np.unravel_index(int(np.argmax(heat)), heat.shape)
    cy, cx = rf.start + py * rf.stride, rf.start + px * rf.stride
    half = rf.size / 2
    box = [max(0, int(cx - half)), max(0, int(cy - half)),
           min(input_size, int(np.ceil(cx + half))), min(input_size, int(np.ceil(cy + half)))]
    buf = io.BytesIO()
    img.crop(box).resize((size, size)).save(buf, "JPEG", quality=85)
    return buf.getvalue()
