"""Spaces benchmark: several layers of one network in one forward pass, and comparing spaces.

    python bench/spaces.py                     # VGG19 at 224 px, 96 images; CKA at 50,000 (~5 min)
    python bench/spaces.py --images 8 --size 32 --sample 2000   # smoke size

1. Layers in one pass: VGG19's block5_conv4 alone, block4_conv4 + block5_conv4 in one forward
   pass (one Keras model with two outputs, ``LayersEmbedder``), and the two layers as two
   separate passes; images/s each and the ratios (target: two layers in one pass <= 1.1x one).
2. Comparing spaces: linear CKA of every pair of three spaces (512-, 512- and 2,048-d, the
   dims of VGG19 block4_conv4 / block5_conv4 and ResNet50) over a seeded sample of ``--sample``
   images, the debiased minibatch estimate beside it, leave-one-out 10-NN accuracy (5,000
   queries) and the same/different-class distance ratio of each space (target: <= 60 s for
   three spaces at 50,000 on 2 cores). The vectors are synthetic (a shared class signal plus
   noise), so the figures are the arithmetic's cost, not a store's reading time.

Weights are random:0 (ImageNet weights cannot be downloaded here); speed does not depend on
the weights' values.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine_line, parser  # noqa: E402


def images_per_s(embed, images: np.ndarray, batch: int) -> float:
    embed(images[:batch])  # warm-up
    t = time.perf_counter()
    for i in range(0, len(images), batch):
        embed(images[i:i + batch])
    return len(images) / (time.perf_counter() - t)


def layers_in_one_pass(args) -> None:
    from actdb.models.embed import EmbedConfig, Embedder, LayersEmbedder

    cfg = EmbedConfig(weights="random:0", image_size=args.size, precision="fp32")
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (args.images, args.size, args.size, 3), dtype=np.uint8)
    one = Embedder(cfg)
    other = Embedder(EmbedConfig(**{**cfg.__dict__, "layer": "block4_conv4"}))
    both = LayersEmbedder(cfg, ["block4_conv4", "block5_conv4"])
    rates: dict[str, list[float]] = {"one": [], "both": [], "other": []}
    for _ in range(args.rounds):  # interleaved, best of each: the machine's load varies
        for name, emb in (("one", one), ("both", both), ("other", other)):
            rates[name].append(images_per_s(emb.embed, images, args.batch))
    r_one, r_both, r_other = (max(rates[k]) for k in ("one", "both", "other"))
    r_two = 1 / (1 / r_other + 1 / r_one)
    print(f"vgg19 {args.size} px, batch {args.batch}, {args.images} images, fp32, best of "
          f"{args.rounds} interleaved rounds:")
    print(f"  block5_conv4 alone:                 {r_one:7.1f} img/s")
    print(f"  block4_conv4 + block5_conv4, 1 pass: {r_both:7.1f} img/s  "
          f"time {r_one / r_both:.3f}x one layer (target <= 1.1x)")
    print(f"  the two layers as 2 passes:         {r_two:7.1f} img/s  "
          f"time {r_one / r_two:.3f}x one layer")


def comparing(args) -> None:
    from actdb import compare

    rng = np.random.default_rng(0)
    n, classes = args.sample, 1000
    labels = rng.integers(0, classes, n)
    signal = rng.normal(size=(classes, 64)).astype(np.float32)[labels]
    spaces = {}
    for name, dim, noise in (("b4", 512, 2.0), ("b5", 512, 1.0), ("resnet", 2048, 1.5)):
        mix = rng.normal(size=(64, dim)).astype(np.float32) / 8
        spaces[name] = signal @ mix + noise * rng.normal(size=(n, dim)).astype(np.float32) / 8
    print(f"compare: 3 spaces (512, 512, 2048-d), {n} images of {classes} classes")
    total = time.perf_counter()
    names = list(spaces)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            t = time.perf_counter()
            full = compare.linear_cka(spaces[a], spaces[b])
            t_full = time.perf_counter() - t
            t = time.perf_counter()
            mini = compare.minibatch_cka(spaces[a], spaces[b], batch=1000)
            t_mini = time.perf_counter() - t
            print(f"  CKA {a} ~ {b}: full {full:.4f} ({t_full:.2f} s), minibatch debiased "
                  f"{mini:.4f} ({t_mini:.2f} s)")
    for name, x in spaces.items():
        t = time.perf_counter()
        acc, asked = compare.knn_accuracy(x, labels, k=10, queries=5000)
        ratio = compare.same_over_different(x, labels)
        print(f"  {name}: 10-NN accuracy {acc:.3f} ({asked} queries), same/different "
              f"{ratio:.3f} ({time.perf_counter() - t:.2f} s)")
    print(f"  all of it: {time.perf_counter() - total:.1f} s (target <= 60 s at 50,000)")


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--images", type=int, default=96, help="images per embedding timing")
    ap.add_argument("--size", type=int, default=224, help="input size in pixels")
    ap.add_argument("--batch", type=int, default=32, help="images per forward pass")
    ap.add_argument("--sample", type=int, default=50_000, help="images in the CKA sample")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved timing rounds")
    args = ap.parse_args()
    print(machine_line())
    layers_in_one_pass(args)
    comparing(args)


if __name__ == "__main__":
    main()
