"""Spaces benchmark: several layers of one network in one forward pass, and comparing spaces.

    python bench/spaces.py                     # VGG19 at 224 px, 96 images; CKA at 50,000 (~15 min)
    python bench/spaces.py --images 8 --size 32 --sample 2000 --store-images 3000  # smoke
    python bench/spaces.py --sections store --store-images 1281167 --index-kind none

1. Layers in one pass: VGG19's block5_conv4 alone, block4_conv4 + block5_conv4 in one forward
   pass (one Keras model with two outputs, ``LayersEmbedder``), and the two layers as two
   separate passes; images/s each and the ratios (target: two layers in one pass <= 1.1x one).
2. Comparing spaces: linear CKA of every pair of three spaces (512-, 512- and 2,048-d, the
   dims of VGG19 block4_conv4 / block5_conv4 and ResNet50) over a seeded sample of ``--sample``
   images, the debiased minibatch estimate beside it, leave-one-out 10-NN accuracy (5,000
   queries) and the same/different-class distance ratio of each space (target: <= 60 s for
   three spaces at 50,000 on 2 cores). The vectors are synthetic (a shared class signal plus
   noise), so the figures are the arithmetic's cost, not a store's reading time.
3. Spaces in a store, end to end (a JPEG tree of ``--images`` images at ImageNet's size):
   ``ingest --layers block4_conv4,block5_conv4`` against ``ingest`` of block5_conv4 alone, and
   against adding block4_conv4 afterwards (a second pass that decodes every image again)
   (target: <= 1.1x one layer); then ResNet50 added as a third space, and a new image asked
   of all three spaces at once (``across_spaces``, the image embedded once per network)
   against ``nearest`` in one space (target: <= 3x).
4. ``compare`` on a store: a store of ``--store-images`` synthetic vectors in three spaces
   (512, 512, 2,048-d), each indexed (``--index-kind``), compared on a ``--sample`` sample,
   reading the sample from the spaces' memory-mapped indexes, or with ``--index-kind none``
   from the shards, every one of which holds sample rows (target: <= 60 s for three spaces of
   1,281,167 images at 50,000).

``--sections`` picks among layers, arithmetic, ingest, store (default: all).

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
    from actdb import similarity

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
            full = similarity.linear_cka(spaces[a], spaces[b])
            t_full = time.perf_counter() - t
            t = time.perf_counter()
            mini = similarity.minibatch_cka(spaces[a], spaces[b], batch=1000)
            t_mini = time.perf_counter() - t
            print(f"  CKA {a} ~ {b}: full {full:.4f} ({t_full:.2f} s), minibatch debiased "
                  f"{mini:.4f} ({t_mini:.2f} s)")
    for name, x in spaces.items():
        t = time.perf_counter()
        acc, asked = similarity.knn_accuracy(x, labels, k=10, queries=5000)
        ratio = similarity.same_over_different(x, labels)
        print(f"  {name}: 10-NN accuracy {acc:.3f} ({asked} queries), same/different "
              f"{ratio:.3f} ({time.perf_counter() - t:.2f} s)")
    print(f"  all of it: {time.perf_counter() - total:.1f} s (target <= 60 s at 50,000)")


def ingest_layers(args, work: Path) -> Path:
    """Section 3's ingests; returns the three-space store."""
    from common import make_jpeg_tree

    import actdb

    tree = make_jpeg_tree(work / "tree", classes=4, per_class=max(1, args.images // 4))
    recipe = {"weights": "random:0", "image_size": args.size, "precision": "fp32",
              "batch_size": args.batch}
    times: dict[str, list[float]] = {"one": [], "both": [], "added": []}
    for r in range(args.rounds):  # interleaved, best of each
        one = actdb.open(work / f"one{r}").ingest(tree, **recipe)
        times["one"].append(one.seconds)
        both = actdb.open(work / f"both{r}").ingest(tree, layers="block4_conv4,block5_conv4",
                                                    **recipe)
        times["both"].append(both.seconds)
        db = actdb.open(work / f"added{r}")
        first = db.ingest(tree, **recipe)
        times["added"].append(first.seconds + db.ingest(tree, layer="block4_conv4",
                                                        **recipe).seconds)
    t_one, t_both, t_added = (min(times[k]) for k in ("one", "both", "added"))
    n = one.ingested
    print(f"ingest, {n} JPEGs, vgg19 {args.size} px fp32, best of {args.rounds} (whole "
          "ingest: decode, model, shards, catalog):")
    print(f"  block5_conv4 alone:                      {t_one:7.2f} s  {n / t_one:6.1f} img/s")
    print(f"  --layers block4_conv4,block5_conv4:      {t_both:7.2f} s  time "
          f"{t_both / t_one:.3f}x one layer (target <= 1.1x)")
    print(f"  block5_conv4, then block4_conv4 added:   {t_added:7.2f} s  time "
          f"{t_added / t_one:.3f}x one layer")
    store = work / "both0"
    t = time.perf_counter()
    actdb.open(store).ingest(tree, model=args.added_model, **recipe)
    print(f"  {args.added_model + ' added as a third space:':<41}{time.perf_counter() - t:7.2f} s "
          "(model build, fill, index, statistics)")
    return store


def asking_every_space(args, store: Path, work: Path) -> None:
    """Section 3's queries: new images (never cached), one space against all three."""
    from common import make_jpeg_tree

    import actdb

    queries = sorted(make_jpeg_tree(work / "queries", classes=1,
                                    per_class=2 * args.asks + 2, seed=7).rglob("*.JPEG"))
    with actdb.open(store) as db:
        db.space().nearest(str(queries[0]), k=50)  # the models built, the index loaded
        db.across_spaces(str(queries[1]), k=50)
        one, every = [], []
        for i in range(args.asks):  # interleaved, each a new image
            t = time.perf_counter()
            db.space().nearest(str(queries[2 + 2 * i]), k=50)
            one.append(time.perf_counter() - t)
            t = time.perf_counter()
            db.across_spaces(str(queries[3 + 2 * i]), k=50)
            every.append(time.perf_counter() - t)
        spaces = ", ".join(db.spaces().name)
    t_one, t_every = float(np.median(one)), float(np.median(every))
    print(f"a new image, k=50, median of {args.asks} ({spaces}):")
    print(f"  nearest in the default space:  {1000 * t_one:8.1f} ms")
    print(f"  every space (--space all):     {1000 * t_every:8.1f} ms  "
          f"{t_every / t_one:.2f}x one space (target <= 3x)")
    cold_every_space(store, queries[2:], work)


def cold_every_space(store: Path, queries: list[Path], work: Path) -> None:
    """`actdb nearest NEW.png` against `actdb nearest NEW.png --space all`, each a new process
    (bytecode cached, as an install runs it) and a new image, in turn; one uncounted call of
    each first (the bytecode, ONNX Runtime's optimised graphs)."""
    import subprocess

    from common import installed_env

    env = installed_env(work / "pycache")
    walls: dict[str, list[float]] = {"one": [], "all": []}
    for i, q in enumerate(queries):
        for kind in walls:
            cmd = [sys.executable, "-m", "actdb", "nearest", str(q), "-k", "50", "--store",
                   str(store), *(["--space", "all"] if kind == "all" else [])]
            t = time.perf_counter()
            subprocess.run(cmd, env=env, check=True, capture_output=True)
            if i:
                walls[kind].append(time.perf_counter() - t)
    one, every = (float(np.median(walls[k])) for k in ("one", "all"))
    print(f"  cold, a new process and image:  one space {one:.2f} s, every space "
          f"(--space all) {every:.2f} s = {every / one:.2f}x one space (target <= 2.5x)")


def compare_store(args, work: Path) -> None:
    """Section 4: compare on a store of synthetic vectors in three indexed spaces."""
    import actdb
    from actdb.models.classes import class_index
    from actdb.store.catalog.schema import ImageRow
    from actdb.store.manifest import Manifest
    from actdb.store.writer import StoreWriter

    n, classes = args.store_images, 1000
    rng = np.random.default_rng(0)
    labels = np.arange(n) % classes
    idx = class_index()
    dims = {"b4": 512, "b5": 512, "resnet": 2048}
    mixes = {k: rng.normal(size=(64, d)).astype(np.float32) / 8 for k, d in dims.items()}
    centres = rng.normal(size=(classes, 64)).astype(np.float32)
    store = work / "compared"
    manifests = [Manifest(model="synthetic", layer=k, pool="mean", dim=d, image_size=0,
                          resize="none", precision="fp32", weights="synthetic:0",
                          weights_sha256=f"sha-{k}", fingerprint=f"fp-{k}")
                 for k, d in dims.items()]
    t = time.perf_counter()
    with StoreWriter(store, manifests) as w:
        w.start_run("/synthetic", "synthetic", {})
        for lo in range(0, n, 65536):
            ids = np.arange(lo, min(lo + 65536, n))
            sig = centres[labels[ids]]
            vecs = [sig @ mixes[k] + rng.normal(size=(len(ids), d)).astype(np.float32) / 8
                    for k, d in dims.items()]
            rows = [ImageRow(image_id=int(i), root="/synthetic", path=f"{i}.JPEG",
                             split="train", synset=idx.classes[int(labels[i])].wnid,
                             class_name=idx.classes[int(labels[i])].name,
                             class_index=int(labels[i]), width=500, height=375, bytes=0)
                     for i in ids]
            w.commit(ids, vecs, rows, [])
        w.finish_run("done", n, 0, 0)
    with actdb.open(store) as db:
        for name in db.spaces().name if args.index_kind != "none" else ():
            db.space(name).index(kind=args.index_kind)
        made = time.perf_counter() - t
        t = time.perf_counter()
        res = db.compare(sample=args.sample)
        took = time.perf_counter() - t
        kinds = ", ".join(f"{r.name} {r.index}" for r in db.spaces().itertuples())
    print(f"compare on a store: {n} images in 3 spaces (512, 512, 2048-d; indexes {kinds}; "
          f"made and indexed in {made:.0f} s), sample {args.sample}:")
    for r in res.similarity.itertuples():
        print(f"  CKA {r.space_a} ~ {r.space_b}: {r.cka:.4f} ({r.method})")
    for r in res.separation.itertuples():
        print(f"  {r.space}: {r.k}-NN accuracy {r.knn_accuracy:.3f}, same/different "
              f"{r.same_over_different:.3f}")
    print(f"  compare, reading the sample included: {took:.1f} s (target <= 60 s at 50,000)")


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--images", type=int, default=96, help="images per embedding timing")
    ap.add_argument("--size", type=int, default=224, help="input size in pixels")
    ap.add_argument("--batch", type=int, default=32, help="images per forward pass")
    ap.add_argument("--sample", type=int, default=50_000, help="images in the CKA sample")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved timing rounds")
    ap.add_argument("--asks", type=int, default=5, help="new images asked, one space vs all")
    ap.add_argument("--added-model", default="resnet50", help="the network added to the "
                    "two-layer store as a third space")
    ap.add_argument("--store-images", type=int, default=100_000,
                    help="images of the synthetic store compare reads")
    ap.add_argument("--index-kind", default="auto", help="index of each space of that store "
                    "(none: compare reads the sample from the shards)")
    ap.add_argument("--sections", default="layers,arithmetic,ingest,store",
                    help="which parts to run (comma-separated)")
    args = ap.parse_args()
    sections = set(args.sections.split(","))
    print(machine_line())
    if "layers" in sections:
        layers_in_one_pass(args)
    if "arithmetic" in sections:
        comparing(args)
    import tempfile

    with tempfile.TemporaryDirectory(prefix="actdb-bench-spaces-") as tmp:
        work = Path(tmp)
        if "ingest" in sections:
            store = ingest_layers(args, work)
            asking_every_space(args, store, work)
        if "store" in sections:
            compare_store(args, work)


if __name__ == "__main__":
    main()
