"""Projection benchmark: t-SNE (scikit-learn, and openTSNE for comparison) and UMAP on
2,000 and 20,000 synthetic 512-d activation vectors, PCA to 50 dims first as actdb does.

    python bench/viz.py                  # ~10 min here
    python bench/viz.py --sizes 500
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine_line, parser, synthetic_activations  # noqa: E402


def knn_agreement(a: np.ndarray, b: np.ndarray, k: int = 10) -> float:
    """How far a 2-D map keeps each point's k nearest neighbours of the 50-d input."""
    from sklearn.neighbors import NearestNeighbors

    na = NearestNeighbors(n_neighbors=k + 1).fit(a).kneighbors(a, return_distance=False)[:, 1:]
    nb = NearestNeighbors(n_neighbors=k + 1).fit(b).kneighbors(b, return_distance=False)[:, 1:]
    return float(np.mean([len(set(x) & set(y)) / k for x, y in zip(na, nb, strict=True)]))


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--sizes", default="2000,20000",
                    help="comma-separated numbers of points to project")
    args = ap.parse_args()
    from sklearn.decomposition import PCA

    from actdb.viz.data import ProjectionConfig, project

    print(machine_line())
    for n in (int(s) for s in args.sizes.split(",")):
        _, x = next(synthetic_activations(n, 512, 20, seed=0, chunk=n))
        x50 = PCA(50, random_state=0).fit_transform(x)
        q = x[:1]
        for method in ("tsne", "umap"):
            t = time.perf_counter()
            xc, _ = project(x, q, ProjectionConfig(method))
            s = time.perf_counter() - t
            print(f"{method} ({'scikit-learn' if method == 'tsne' else 'umap-learn'}) "
                  f"{n} points: {s:.1f}s, 10-NN preserved {knn_agreement(x50, xc):.3f}")
        try:
            from openTSNE import TSNE as OpenTSNE
        except ImportError:
            print("openTSNE not installed: pip install openTSNE to compare")
            continue
        t = time.perf_counter()
        emb = OpenTSNE(n_components=2, perplexity=30, random_state=0, n_jobs=-1).fit(x50)
        s = time.perf_counter() - t
        print(f"tsne (openTSNE) {n} points: {s:.1f}s, 10-NN preserved "
              f"{knn_agreement(x50, np.asarray(emb)):.3f}")


if __name__ == "__main__":
    main()
