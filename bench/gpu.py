"""GPU ingest benchmark (run through bench/gpu.sh on a GPU machine; the CPU path runs too).

    bash bench/gpu.sh                              # on the GPU machine: ~20,000 images
    python bench/gpu.py --images 64 --size 64 --batches 8 --backends tensorflow   # CPU smoke

Makes ImageNet-sized JPEGs (500x375) on local disk with every core, then prints: model-only
img/s of VGG19 to block5_conv4 in bf16 at several batch sizes, for each Keras backend asked
(each in its own process: KERAS_BACKEND is fixed at import); decode-only img/s with N worker
processes (the ingest pipeline's decode stage with no model); and a full `actdb ingest` into
a real store, img/s once running, with the GPU's utilisation sampled meanwhile when
nvidia-smi answers. Where the pipeline falls short of model-only it says which stage limits
it. Targets on one H200: model-only bf16 >= 5,000 img/s; pipeline >= 3,000 img/s.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import make_jpeg_tree, parser  # noqa: E402


def make_images(root: Path, n: int, workers: int) -> Path:
    """n JPEGs in 100 class folders, written by ``workers`` processes."""
    per = max(1, n // 100)
    with ProcessPoolExecutor(workers) as pool:
        list(pool.map(_make_class, [(root, c, per) for c in range(100)]))
    return root


def _make_class(args) -> None:
    root, c, per = args
    make_jpeg_tree(root / f"c{c:03d}", 1, per, seed=c)


def model_only_child(size: int, batches: list[int], seconds: float) -> None:
    """In this process's backend: img/s of the model alone, bf16 (fp32 without native bf16)."""
    from actdb.models.embed import EmbedConfig, Embedder, backend, gpu_capability

    emb = Embedder(EmbedConfig(weights="random:0", image_size=size, precision="auto"))
    rng = np.random.default_rng(0)
    out = {"backend": backend(), "precision": emb.config.precision,
           "gpu": gpu_capability() is not None, "rates": {}}
    for b in batches:
        x = rng.integers(0, 256, (b, size, size, 3), dtype=np.uint8)
        emb.embed(x)
        n, t = 0, time.perf_counter()
        while time.perf_counter() - t < seconds:
            emb.embed(x)
            n += b
        out["rates"][b] = n / (time.perf_counter() - t)
    try:
        out["stages"] = stage_rates(emb, rng.integers(0, 256, (batches[-1], size, size, 3),
                                                      dtype=np.uint8), seconds)
    except Exception as e:  # noqa: BLE001 - the rates above still count
        out["stages_error"] = repr(e)[:300]
    print(json.dumps(out))


def stage_rates(emb, x: np.ndarray, seconds: float) -> dict[str, float]:
    """img/s of each stage of ``Embedder.embed`` alone on one batch: numpy preprocessing,
    the host-to-device copy of its float32 (and, for scale, of the uint8 images), and the
    compiled forward on an input already on the device; then the whole call."""
    import keras

    name = keras.backend.backend()
    if name == "jax":
        import jax

        def put(a):
            return jax.device_put(a)

        def sync(t):
            return jax.block_until_ready(t)
        tv = [v.value for v in emb.model.trainable_variables]
        ntv = [v.value for v in emb.model.non_trainable_variables]
        fwd = jax.jit(lambda a: emb.model.stateless_call(tv, ntv, a)[0])
        fwd8 = jax.jit(lambda a: emb.model.stateless_call(
            tv, ntv, emb.preprocess_tensor(a.astype("float32")))[0])
    elif name == "torch":
        import torch

        def put(a):
            return torch.from_numpy(a).to("cuda" if torch.cuda.is_available() else "cpu")

        def sync(t):
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            return t

        def fwd(a):
            with torch.no_grad():
                return emb.model(a, training=False)

        def fwd8(a):
            return fwd(emb.preprocess_tensor(a.float()))
    else:
        return {}
    pre = np.ascontiguousarray(emb.preprocess(x))  # caffe's BGR flip is a negative stride
    steps = {"preprocess (numpy)": lambda: emb.preprocess(x),
             "copy float32 to device": lambda: sync(put(pre)),
             "copy uint8 to device": lambda: sync(put(x))}
    dev = sync(put(pre))
    dev8 = sync(put(x))
    steps["forward on device"] = lambda: sync(fwd(dev))
    steps["uint8 forward on device (preprocess in graph)"] = lambda: sync(fwd8(dev8))
    steps["embed() whole"] = lambda: emb.embed(x)
    rates = {}
    for label, step in steps.items():
        try:
            step()
        except Exception as e:  # noqa: BLE001 - one stage failing leaves the others
            rates[label + f" failed: {e!r}"[:200]] = 0.0
            continue
        n, t = 0, time.perf_counter()
        while time.perf_counter() - t < min(seconds, 5.0):
            step()
            n += len(x)
        rates[label] = n / (time.perf_counter() - t)
    return rates


