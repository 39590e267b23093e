"""Ingest benchmark: pipeline vs model-only throughput, bf16 vs fp32, GFLOP/s, peak RSS.

    python bench/ingest.py                 # 192 ImageNet-sized JPEGs at 224 px (~6 min here)
    python bench/ingest.py --images 16 --size 64    # smoke size
    python bench/ingest.py --decode-only   # the decode stage alone: img/s per core, 1 and 2
                                           # workers; Pillow's draft mode on large JPEGs
    python bench/ingest.py --backend jax   # the model on another Keras backend
    python bench/ingest.py --engine ray --images 600   # Ray engine vs local engine

Everything is measured in this one run on the same images. Weights are random:0 (ImageNet
weights cannot be downloaded on the machines this was written on); speed does not depend on
the weights' values, fidelity figures are for random weights.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import conv_flops, machine_line, make_jpeg_tree, parser, peak_rss_mb, sgemm_gflops  # noqa: E402

WEIGHTS = "random:0"


def model_only(emb, images: np.ndarray, batch: int) -> tuple[float, np.ndarray]:
    """images/s of Embedder.embed alone on pre-decoded arrays (after a warm-up batch)."""
    emb.embed(images[:batch])
    t = time.perf_counter()
    out = [emb.embed(images[i : i + batch]) for i in range(0, len(images), batch)]
    return len(images) / (time.perf_counter() - t), np.concatenate(out)


def pipeline(root: Path, store: Path, precision: str, size: int, batch: int,
             limit: int | None = None, **options) -> float:
    """images/s of the full ingest, from its first progress report to its last."""
    return timed_ingest(root, store, precision, size, batch, limit, **options)[0]


def timed_ingest(root: Path, store: Path, precision: str, size: int, batch: int,
                 limit: int | None = None, **options) -> tuple[float, float]:
    """(images/s from the first progress report to the last, seconds to the first)."""
    from actdb.ingest.pipeline import IngestConfig, ingest
    from actdb.models.embed import EmbedConfig

    marks: list[tuple[float, int]] = []
    cfg = IngestConfig(root=root, store=store, batch_size=batch, limit=limit,
                       build_index=False, compute_stats=False,
                       embed=EmbedConfig(weights=WEIGHTS, image_size=size, precision=precision),
                       **options)
    start = time.perf_counter()
    ingest(cfg, progress=lambda done, total: marks.append((time.perf_counter(), done)))
    (t0, d0), (t1, d1) = marks[0], marks[-1]
    return ((d1 - d0) / (t1 - t0) if t1 > t0 else float("nan")), t0 - start


def ray_engine(args) -> None:
    """The Ray engine against the local one on the same JPEGs, start-up apart; and the Ray
    decode stage alone."""
    import logging

    import pyarrow as pa
    import ray
    import ray.data

    from actdb.ingest.ray_engine import _decode

    for name in ("ray", "ray.data"):  # Ray Data logs every run at INFO
        logging.getLogger(name).setLevel(logging.ERROR)

    print(machine_line())
    tmp = Path(tempfile.mkdtemp(prefix="actdb-bench-ray-"))
    root = make_jpeg_tree(tmp / "data", 8, max(1, args.images // 8))
    n = len(list(root.rglob("*.JPEG")))
    print(f"images: {n} JPEGs of 500x375 at --image-size {args.size}, batch {args.batch}, "
          f"ray {ray.__version__}")
    local, _ = timed_ingest(root, tmp / "local", "auto", args.size, args.batch,
                            rows_per_shard=args.batch)
    print(f"local engine: {local:.2f} img/s")
    t = time.perf_counter()
    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False,
             logging_level="ERROR")
    started = time.perf_counter() - t
    try:
        # results stream back in bursts (the executor runs ahead of the driver), so progress
        # marks do not time the steady state: time a run of one batch (the fixed cost: decode
        # workers and actors start, the actors build the model) and the whole run
        t = time.perf_counter()
        timed_ingest(root, tmp / "ray-one", "auto", args.size, args.batch, limit=args.batch,
                     engine="ray", rows_per_shard=args.batch)
        fixed = time.perf_counter() - t
        t = time.perf_counter()
        timed_ingest(root, tmp / "ray", "auto", args.size, args.batch, engine="ray",
                     rows_per_shard=args.batch)
        whole = time.perf_counter() - t
        rate = (n - args.batch) / max(whole - fixed, 1e-9)
        print(f"ray engine once running: {rate:.2f} img/s = {rate / local:.3f} of the local "
              f"engine (target >= 0.85); fixed start-up: ray.init {started:.1f} s, then "
              f"{fixed:.1f} s for a run of one batch (workers start, actors build the model); "
              f"the whole run {whole:.1f} s")
        files = [p.relative_to(root).as_posix() for p in sorted(root.rglob("*.JPEG"))]
        rows = pa.table({"seq": np.arange(len(files)), "path": files})
        ds = ray.data.from_arrow([rows.slice(i, 64) for i in range(0, len(files), 64)])
        ds = ds.map_batches(_decode, fn_kwargs={"size": args.size, "resize": "squash",
                                                "root": str(root)},
                            batch_size=None, batch_format="numpy", num_cpus=1)
        t = time.perf_counter()
        count = sum(len(b["seq"]) for b in ds.iter_batches(batch_size=256,
                                                            batch_format="numpy"))
        dt = time.perf_counter() - t
        cpus = os.cpu_count()
        print(f"ray decode stage alone: {count / dt:.1f} img/s on {cpus} CPUs = "
              f"{count / dt / cpus:.1f} img/s per CPU")
    finally:
        ray.shutdown()


def topk_overlap(a: np.ndarray, b: np.ndarray, k: int) -> float:
    """Mean overlap of each vector's k-nearest-neighbour sets under two embeddings."""
    def knn(x):
        d = ((x[:, None, :] - x[None, :, :]) ** 2).sum(-1)
        np.fill_diagonal(d, np.inf)
        return np.argsort(d, axis=1)[:, :k]

    na, nb = knn(a.astype(np.float64)), knn(b.astype(np.float64))
    return float(np.mean([len(set(x) & set(y)) / k for x, y in zip(na, nb, strict=True)]))


