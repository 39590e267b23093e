"""The same network in both frameworks on this CPU: VGG19 to block5_conv4 in Keras
(TensorFlow) and torchvision (PyTorch, its ``features.35``), model-only img/s in fp32 and,
where the CPU has it, bf16; then a cold `actdb nearest image.png` on a torchvision space.

    python bench/frameworks.py                        # 224 px, batch 32 (~3 min)
    python bench/frameworks.py --size 32 --batch 4 --seconds 0.5 --images 8    # smoke size

Model-only: uint8 images in, pooled vectors out, as ingest feeds the model (each framework's
own preprocessing inside), random weights (the arithmetic is the same as trained ones').
Ratios are torch over Keras in this one run. The cold query: a store of --images images of
torchvision:vgg19 (random:0, fp32, its ONNX model kept by the ingest), then fresh `actdb
nearest NEW.png -k 5` processes (a new image each) with the default route (ONNX Runtime) and
--runtime torch, each the median of --runs after one uncounted call; the ONNX process's
imported frameworks are printed (none is the target).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import installed_env, machine_line, make_jpeg_tree, parser, rate  # noqa: E402


def model_only(size: int, batch: int, seconds: float) -> None:
    from actdb.models.common import cpu_has_bf16
    from actdb.models.embed import EmbedConfig, build_embedder

    x = np.random.default_rng(0).integers(0, 256, (batch, size, size, 3), dtype=np.uint8)
    precisions = ["fp32", "bf16"] if cpu_has_bf16() else ["fp32"]
    if len(precisions) == 1:
        print("bf16: this CPU has no native bf16 (avx512_bf16 / amx_bf16); fp32 only")
    for precision in precisions:
        got = {}
        for model in ("vgg19", "torchvision:vgg19"):
            emb = build_embedder(EmbedConfig(model=model, weights="random:0", image_size=size,
                                             precision=precision))
            got[model] = rate(emb.embed, x, seconds)
        keras, torch = got["vgg19"], got["torchvision:vgg19"]
        print(f"VGG19 block5_conv4 {size} px {precision}, batch {batch}, model-only: keras "
              f"{keras:.1f} img/s, torch {torch:.1f} img/s = {torch / keras:.2f}x", flush=True)


def cold_query(tmp: Path, size: int, images: int, runs: int) -> None:
    from PIL import Image

    import actdb

    root = make_jpeg_tree(tmp / "data", 2, max(1, images // 2))
    store = tmp / "store"
    t = time.perf_counter()
    with actdb.open(store) as db:
        db.ingest(root, model="torchvision:vgg19", weights="random:0", image_size=size,
                  precision="fp32")
    ingest_s = time.perf_counter() - t
    src = Image.open(next(root.rglob("*.JPEG")))
    env = installed_env(tmp / "pycache")
    code = ("import sys, json, actdb\n"
            "r = actdb.open(sys.argv[1]).space().nearest(sys.argv[2], k=5)\n"
            "print(json.dumps([r.answers[0].context['route']] + [m for m in "
            "('torch', 'tensorflow', 'keras') if m in sys.modules]))")
    q = tmp / "probe.png"
    src.save(q)
    probe = subprocess.run([sys.executable, "-c", code, str(store), str(q)], env=env,
                           capture_output=True, text=True, check=True)
    route, *imported = json.loads(probe.stdout.strip().splitlines()[-1])
    walls: dict[str, list[float]] = {"default": [], "torch": []}
    for i in range(runs + 1):
        for runtime in walls:
            q = tmp / f"q-{runtime}-{i}.png"
            src.rotate(7 * i + (runtime == "torch") + 1, expand=True).save(q)  # new content
            extra = [] if runtime == "default" else ["--runtime", runtime]
            t = time.perf_counter()
            subprocess.run([sys.executable, "-m", "actdb", "nearest", str(q), "-k", "5",
                            "--store", str(store), *extra], check=True,
                           stdout=subprocess.DEVNULL, env=env)
            if i:
                walls[runtime].append(time.perf_counter() - t)
    default, torch = (float(np.median(walls[r])) for r in ("default", "torch"))
    print(f"cold nearest NEW.png on a torchvision:vgg19 space ({size} px): default route "
          f"{route} {default:.2f} s (imports {', '.join(imported) or 'no framework'}), "
          f"--runtime torch {torch:.2f} s (target <= 1.5 s); ingest of {images} images with "
          f"the ONNX export and check {ingest_s:.1f} s", flush=True)


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--size", type=int, default=224, help="input size in pixels")
    ap.add_argument("--batch", type=int, default=32, help="images per forward pass")
    ap.add_argument("--seconds", type=float, default=15.0,
                    help="timed seconds per framework and precision")
    ap.add_argument("--images", type=int, default=40, help="images in the cold query's store")
    ap.add_argument("--runs", type=int, default=3, help="timed cold calls of each route")
    args = ap.parse_args()
    import torch

    print(machine_line() + f", torch {torch.__version__}", flush=True)
    model_only(args.size, args.batch, args.seconds)
    with tempfile.TemporaryDirectory(prefix="actdb-bench-frameworks-") as tmp:
        cold_query(Path(tmp), args.size, args.images, args.runs)


if __name__ == "__main__":
    main()