def gpu_sampler(stop: threading.Event, samples: list) -> None:
    """Sample nvidia-smi's utilisation every half second until ``stop``."""
    while not stop.wait(0.5):
        try:
            out = subprocess.run(["nvidia-smi", "--query-gpu=utilization.gpu",
                                  "--format=csv,noheader,nounits"], capture_output=True,
                                 text=True, timeout=5)
            samples.append(float(out.stdout.split()[0]))
        except (OSError, ValueError, IndexError, subprocess.SubprocessError):
            return


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--images", type=int, default=20_000, help="JPEGs to make and ingest")
    ap.add_argument("--size", type=int, default=224, help="input size in pixels")
    ap.add_argument("--batches", default="64,128,256", help="batch sizes for model-only")
    ap.add_argument("--backends", default="jax,torch", help="Keras backends for model-only")
    ap.add_argument("--workers", type=int, default=max(1, (os.cpu_count() or 2) - 1),
                    help="decoding worker processes (default: cores - 1)")
    ap.add_argument("--seconds", type=float, default=10.0,
                    help="seconds each model-only batch size is timed")
    ap.add_argument("--model-child", action="store_true",
                    help="internal: time the model alone in this process's backend")
    args = ap.parse_args()
    batches = [int(b) for b in args.batches.split(",")]
    if args.model_child:
        model_only_child(args.size, batches, args.seconds)
        return
    print(f"machine: {os.cpu_count()} cores, python {sys.version.split()[0]}", flush=True)
    try:
        smi = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total",
                              "--format=csv,noheader"], capture_output=True, text=True,
                             timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        smi = ""
    print(f"gpu: {smi or 'none (nvidia-smi did not answer)'}", flush=True)
    tmp = Path(os.environ.get("ACTDB_BENCH_DIR") or tempfile.mkdtemp(prefix="actdb-gpu-"))
    t = time.perf_counter()
    root = make_images(tmp / "data", args.images, args.workers + 1)
    n = sum(1 for _ in root.rglob("*.JPEG"))
    print(f"images: {n} JPEGs of 500x375 made in {time.perf_counter() - t:.1f}s", flush=True)

    best = 0.0
    for name in args.backends.split(","):
        env = {**os.environ, "KERAS_BACKEND": name}
        out = subprocess.run([sys.executable, __file__, "--model-child", "--size",
                              str(args.size), "--batches", args.batches, "--seconds",
                              str(args.seconds)], capture_output=True, text=True, env=env)
        if out.returncode:
            print(f"model-only {name}: failed ({out.stderr.strip().splitlines()[-1:]})")
            continue
        r = json.loads(out.stdout.strip().splitlines()[-1])
        rates = ", ".join(f"batch {b} {v:.0f}" for b, v in r["rates"].items())
        print(f"model-only {r['backend']} {r['precision']} ({'GPU' if r['gpu'] else 'CPU'}): "
              f"{rates} img/s (target >= 5000 on an H200)", flush=True)
        if r.get("stages_error"):
            print(f"  stages failed: {r['stages_error']}")
        if r.get("stages"):
            print(f"  stages at batch {batches[-1]}: " + ", ".join(
                f"{k} {v:.0f}" for k, v in r["stages"].items()) + " img/s", flush=True)
        best = max(best, *r["rates"].values())

    from actdb.ingest.engine import decoded as _decoded
    from actdb.ingest.layout import detect_layout

    entries = detect_layout(root).entries
    list(_decoded(entries[:64], root, args.size, "squash", args.workers, True))
    t = time.perf_counter()
    got = sum(1 for _ in _decoded(entries, root, args.size, "squash", args.workers, True))
    decode = got / (time.perf_counter() - t)
    print(f"decode-only, {args.workers} worker processes: {decode:.0f} img/s "
          f"({decode / args.workers:.0f} per worker)", flush=True)

    backend = args.backends.split(",")[0]
    env = {**os.environ, "KERAS_BACKEND": backend}
    samples: list[float] = []
    stop = threading.Event()
    sampler = threading.Thread(target=gpu_sampler, args=(stop, samples), daemon=True)
    sampler.start()
    t = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "actdb", "ingest", str(root), "--store",
                          str(tmp / "store"), "--weights", "random:0", "--image-size",
                          str(args.size), "--decoders", "processes", "--workers",
                          str(args.workers), "--json"], capture_output=True, text=True,
                         env=env)
    wall = time.perf_counter() - t
    stop.set()
    if out.returncode:
        print(f"ingest failed: {out.stderr.strip()[-500:]}")
        return
    res = json.loads(out.stdout)
    util = f", GPU utilisation mean {np.mean(samples):.0f}%" if samples else ""
    print(f"actdb ingest ({backend}, {res['precision']}): {res['ingested']} images, "
          f"{res['images_per_s']:.0f} img/s over the run, {wall:.0f}s wall with start-up, "
          f"index and statistics{util} (target >= 3000 img/s on an H200)", flush=True)
    rate = res["images_per_s"]
    limit = "decoding" if decode < best else "the model"
    print(f"pipeline / model-only: {rate / max(best, 1e-9):.2f}; decode-only / model-only: "
          f"{decode / max(best, 1e-9):.2f} -> the slower stage is {limit}")
    print(f"ImageNet train (1,281,167 images) at this rate: {1_281_167 / rate / 60:.1f} min")


if __name__ == "__main__":
    main()
