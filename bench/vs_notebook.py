"""actdb ingest vs the notebook way, on the same images, model and machine.

The notebook way is the obvious hand-written Keras code: load each image with
``keras.utils.load_img`` (bilinear, so the pixels match actdb's default resize),
``preprocess_input``, ``model.predict`` per image or per small batch, mean-pool with numpy,
append to a list, ``np.save``. Prints images/s of each and the ratio (target: actdb >= 2x in
fp32, more with bf16), and how far the vectors agree.

    python bench/vs_notebook.py               # 96 ImageNet-sized JPEGs at 224 px (~6 min)
    python bench/vs_notebook.py --images 16 --size 64
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine_line, make_jpeg_tree, parser  # noqa: E402


def notebook_way(files: list[Path], size: int, batch: int, out: Path) -> tuple[float, dict]:
    """What a researcher writes in a notebook. Returns (images/s, path -> vector)."""
    import keras

    from actdb.models.registry import seeded_weights

    t = time.perf_counter()  # from scratch to vectors on disk, like actdb's timing
    base = keras.applications.VGG19(include_top=False, weights=None,
                                     input_shape=(size, size, 3))
    seeded_weights(base, 0)  # actdb's random:0 weights (a notebook would load ImageNet's)
    cut = keras.Model(base.input, base.get_layer("block5_conv4").output)
    vecs = []
    for i in range(0, len(files), batch):
        imgs = [keras.utils.img_to_array(keras.utils.load_img(f, target_size=(size, size),
                                                              interpolation="bilinear"))
                for f in files[i : i + batch]]
        x = keras.applications.vgg19.preprocess_input(np.stack(imgs))
        act = cut.predict(x, verbose=0)
        vecs.extend(np.mean(act, axis=(1, 2)))
    np.save(out, np.stack(vecs))
    rate = len(files) / (time.perf_counter() - t)
    return rate, dict(zip(files, vecs, strict=True))


def actdb_way(root: Path, store: Path, size: int, precision: str) -> tuple[float, dict]:
    import actdb
    from actdb.ingest.pipeline import IngestConfig, ingest
    from actdb.models.embed import EmbedConfig

    t = time.perf_counter()
    ingest(IngestConfig(root=root, store=store, embed=EmbedConfig(
        weights="random:0", image_size=size, precision=precision)))
    s = actdb.open(store).store
    imgs = s.images()
    _, vecs = s.vectors(imgs.image_id.to_numpy())
    rate_all = len(imgs) / (time.perf_counter() - t)
    return rate_all, {Path(r) / p: v for r, p, v in zip(imgs.root, imgs.path, vecs,
                                                       strict=True)}


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--images", type=int, default=96, help="ImageNet-sized JPEGs to make")
    ap.add_argument("--size", type=int, default=224, help="input size in pixels")
    args = ap.parse_args()
    print(machine_line())
    tmp = Path(tempfile.mkdtemp(prefix="actdb-bench-nb-"))
    root = make_jpeg_tree(tmp / "data", 8, max(1, args.images // 8))
    files = sorted(root.rglob("*.JPEG"))
    print(f"images: {len(files)} JPEGs of 500x375 at {args.size}px, VGG19 block5_conv4, "
          "random:0 weights; both timed end to end, model build included (actdb also builds "
          "its index and statistics)")
    rates = {}
    for batch in (1, 8):
        rates[f"notebook batch {batch}"], nb = notebook_way(files, args.size, batch,
                                                            tmp / f"nb{batch}.npy")
        print(f"notebook, predict per {'image' if batch == 1 else f'batch of {batch}'}: "
              f"{rates[f'notebook batch {batch}']:.2f} img/s")
    for precision in ("fp32", "bf16"):
        rates[f"actdb {precision}"], got = actdb_way(root, tmp / f"store-{precision}",
                                                     args.size, precision)
        diff = max(float(np.max(np.abs(got[f] - nb[f]))) for f in files)
        scale = max(float(np.max(np.abs(nb[f]))) for f in files)
        print(f"actdb ingest {precision}: {rates[f'actdb {precision}']:.2f} img/s; "
              f"max abs difference from the notebook's vectors {diff:.3g} "
              f"(largest |value| {scale:.3g})")
    best_nb = max(rates["notebook batch 1"], rates["notebook batch 8"])
    for precision in ("fp32", "bf16"):
        mine = rates[f"actdb {precision}"]
        print(f"actdb {precision} / best notebook: {mine / best_nb:.2f}x; / notebook per "
              f"image: {mine / rates['notebook batch 1']:.2f}x (target >= 2x in fp32)")


if __name__ == "__main__":
    main()
