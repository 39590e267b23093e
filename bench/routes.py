"""Query routes: what each way of embedding a query image costs cold and how closely it gives a
stored image back, for an fp32 store and a bf16 store of VGG19 (``--weights random:0``: no
pretrained weights can be downloaded here).

For each store and route (the store's default, ``--runtime onnx``, ``--runtime keras``) it
prints the wall time of a new ``actdb nearest NEW.png -k 50`` process (median of ``--runs``,
each a new image, after one uncounted call that caches the bytecode and ONNX Runtime's
optimised graph; target <= 1.5 s) and the distance at which a stored image, asked by its
file, finds its own vector (target on the default route: <= 1e-6), beside the store's median
nearest-neighbour distance for scale.

    python bench/routes.py                 # ~4 min here
    python bench/routes.py --image-size 64 --runs 1 --precisions fp32
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
from common import installed_env, machine_line, make_jpeg_tree, parser  # noqa: E402


def nearest(store: Path, query: Path, env: dict, runtime: str | None) -> tuple[float, dict]:
    """(wall seconds, --json answer) of one new ``actdb nearest`` process."""
    cmd = [sys.executable, "-m", "actdb", "nearest", str(query), "-k", "50", "--json",
           "--store", str(store), *(["--runtime", runtime] if runtime else [])]
    t = time.perf_counter()
    out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True)
    return time.perf_counter() - t, json.loads(out.stdout)["queries"][0]


def self_distance(answer: dict, path: str) -> float | None:
    """The distance of the stored image ``path`` among a query's neighbours."""
    return next((n["distance"] for n in answer["neighbors"] if n["path"] == path), None)


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--image-size", type=int, default=224, help="the stores' input size")
    ap.add_argument("--runs", type=int, default=3, help="timed cold calls per route")
    ap.add_argument("--precisions", default="fp32,bf16", help="the stores: fp32, bf16 or both")
    args = ap.parse_args()
    import actdb

    print(machine_line())
    tmp = Path(tempfile.mkdtemp(prefix="actdb-bench-routes-"))
    tree = make_jpeg_tree(tmp / "imgs", 4, 6)
    from PIL import Image

    src = Image.open(next(tree.rglob("*.JPEG")))
    env = installed_env(tmp / "pycache")
    for precision in args.precisions.split(","):
        store = tmp / precision
        t = time.perf_counter()
        actdb.open(store).ingest(tree, weights="random:0", image_size=args.image_size,
                                 precision=precision, onnx=True)
        took = time.perf_counter() - t
        db = actdb.open(store)
        row = db.images().iloc[0]
        stored = Path(row.root) / row.path
        scale = db.space().nearest("id:0", k=1).answers[0].context["store_median_nn_distance"]
        print(f"{precision} store: {db.count()} images at {args.image_size} px ingested in "
              f"{took:.1f} s (its ONNX model kept: {db.spaces().onnx.iloc[0]}); default route "
              f"{db.info()['query_route']}; median nearest-neighbour distance {scale:.3g}",
              flush=True)
        for r, runtime in enumerate((None, "onnx", "keras")):
            walls = []
            for i in range(args.runs + 1):
                q = tmp / f"q-{precision}-{runtime}-{i}.png"
                # new content every call: two routes of one key share a cache
                src.rotate(7 * (r * (args.runs + 1) + i) + 3, expand=True).save(q)
                wall, answer = nearest(store, q, env, runtime)
                if i:
                    walls.append(wall)
            _, answer = nearest(store, stored, env, runtime)
            d = self_distance(answer, row.path)
            print(f"  {'--runtime ' + runtime if runtime else 'default':>16} "
                  f"({answer['context']['route']}): cold new image {np.median(walls):.2f} s "
                  f"(target <= 1.5); a stored image's distance to its own vector "
                  f"{'not among 50' if d is None else f'{d:.2g}'} (target <= 1e-6 on the "
                  "default)", flush=True)


if __name__ == "__main__":
    main()
