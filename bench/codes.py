"""What buys ivfpq recall per millisecond: code layouts compared at the same recall levels.

    python bench/codes.py                          # 1,281,167 realistic vectors (~10 min here)
    python bench/codes.py --store STORE            # an existing store's vectors
    FAISS_SIMD_LEVEL=AVX2 python bench/codes.py    # FAISS's AVX2 kernels on an AVX-512 CPU

Each layout is an IVF (the store's default number of lists) whose candidates are re-ranked
against the full vectors, as actdb's ``ivfpq`` index is:

- ``PQ{d/8}x4fs``: actdb's codes (4-bit fast-scan, d/16 bytes a vector);
- ``PQ{d/4}x4fs``: twice the sub-quantizers (finer codes, twice the bytes scanned);
- ``OPQ{d/8},PQ{d/8}x4fs``: a learned rotation before the same codes;
- ``PQ{d/8}x4fs + SQ8 re-rank``: the candidates re-ranked against 8-bit scalar-quantized
  vectors (a quarter of the bytes; its distances are no longer exact, so actdb could adopt it
  only with a last exact pass).

For every layout it measures recall@50 (against exact search) and the p50 of one query over
a grid of (nprobe, k_factor), through FAISS's own search (one core a query; actdb's split of
a query's lists over the cores speeds every layout alike), and prints for each recall level
the cheapest setting that reaches it:

    codes LAYOUT: build S s, B bytes a vector; recall >= R: nprobe N, k_factor F, recall X, p50 Y ms
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine_line, parser, realistic_activations  # noqa: E402

K = 50
LEVELS = (0.95, 0.99)
PROBES = (16, 32, 64, 96, 128, 192, 256, 384, 512, 768, 1024)
FACTORS = (5, 10, 20, 40)


def layouts(dim: int, nlist: int) -> dict[str, tuple[str, str]]:
    """name -> (FAISS factory string of the base index, re-ranking store)."""
    m = dim // 8
    return {f"PQ{m}x4fs": (f"IVF{nlist},PQ{m}x4fs", "flat"),
            f"PQ{2 * m}x4fs": (f"IVF{nlist},PQ{2 * m}x4fs", "flat"),
            f"OPQ{m},PQ{m}x4fs": (f"OPQ{m}_{dim},IVF{nlist},PQ{m}x4fs", "flat"),
            f"PQ{m}x4fs + SQ8 re-rank": (f"IVF{nlist},PQ{m}x4fs", "sq8")}


def build(factory: str, rerank: str, x: np.ndarray, train: np.ndarray):
    import faiss

    base = faiss.index_factory(x.shape[1], factory)
    faiss.extract_index_ivf(base).cp.seed = 0
    if rerank == "flat":
        index = faiss.IndexRefineFlat(base)
    else:
        index = faiss.IndexRefine(base, faiss.IndexScalarQuantizer(
            x.shape[1], faiss.ScalarQuantizer.QT_8bit))
    index.train(train)
    index.add(x)
    return index


def params(index, nprobe: int, k_factor: float):
    import faiss

    ivf = faiss.SearchParametersIVF(nprobe=nprobe)
    base = faiss.downcast_index(faiss.downcast_index(index).base_index)
    if isinstance(base, faiss.IndexPreTransform):
        ivf = faiss.SearchParametersPreTransform(index_params=ivf)
    return faiss.IndexRefineSearchParameters(k_factor=float(k_factor), base_index_params=ivf)


def measure(index, queries: np.ndarray, truth: np.ndarray, nlist: int, timed: int
            ) -> list[dict]:
    """Recall@50 and p50 ms of every grid setting (one query at a time, ``timed`` queries)."""
    points = []
    for nprobe in [p for p in PROBES if p <= nlist]:
        for f in FACTORS:
            p = params(index, nprobe, f)
            _, got = index.search(queries, K, params=p)
            recall = float(np.mean([len(np.intersect1d(g, t)) / K
                                    for g, t in zip(got, truth, strict=True)]))
            index.search(queries[:2], K, params=p)  # warm-up
            times = []
            for q in queries[:timed]:
                t = time.perf_counter()
                index.search(q[None], K, params=p)
                times.append(time.perf_counter() - t)
            points.append({"nprobe": nprobe, "k_factor": f, "recall": recall,
                           "p50": float(np.median(times) * 1e3)})
    return points


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--n", type=int, default=1_281_167, help="vectors (without --store)")
    ap.add_argument("--dim", type=int, default=512, help="vector dimension (without --store)")
    ap.add_argument("--classes", type=int, default=1000, help="classes (without --store)")
    ap.add_argument("--store", help="compare on this store's vectors instead")
    ap.add_argument("--queries", type=int, default=200, help="queries for recall")
    ap.add_argument("--timed", type=int, default=50, help="queries timed per setting")
    ap.add_argument("--layouts", help="comma-separated layout names (default: all)")
    args = ap.parse_args()

    import faiss

    from actdb.index.kinds import default_nlist

    print(machine_line())
    if args.store:
        from actdb.store.store import Store

        _, x = Store.open(args.store).vectors()
        what = f"the vectors of {args.store}"
    else:
        x = np.concatenate([v for _, v in realistic_activations(args.n, args.dim,
                                                                 args.classes)])
        what = f"realistic synthetic vectors, {args.classes} classes"
    x = np.ascontiguousarray(x, dtype=np.float32)
    n, dim = x.shape
    nlist = default_nlist(n)
    rng = np.random.default_rng(1)
    q = np.maximum(x[rng.choice(n, args.queries, replace=False)]
                   + rng.normal(0, 0.05, (args.queries, dim)).astype(np.float32), 0)
    q = q.astype(np.float32)
    _, truth = faiss.knn(q, x, K)
    train = x[np.sort(rng.choice(n, min(n, max(64 * nlist, 100_000)), replace=False))]
    print(f"{n:,} x {dim} ({what}), {nlist} lists, {args.queries} queries, "
          f"{args.timed} timed a setting", flush=True)
    chosen = layouts(dim, nlist)
    if args.layouts:
        chosen = {k: v for k, v in chosen.items() if k in args.layouts.split(",")}
    for name, (factory, rerank) in chosen.items():
        t = time.perf_counter()
        index = build(factory, rerank, x, train)
        build_s = time.perf_counter() - t
        ivf = faiss.extract_index_ivf(index)
        code = ivf.code_size if not hasattr(ivf, "M2") else ivf.M2 // 2
        points = measure(index, q, truth, nlist, args.timed)
        parts = []
        for level in LEVELS:
            reach = [p for p in points if p["recall"] >= level]
            if not reach:
                best = max(points, key=lambda p: p["recall"])
                parts.append(f"recall >= {level}: not reached (best {best['recall']:.3f})")
                continue
            p = min(reach, key=lambda p: p["p50"])
            parts.append(f"recall >= {level}: nprobe {p['nprobe']}, k_factor "
                         f"{p['k_factor']}, recall {p['recall']:.3f}, p50 {p['p50']:.2f} ms")
        print(f"codes {name}: build {build_s:.1f} s, {code} bytes a vector; "
              + "; ".join(parts), flush=True)
        del index


if __name__ == "__main__":
    main()