def decode_only(args) -> None:
    """The pipeline's decode stage with the model replaced by nothing: images/s in 1 and 2
    worker processes (and threads), per core; then full vs draft-mode decoding of large
    JPEGs (Pillow's DCT-domain downscaling)."""
    from actdb.images import decode_image
    from actdb.ingest.engine import decoded as _decoded
    from actdb.ingest.layout import detect_layout

    print(machine_line())
    tmp = Path(tempfile.mkdtemp(prefix="actdb-bench-dec-"))
    root = make_jpeg_tree(tmp / "data", 8, max(1, args.images // 8))
    entries = detect_layout(root).entries
    print(f"decode only: {len(entries)} JPEGs of 500x375 at {args.size} px, no model")
    rates = {}
    for mode in ("threads", "processes"):
        for workers in (1, 2):
            list(_decoded(entries[:8], root, args.size, "squash", workers, mode == "processes"))
            t = time.perf_counter()
            got = sum(1 for _ in _decoded(entries, root, args.size, "squash", workers,
                                          mode == "processes"))
            rates[mode, workers] = got / (time.perf_counter() - t)
            print(f"decode {mode}, {workers} worker(s): {rates[mode, workers]:.0f} img/s = "
                  f"{rates[mode, workers] / workers:.0f} img/s per worker")
    print(f"decode processes, 2 workers / 1 worker: "
          f"{rates['processes', 2] / rates['processes', 1]:.2f} (target >= 1.8)")
    big = make_jpeg_tree(tmp / "big", 1, 24, size=(1600, 1200))
    files = sorted(big.rglob("*.JPEG"))
    for name, draft in (("full", False), ("draft", True)):
        def one(f, draft=draft):
            from PIL import Image

            with Image.open(f) as im:
                if draft:
                    im.draft("RGB", (args.size, args.size))
                return np.asarray(im.convert("RGB").resize((args.size, args.size),
                                                           Image.BILINEAR))
        one(files[0])
        t = time.perf_counter()
        for f in files:
            one(f)
        print(f"1600x1200 JPEGs, {name} decode at {args.size} px: "
              f"{len(files) / (time.perf_counter() - t):.0f} img/s on one core")
    a = np.stack([decode_image(f, args.size)[0] for f in files]).astype(np.float64)
    b = np.stack([one(f, True) for f in files]).astype(np.float64)
    print(f"draft vs full decode of those: mean absolute pixel difference "
          f"{np.abs(a - b).mean():.2f} (of 255)")


def rss_child(root: str, store: str, size: int, batch: int, limit: int) -> None:
    pipeline(Path(root), Path(store), "auto", size, batch, limit)
    print(json.dumps({"peak_rss_mb": peak_rss_mb()}))


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--images", type=int, default=192, help="ImageNet-sized JPEGs to make")
    ap.add_argument("--size", type=int, default=224, help="input size in pixels")
    ap.add_argument("--batch", type=int, default=32, help="images per forward pass")
    ap.add_argument("--rss-child", nargs=2, metavar=("ROOT", "STORE"),
                    help="internal: ingest ROOT into STORE and print the peak RSS")
    ap.add_argument("--limit", type=int, help="internal: with --rss-child, images to ingest")
    ap.add_argument("--decode-only", action="store_true",
                    help="time the decode stage alone (no model), 1 and 2 workers")
    ap.add_argument("--engine", choices=("local", "ray"), default="local",
                    help="ray: compare the Ray engine with the local one")
    ap.add_argument("--backend", choices=("tensorflow", "jax", "torch"),
                    help="Keras backend for the model (default: KERAS_BACKEND, else tensorflow)")
    args = ap.parse_args()
    if args.backend:
        os.environ["KERAS_BACKEND"] = args.backend  # before Keras is imported
    if args.rss_child:
        rss_child(*args.rss_child, args.size, args.batch, args.limit)
        return
    if args.decode_only:
        decode_only(args)
        return
    if args.engine == "ray":
        ray_engine(args)
        return

    from actdb.images import decode_image
    from actdb.models.embed import EmbedConfig, Embedder, resolve_precision

    print(machine_line())
    tmp = Path(tempfile.mkdtemp(prefix="actdb-bench-"))
    classes = 8
    root = make_jpeg_tree(tmp / "data", classes, max(1, args.images // classes))
    files = sorted(root.rglob("*.JPEG"))
    n = len(files)
    print(f"images: {n} JPEGs of 500x375 at --image-size {args.size}, batch {args.batch}")
    t = time.perf_counter()
    images = np.stack([decode_image(f, args.size)[0] for f in files])
    decode_rate = n / (time.perf_counter() - t)  # one thread: one core
    cores = os.cpu_count() or 1

    res = {}
    for prec in ("fp32", "bf16"):
        emb = Embedder(EmbedConfig(weights=WEIGHTS, image_size=args.size, precision=prec))
        res[prec] = model_only(emb, images, args.batch)
        print(f"model-only {prec}: {res[prec][0]:.2f} img/s")
    flops = conv_flops(emb.model)
    default = resolve_precision("auto")
    pipe = {}
    for prec in ("fp32", "bf16"):
        pipe[prec] = pipeline(root, tmp / f"store-{prec}", prec, args.size, args.batch)
        # the model keeps every core busy, so decoding on the same cores costs its core-time
        model_s, decode_s = cores / res[prec][0], 1 / decode_rate  # core-seconds an image
        print(f"pipeline {prec}: {pipe[prec]:.2f} img/s; pipeline / model-only = "
              f"{pipe[prec] / res[prec][0]:.3f} (target >= 0.95; decoding at "
              f"{decode_rate:.0f} img/s a core on the model's {cores} cores caps it at "
              f"{model_s / (model_s + decode_s):.3f})")
    print(f"bf16 speed-up over fp32 (model-only): {res['bf16'][0] / res['fp32'][0]:.2f}x")
    a, b = res["fp32"][1], res["bf16"][1]
    cos = np.sum(a * b, 1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    k = min(50, n - 1)
    print(f"bf16 fidelity: mean cosine {cos.mean():.6f} (min {cos.min():.6f}); "
          f"top-{k} neighbour overlap {topk_overlap(a, b, k):.3f}")
    gemm = sgemm_gflops()
    for prec in ("fp32", "bf16"):
        print(f"forward GFLOP/s {prec}: {flops * res[prec][0] / 1e9:.1f} "
              f"({flops / 1e9:.2f} GFLOP per image)")
    print(f"numpy SGEMM GFLOP/s (2048^3 fp32): {gemm:.1f}")
    print(f"auto precision here: {default}")
    rss = []
    for limit in (n // 2, n):
        out = subprocess.run(
            [sys.executable, __file__, "--rss-child", str(root), str(tmp / f"rss-{limit}"),
             "--size", str(args.size), "--batch", str(args.batch), "--limit", str(limit)],
            capture_output=True, text=True, check=True)
        rss.append(json.loads(out.stdout.strip().splitlines()[-1])["peak_rss_mb"])
        print(f"peak RSS ingesting {limit} images: {rss[-1]:.0f} MB")
    print(f"peak RSS growth {n // 2} -> {n} images: {rss[1] / rss[0]:.3f}x")


if __name__ == "__main__":
    main()
