"""Decode any image real ImageNet throws at us into a fixed-size RGB uint8 array.

The bottom floor shared by ingest, the models and the queries: a query image goes through
exactly the code the stored images went through.

Handles CMYK and grayscale JPEGs, RGBA and palette PNGs, 16-bit PNGs and PNGs named
``.JPEG`` (Pillow sniffs the content, not the name). Truncated, empty, non-image and
decompression-bomb files raise :class:`ImageError` with a short reason.

Resize methods (the store records which one; queries use the same):

- ``squash`` (default): resize the whole image to size x size, bilinear, ignoring aspect
  ratio. This is what ``keras.utils.load_img(path, target_size=(224, 224))`` does (Keras uses
  nearest-neighbour by default; we use bilinear, which aliases less).
- ``center-crop``: resize the shorter side to ``size`` (bilinear), then take the central square.

>>> import numpy as np, io; from PIL import Image
>>> buf = io.BytesIO(); Image.new("L", (30, 20), 7).save(buf, "PNG")
>>> decode_image(buf.getvalue(), 16)[0].shape
(16, 16, 3)
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from actdb.errors import ImageError

RESIZE_METHODS = ("squash", "center-crop")
#: Images with more pixels than this are refused as decompression bombs (Pillow's default
#: limit). Checked per image from the header, before any pixel is decoded; Pillow's own
#: process-wide ``Image.MAX_IMAGE_PIXELS`` is left as the application set it.
MAX_PIXELS = 89_478_485
IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".jfif"}


def is_image_name(path: str | Path) -> bool:
    """True when the file name has an image extension (case-insensitive)."""
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


def _to_rgb(im: Image.Image) -> Image.Image:
    if im.mode == "RGB":
        return im
    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16-bit grayscale: Pillow's convert("RGB") clips at 255; scale to 8 bits instead.
        arr = np.asarray(im, dtype=np.float64)
        peak = 65535.0 if im.mode.startswith("I;16") or arr.max() > 255 else 255.0
        arr8 = np.clip(np.round(arr * (255.0 / peak)), 0, 255).astype(np.uint8)
        return Image.fromarray(arr8, "L").convert("RGB")
    if im.mode == "F":
        arr = np.asarray(im, dtype=np.float64)
        return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "L").convert("RGB")
    if im.mode == "P" or im.mode == "LA" or im.mode == "PA":
        im = im.convert("RGBA")
    # CMYK, L, RGBA, YCbCr ...: Pillow's conversions are correct (alpha is dropped).
    return im.convert("RGB")


def _resize(im: Image.Image, size: int, method: str) -> Image.Image:
    if method == "squash":
        return im.resize((size, size), Image.BILINEAR)
    if method == "center-crop":
        w, h = im.size
        scale = size / min(w, h)
        nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
        im = im.resize((nw, nh), Image.BILINEAR)
        left, top = (nw - size) // 2, (nh - size) // 2
        return im.crop((left, top, left + size, top + size))
    raise ImageError(f"unknown resize method {method!r}; use one of {', '.join(RESIZE_METHODS)}")


def decode_image(
    source: str | Path | bytes, size: int, resize: str = "squash"
) -> tuple[np.ndarray, tuple[int, int]]:
    """Decode ``source`` (path or bytes) to a (size, size, 3) uint8 RGB array.

    Returns the array and the original (width, height).
    """
    try:
        fp = (io.BytesIO(source) if isinstance(source, bytes | bytearray)
              else open(source, "rb"))  # noqa: SIM115 - closed by the with below
    except OSError as exc:
        raise ImageError(f"cannot read file: {exc.strerror or exc}") from None
    with fp:
        try:
            im = Image.open(fp)
        except UnidentifiedImageError:
            empty = fp.seek(0, io.SEEK_END) == 0
            raise ImageError("empty file" if empty else "not an image") from None
        except Image.DecompressionBombError as exc:  # Pillow's own guard, at twice its limit
            raise ImageError(f"decompression bomb: {exc}") from None
        except Exception as exc:  # noqa: BLE001 - Pillow raises many kinds
            raise ImageError(f"cannot open image: {exc}") from None
        w, h = im.size
        if w * h > MAX_PIXELS:
            raise ImageError(f"decompression bomb: {w}x{h} pixels exceeds {MAX_PIXELS}")
        try:
            im.load()
            rgb = _to_rgb(im)
            out = np.asarray(_resize(rgb, size, resize), dtype=np.uint8)
        except ImageError:
            raise
        except Exception as exc:  # noqa: BLE001
            msg = str(exc) or type(exc).__name__
            raise ImageError(f"corrupt image: {msg}") from None
    if out.shape != (size, size, 3):
        raise ImageError(f"decoded to unexpected shape {out.shape}")
    return out, (w, h)


def decode_named(source: str | Path | bytes, size: int, resize: str = "squash",
                 name: str | None = None) -> np.ndarray:
    """:func:`decode_image`'s array, its error naming the image (``name``, else the path) for
    a user who sent several.

    >>> decode_named(b"", 16, name="upload.png")
    Traceback (most recent call last):
    actdb.errors.ImageError: upload.png: empty file
    """
    try:
        return decode_image(source, size, resize)[0]
    except ImageError as exc:
        what = name or (source if not isinstance(source, bytes | bytearray) else "image")
        raise ImageError(f"{what}: {exc}") from None


@dataclass(frozen=True, kw_only=True)
class Decoded:
    """A file decoded for a model: its pixels at the model's size, the original width and
    height, and the file's size in bytes."""

    array: np.ndarray
    width: int
    height: int
    nbytes: int


def decode_files(paths: list[str], size: int, resize: str = "squash"
                 ) -> list[Decoded | ImageError]:
    """Decode several files, for a worker: each item is a :class:`Decoded` or the
    :class:`ImageError` that file raised (a bad file never stops the others)."""
    out: list[Decoded | ImageError] = []
    for p in paths:
        try:
            arr, (w, h) = decode_image(p, size, resize)
            out.append(Decoded(array=arr, width=w, height=h, nbytes=Path(p).stat().st_size))
        except ImageError as exc:
            out.append(exc)
    return out
