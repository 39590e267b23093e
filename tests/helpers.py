"""Test data made by the tests themselves: tiny ImageNet-style trees, fixed seeds."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

#: PyTorch's tests run where the [torch] extra is installed; found without importing torch
#: (its import costs seconds: the fast subset runs none of them)
needs_torch = pytest.mark.skipif(importlib.util.find_spec("torchvision") is None,
                                 reason="torchvision is not installed: pip install -e '.[torch]'")

#: Three real wnids (sea_cucumber, groenendael, tench) for ImageNet-style trees.
WNIDS = ("n02321529", "n02105056", "n01440764")
SIZE = 32  # --image-size used by tests: small so CI stays fast
WEIGHTS = "random:0"


def class_image(class_idx: int, i: int, size=(48, 40), seed: int = 0) -> Image.Image:
    """A synthetic image whose class is visible to a CNN: colour and stripe frequency."""
    rng = np.random.default_rng([seed, class_idx, i])
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.array([(60 + 80 * class_idx) % 256, (200 - 70 * class_idx) % 256,
                     (30 + 110 * class_idx) % 256], dtype=np.float64)
    stripes = 60 * np.sin(xx * (0.3 + 0.5 * class_idx) + yy * 0.2 * class_idx)[..., None]
    img = base + stripes + rng.normal(0, 12, (h, w, 3))
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), "RGB")


def make_tree(root: Path, classes=WNIDS, per_class: int = 4, ext: str = ".JPEG",
              seed: int = 0) -> Path:
    """ROOT/<class>/<class>_<i>.JPEG for each class."""
    for c, name in enumerate(classes):
        d = root / name
        d.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            class_image(c, i, seed=seed).save(d / f"{name}_{i}{ext}", "JPEG", quality=90)
    return root


def add_bad_files(folder: Path) -> dict[str, str]:
    """Hard-but-valid and broken files, as found in real ImageNet. Returns bad name -> kind."""
    folder.mkdir(parents=True, exist_ok=True)
    rgb = class_image(0, 99)
    rgb.convert("CMYK").save(folder / "cmyk.JPEG", "JPEG")
    rgb.convert("L").save(folder / "gray.JPEG", "JPEG")
    rgb.convert("RGBA").save(folder / "rgba.png")
    rgb.convert("P").save(folder / "palette.png")
    arr16 = (np.asarray(rgb.convert("L"), dtype=np.uint16) * 257)
    Image.fromarray(arr16).save(folder / "gray16.png")
    rgb.save(folder / "png_named.JPEG", "PNG")
    good = folder / "cmyk.JPEG"
    data = good.read_bytes()
    (folder / "truncated.JPEG").write_bytes(data[: len(data) // 2])
    (folder / "empty.JPEG").write_bytes(b"")
    (folder / "notimage.JPEG").write_bytes(b"this is not an image\n" * 10)
    bomb = Image.new("L", (9500, 9500))
    bomb.save(folder / "bomb.png", optimize=False)
    return {"truncated.JPEG": "corrupt", "empty.JPEG": "empty", "notimage.JPEG": "not an image",
            "bomb.png": "decompression bomb"}




def keras_reference(constructor: str, **kwargs):
    """Keras' own application with actdb's ``random:0`` weights (Keras initialises per
    backend; actdb draws the same Glorot-uniform kernels from a seeded NumPy generator)."""
    import keras

    from actdb.models.registry import seeded_weights

    model = getattr(keras.applications, constructor)(weights=None, **kwargs)
    seeded_weights(model, 0)
    return model


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not "
                                    "installed (.ci/run installs it)")


#: Where a page of actdb's may fetch from besides its own server: nothing leaves the machine.
LOCAL_SCHEMES = ("data:", "blob:", "file:", "about:")


def drag_across(page, selector: str) -> None:
    """Drag the mouse from corner to corner of the first element ``selector`` finds (a plotly
    map's drag layer: a box selection in ``select`` mode)."""
    box = page.locator(selector).first.bounding_box()
    page.mouse.move(box["x"] + 2, box["y"] + 2)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] - 2, box["y"] + box["height"] - 2, steps=8)
    page.mouse.up()


@contextlib.contextmanager
def browser_page(origin: str | None = None):
    """A headless Chromium page that refuses, and fails the test for, every request that
    leaves ``origin`` (the server's ``http://127.0.0.1:PORT``; None: local files only)."""
    sync_api = pytest.importorskip("playwright.sync_api")
    offsite: list[str] = []

    def guard(route):
        url = route.request.url
        if url.startswith(LOCAL_SCHEMES) or (origin and url.startswith(origin.rstrip("/") + "/")):
            route.continue_()
        else:
            offsite.append(url)
            route.abort()

    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync"])
        try:
            page = browser.new_page()
            page.route("**/*", guard)
            yield page
        finally:
            browser.close()
    assert not offsite, f"the page sent requests beyond {origin or 'its files'}: {offsite}"


