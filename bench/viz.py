"""Map benchmark: computing a map with UMAP and t-SNE (openTSNE, what actdb uses; scikit-learn's
t-SNE once, at the first size, for comparison) at 20,000 and 50,000 realistic 512-d
activation vectors (PCA to 50 dims first, as actdb does), how well each keeps the 10 nearest
neighbours, the size of the saved projection, and placing one new query into the finished
map (target: <= 300 ms once its vector is known). First, the first map of a small store as a
newcomer waits for it: ``actdb map`` in a new process (bytecode cached, as an install runs
it), by the default method (``auto``: t-SNE at this size) and by UMAP (target: <= 5 s).

    python bench/viz.py                  # ~15 min here
    python bench/viz.py --sizes 2000
    python bench/viz.py --sizes ''       # the cold first map alone
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import installed_env, machine_line, parser, realistic_activations  # noqa: E402


def knn_agreement(a: np.ndarray, b: np.ndarray, k: int = 10, sample: int = 5000) -> float:
    """How far a 2-D map keeps each point's k nearest neighbours of the 50-d input (on a
    sample of points)."""
    from sklearn.neighbors import NearestNeighbors

    idx = np.random.default_rng(0).choice(len(a), min(sample, len(a)), replace=False)
    na = NearestNeighbors(n_neighbors=k + 1).fit(a).kneighbors(a[idx], return_distance=False)
    nb = NearestNeighbors(n_neighbors=k + 1).fit(b).kneighbors(b[idx], return_distance=False)
    return float(np.mean([len(set(x[1:]) & set(y[1:])) / k for x, y in zip(na, nb,
                                                                            strict=True)]))


def placement_ms(proj, queries: np.ndarray) -> tuple[float, float]:
    """(first, p50 of the rest) milliseconds to place one query at a time."""
    times = []
    for q in queries:
        t = time.perf_counter()
        proj.transform(q[None])
        times.append((time.perf_counter() - t) * 1000)
    return times[0], float(np.median(times[1:]))


def cold_first_map(tmp: Path, points: int, methods: list[str], classes: int = 10) -> None:
    """Seconds of ``actdb map`` in a new process on a store of ``points`` vectors that has no
    map yet, by each method a newcomer meets first."""
    from query import write_store

    base = tmp / "cold"
    write_store(base, points, 512, classes, seed=0, generator=realistic_activations)
    env = installed_env(tmp / "pycache")
    cmd = [sys.executable, "-m", "actdb", "map", "--method"]
    subprocess.run([*cmd, "pca", "--store", str(base)], env=env, check=True,  # bytecode
                   capture_output=True)
    for method in methods:
        store = tmp / f"cold-{method}"
        shutil.copytree(base, store)
        t = time.perf_counter()
        done = subprocess.run([*cmd, method, "--store", str(store)], env=env,
                              capture_output=True, text=True)
        took = time.perf_counter() - t
        made = done.stdout.split(":")[0] if done.returncode == 0 else done.stderr.strip()
        print(f"cold first map, {points} points, new process: --method {method}: {took:.1f} s "
              f"({made}; target <= 5 s for the default)")


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--sizes", default="20000,50000",
                    help="comma-separated numbers of points to map")
    ap.add_argument("--cold-points", type=int, default=100,
                    help="points of the small store whose first map is timed cold")
    ap.add_argument("--cold-methods", default="auto,umap,tsne,pca",
                    help="the methods whose cold first map is timed (comma-separated)")
    args = ap.parse_args()
    from sklearn.decomposition import PCA

    from actdb.viz.projection import ProjectionConfig, Projector

    print(machine_line())
    tmp = Path(tempfile.mkdtemp(prefix="actdb-bench-viz-"))
    cold_first_map(tmp, args.cold_points, args.cold_methods.split(","))
    for i, n in enumerate(int(s) for s in args.sizes.split(",") if s):
        _, x = next(realistic_activations(n + 11, 512, max(10, n // 50), seed=0,
                                          chunk=n + 11))
        x, queries = x[:n], x[n:]  # 11 vectors the maps never saw
        x50 = PCA(50, random_state=0).fit_transform(x)
        for method, label in (("tsne", "openTSNE"), ("umap", "umap-learn")):
            proj = Projector(ProjectionConfig(method=method))
            t = time.perf_counter()
            xy = proj.fit(x)
            fit = time.perf_counter() - t
            path = tmp / f"{method}-{n}.pkl"
            proj.save(path)
            t = time.perf_counter()
            loaded = Projector.load(path)
            load = time.perf_counter() - t
            first, p50 = placement_ms(loaded, queries)
            print(f"map {method} ({label}) {n} points: {fit:.1f} s, 10-NN preserved "
                  f"{knn_agreement(x50, xy):.3f}; saved {path.stat().st_size / 1e6:.0f} MB, "
                  f"loaded in {load:.2f} s; placing a query: first {first:.0f} ms, then p50 "
                  f"{p50:.0f} ms (target <= 300)")
        if i == 0:
            from sklearn.manifold import TSNE

            t = time.perf_counter()
            sk = TSNE(2, perplexity=30, init="pca", random_state=0).fit_transform(x50)
            print(f"map tsne (scikit-learn, for comparison; cannot place queries) {n} points: "
                  f"{time.perf_counter() - t:.1f} s, 10-NN preserved "
                  f"{knn_agreement(x50, sk):.3f}")


if __name__ == "__main__":
    main()
