"""Thumbnails of stored images, the one code every picture of a stored image goes through (the
report, the atlas, the exports, the service, results in a notebook, the live map): JPEG bytes,
never enlarged, a grey tile for a missing or broken file, and as data: URIs.

>>> thumbnail(io.BytesIO(b"not an image"), 8)[:2] == b"\\xff\\xd8"  # a grey JPEG tile
True
"""

from __future__ import annotations

import base64
import io
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path


def data_uri(data: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def thumbnail(source, size: int) -> bytes:
    """JPEG bytes of a thumbnail (a grey tile when the file is missing or broken)."""
    from PIL import Image

    try:
        with Image.open(source) as im:
            im.draft("RGB", (size * 2, size * 2))
            im = im.convert("RGB")
            im.thumbnail((size, size))
    except Exception:  # noqa: BLE001 - a missing or broken file shows as a blank tile
        im = Image.new("RGB", (size, size), (220, 220, 220))
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=85)
    return buf.getvalue()


def thumbnails(paths: list[Path | None], size: int) -> list[bytes]:
    """JPEG thumbnails (grey tiles for missing or broken files), decoded in parallel."""

    def one(p):
        return thumbnail(p if p is not None else io.BytesIO(b""), size)

    with ThreadPoolExecutor() as pool:  # Pillow decodes without the GIL
        return list(pool.map(one, paths, chunksize=64))


def stored_file(root, path) -> Path | None:
    """A stored image's file, None when it is not inside its dataset root."""
    if root is None or path is None:
        return None
    base = Path(root).resolve()
    full = (base / path).resolve()
    return full if full.is_relative_to(base) else None