#: plotly.js's controls that send a chart to a cloud service (its modebar's "Share chart...",
#: "Edit in Chart Studio").
CLOUD_CONTROLS = """() => {
  const titles = [...document.querySelectorAll('.modebar-btn')].map((b) => b.dataset.title || '');
  return {buttons: titles.length,
          cloud: titles.filter((t) => /share|cloud|chart studio/i.test(t))};
}"""


def assert_no_cloud_controls(page) -> None:
    """The page draws a plotly modebar, and nothing in it talks to a network."""
    found = page.evaluate(CLOUD_CONTROLS)
    assert found["buttons"] > 0 and found["cloud"] == [], found


#: Where tests leave pictures for review (screenshots): ignored by git.
ARTIFACTS = Path(__file__).resolve().parent.parent / ".test-artifacts"


def synthetic_store(path: Path, n: int, dim: int = 16, classes: int = 1000,
                    seed: int = 0) -> Path:
    """A store of ``n`` random vectors in ``classes`` ImageNet classes, without images or a
    model (for tests that need many points quickly)."""
    from actdb.models.classes import class_index
    from actdb.store.catalog.schema import ImageRow
    from actdb.store.manifest import Manifest
    from actdb.store.writer import StoreWriter

    idx = class_index()
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % classes
    centres = rng.normal(size=(classes, dim)).astype(np.float32)
    vecs = centres[labels] + 0.3 * rng.normal(size=(n, dim)).astype(np.float32)
    m = Manifest(model="synthetic", layer="none", pool="mean", dim=dim, image_size=0,
                 resize="none", precision="fp32", weights=f"synthetic:{seed}",
                 weights_sha256=f"synthetic-{seed}", fingerprint=f"synthetic-{seed}")
    rows = []
    for i, c in enumerate(labels):
        cls = idx.classes[int(c)]
        rows.append(ImageRow(image_id=i, root="/synthetic", path=f"{cls.wnid}/{i}.JPEG",
                             split="train", synset=cls.wnid, class_name=cls.name,
                             class_index=cls.index, width=500, height=375, bytes=0))
    with StoreWriter(path, m) as w:
        w.start_run("/synthetic", "synthetic", {"n": n, "seed": seed})
        w.commit(np.arange(n), [vecs], rows, [])
        w.finish_run("done", n, 0, 0)
    return path


def synthetic_spaces(path: Path, n: int = 9, dims: tuple[int, ...] = (4, 6), seed: int = 0,
                     root: str = "/x", scale: float = 1.0
                     ) -> tuple[Path, dict[str, np.ndarray]]:
    """A store of ``n`` images of three classes in spaces ``a``, ``b``... (one per entry of
    ``dims``, the first the default) of random vectors (times ``scale``), committed by one
    writer in shards of five; returns (path, vectors by space letter)."""
    from actdb.store.catalog.schema import ImageRow
    from actdb.store.manifest import Manifest
    from actdb.store.writer import StoreWriter

    rng = np.random.default_rng(seed)
    letters = "abcdefgh"[: len(dims)]
    vecs = {x: (scale * rng.normal(size=(n, d))).astype(np.float32)
            for x, d in zip(letters, dims, strict=True)}
    rows = [ImageRow(image_id=i, root=root, path=f"c{i % 3}/{i}.png", split="train",
                     synset=None, class_name=f"c{i % 3}", class_index=None, width=1,
                     height=1, bytes=0) for i in range(n)]
    manifests = [Manifest(model="synthetic", layer=x, pool="mean", dim=d, image_size=0,
                          resize="none", precision="fp32", weights="synthetic:0",
                          weights_sha256=f"sha-{x}", fingerprint=f"fp-{x}")
                 for x, d in zip(letters, dims, strict=True)]
    with StoreWriter(path, manifests) as w:
        w.start_run(root, "synthetic", {})
        for lo in range(0, n, 5):  # shards of five, the same names in every space
            ids = np.arange(lo, min(lo + 5, n))
            w.commit(ids, [vecs[x][ids] for x in letters], rows[lo: lo + 5], [])
        w.finish_run("done", n, 0, 0)
    return path, vecs


def python_json(code: str, timeout: int = 120):
    """Run ``code`` in a new interpreter (actdb from this checkout) and return the JSON of
    the last line it printed: what a fresh process imports and answers."""
    import json
    import subprocess
    import sys

    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=timeout, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])
