"""Class statistics: actdb's `stats` vs the straightforward pandas/numpy code, on the query
benchmark's 1,281,167 x 512 synthetic vectors in 1,000 classes: time and peak memory, each
in a fresh process, and whether they agree.

The straightforward code: a DataFrame of vectors plus a label column, ``groupby().mean()``
for centroids, member-to-centroid distances, the same number of sampled same-class and
different-class pairs per class (500) and 100,000 random pairs, with numpy.

    python bench/vs_pandas.py                         # ~6 min here
    python bench/vs_pandas.py --n 20000 --classes 50  # smoke size
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
from common import machine_line, parser, peak_rss_mb  # noqa: E402
from query import write_store  # noqa: E402


def run_actdb(store: Path) -> dict:
    import actdb

    t = time.perf_counter()
    res = actdb.open(store).space().stats()
    ps = {r["kind"]: r["mean"] for r in res["pair_stats"]}
    return {"seconds": time.perf_counter() - t, "peak_rss_mb": peak_rss_mb(),
            "same": ps["same_class"], "different": ps["different_class"],
            "random": ps["random"]}


def run_pandas(store: Path) -> dict:
    import pandas as pd
    import pyarrow.parquet as pq

    t = time.perf_counter()
    vec_tables = [pq.read_table(p) for p in sorted((store / "activations").glob("*.parquet"))]
    import duckdb

    labels = duckdb.connect(str(store / "catalog.duckdb"), read_only=True).execute(
        "SELECT image_id, synset FROM images").df()
    frames = []
    for tb in vec_tables:
        v = np.stack(tb.column("vec").to_numpy(zero_copy_only=False))
        frames.append(pd.DataFrame(v, index=tb.column("image_id").to_numpy()))
    df = pd.concat(frames)
    df["label"] = labels.set_index("image_id").loc[df.index, "synset"].to_numpy()
    centroids = df.groupby("label").mean()
    x = df.drop(columns="label").to_numpy()
    c = centroids.loc[df["label"]].to_numpy()
    member_dist = np.linalg.norm(x - c, axis=1)
    per_class = pd.Series(member_dist).groupby(df["label"].to_numpy()).agg(["mean", "std"])
    rng = np.random.default_rng(0)
    same, diff = [], []
    lab = df["label"].to_numpy()
    for name in centroids.index:
        members = np.flatnonzero(lab == name)
        others = np.flatnonzero(lab != name)
        i, j = rng.choice(members, 500), rng.choice(members, 500)
        keep = i != j
        same.append(np.linalg.norm(x[i[keep]] - x[j[keep]], axis=1))
        a, b = rng.choice(members, 500), rng.choice(others, 500)
        diff.append(np.linalg.norm(x[a] - x[b], axis=1))
    i, j = rng.integers(0, len(x), 100_000), rng.integers(0, len(x), 100_000)
    rand = np.linalg.norm(x[i] - x[j], axis=1)
    del per_class
    return {"seconds": time.perf_counter() - t, "peak_rss_mb": peak_rss_mb(),
            "same": float(np.concatenate(same).mean()),
            "different": float(np.concatenate(diff).mean()), "random": float(rand.mean())}


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--n", type=int, default=1_281_167, help="stored vectors")
    ap.add_argument("--classes", type=int, default=1000, help="classes of the synthetic data")
    ap.add_argument("--store", type=Path,
                    help="reuse or write the store here (default: a temp dir)")
    ap.add_argument("--child", choices=["actdb", "pandas"],
                    help="internal: run one side in this process and print JSON")
    args = ap.parse_args()
    if args.child:
        fn = run_actdb if args.child == "actdb" else run_pandas
        print(json.dumps(fn(args.store)))
        return
    print(machine_line() + f", pandas {__import__('pandas').__version__}")
    store = args.store
    if store is None or not (store / "manifest.json").exists():
        store = store or Path(tempfile.mkdtemp(prefix="actdb-bench-p-")) / "store"
        write_store(store, args.n, 512, args.classes, seed=0)
    res = {}
    for who in ("pandas", "actdb"):
        out = subprocess.run([sys.executable, __file__, "--child", who, "--store", str(store)],
                             capture_output=True, text=True, check=True)
        res[who] = json.loads(out.stdout.strip().splitlines()[-1])
        r = res[who]
        print(f"{who}: {r['seconds']:.1f}s, peak RSS {r['peak_rss_mb']:.0f} MB; mean pair "
              f"distances same {r['same']:.4f}, different {r['different']:.4f}, random "
              f"{r['random']:.4f}")
    a, p = res["actdb"], res["pandas"]
    print(f"actdb / pandas: time {a['seconds'] / p['seconds']:.2f}x, peak memory "
          f"{a['peak_rss_mb'] / p['peak_rss_mb']:.2f}x (both include reading the Parquet files; "
          "actdb also writes its tables; pair means differ only by sampling)")


if __name__ == "__main__":
    main()
