"""Query benchmark at ImageNet-train scale: 1,281,167 synthetic 512-d vectors, 1,000 classes.

    python bench/query.py                        # the full size (~12 min here)
    python bench/query.py --n 20000 --classes 50 # smoke size

Writes a real store (Parquet shards + DuckDB catalog), then measures: the same-class /
random-pair distance ratio of the data; one full read of the Parquet files; `stats` time over
that read (target <= 3); per index kind: build time, index size, recall@50 against exact
search and `nearest -k 50` latency p50/p99 from a cached query vector (target for approximate
kinds: p50 <= 10 ms at recall >= 0.95); the exact kind's latency over raw FAISS flat search
(target <= 1.2); a typical class-stats SQL query's latency.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine_line, parser, peak_rss_mb, synthetic_activations  # noqa: E402

K = 50


def write_store(path: Path, n: int, dim: int, classes: int, seed: int) -> None:
    """A real store of synthetic vectors, committed in shards like an ingest."""
    from actdb.models.classes import class_index
    from actdb.store.manifest import Manifest
    from actdb.store.writer import StoreWriter

    idx = class_index()
    m = Manifest(model="synthetic", layer="none", pool="mean", dim=dim, image_size=0,
                 resize="none", precision="fp32", weights=f"synthetic:{seed}",
                 weights_sha256=f"synthetic-{seed}", fingerprint=f"synthetic-{seed}")
    next_id = 0
    with StoreWriter(path, m) as w:
        w.start_run("/synthetic", "synthetic", {"n": n, "seed": seed})
        for labels, x in synthetic_activations(n, dim, classes, seed, chunk=65536):
            ids = np.arange(next_id, next_id + len(x))
            rows = []
            for i, c in zip(ids, labels, strict=True):
                cls = idx.classes[int(c) % 1000]
                rows.append((int(i), "/synthetic", f"{cls.wnid}/{i}.JPEG", "train", cls.wnid,
                             cls.name, cls.index, 500, 375, 0))
            w.commit(ids, x, rows, [])
            next_id += len(x)
        w.finish_run("done", n, 0, 0)


def latency(fn, queries) -> tuple[float, float]:
    fn(queries[0])  # warm-up
    times = []
    for q in queries:
        t = time.perf_counter()
        fn(q)
        times.append(time.perf_counter() - t)
    return float(np.percentile(times, 50) * 1e3), float(np.percentile(times, 99) * 1e3)


def recall_at_k(got, truth) -> float:
    return float(np.mean([len(np.intersect1d(g, t)) / K for g, t in zip(got, truth,
                                                                        strict=False)]))


def measure_kind(store: Path, ids, vecs, kind: str, queries, truth) -> dict:
    """Build one index kind into the store, then time actdb's nearest and score its recall."""
    import actdb
    from actdb.index.faiss_index import IndexConfig, build, save_index

    rss0 = peak_rss_mb()
    t = time.perf_counter()
    index, info = build(ids, vecs, IndexConfig(kind=kind, recall_sample=500))
    build_s = time.perf_counter() - t
    save_index(store, index, info)
    del index
    db = actdb.open(store)
    p50, p99 = latency(lambda q: db.nearest(q, k=K), queries)
    got = db.nearest(queries, k=K).neighbors.image_id.to_numpy().reshape(len(queries), K)
    return {"build_s": build_s, "size_mb": (store / "index.faiss").stat().st_size / 1e6,
            "rss_mb": peak_rss_mb() - rss0, "recorded_recall": info["recall_at_50"],
            "tuned": {k: info[k] for k in ("nlist", "nprobe", "M", "efSearch") if k in info},
            "recall": recall_at_k(got, truth), "p50": p50, "p99": p99}


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--n", type=int, default=1_281_167, help="stored vectors")
    ap.add_argument("--dim", type=int, default=512, help="vector dimension")
    ap.add_argument("--classes", type=int, default=1000, help="classes of the synthetic data")
    ap.add_argument("--queries", type=int, default=200,
                    help="queries timed per approximate index kind")
    ap.add_argument("--exact-queries", type=int, default=30,
                    help="queries timed for exact search (each scans every vector)")
    ap.add_argument("--kinds", default="flat,ivf,hnsw", help="index kinds to build and time")
    ap.add_argument("--store", type=Path, help="where to write the store (default: a temp dir)")
    args = ap.parse_args()

    import faiss

    import actdb
    from actdb.store.store import Store

    print(machine_line())
    store = args.store or Path(tempfile.mkdtemp(prefix="actdb-bench-q-")) / "store"
    t = time.perf_counter()
    write_store(store, args.n, args.dim, args.classes, seed=0)
    print(f"store: {args.n} x {args.dim} vectors, {args.classes} classes, written in "
          f"{time.perf_counter() - t:.1f}s")

    t = time.perf_counter()
    ids, vecs = Store.open(store).vectors()
    read_s = time.perf_counter() - t
    print(f"full Parquet read: {read_s:.2f}s")
    rng = np.random.default_rng(1)
    qv = vecs[rng.choice(len(vecs), args.queries, replace=False)] + \
        rng.normal(0, 0.05, (args.queries, args.dim)).astype(np.float32)
    qv = np.maximum(qv, 0).astype(np.float32)
    t = time.perf_counter()
    _, truth_pos = faiss.knn(qv, vecs, K)
    truth = ids[truth_pos]
    print(f"exact ground truth for {args.queries} queries: {time.perf_counter() - t:.1f}s")

    raw = faiss.IndexFlatL2(args.dim)
    raw.add(vecs)
    eq = qv[: args.exact_queries]
    raw_p50, raw_p99 = latency(lambda q, index=raw: index.search(q[None], K), eq)
    print(f"raw FAISS IndexFlatL2 k={K}: p50 {raw_p50:.2f} ms, p99 {raw_p99:.2f} ms")
    raw.reset()

    for kind in args.kinds.split(","):
        m = measure_kind(store, ids, vecs, kind, eq if kind == "flat" else qv, truth)
        print(f"index {kind}: build {m['build_s']:.1f}s (incl. tuning), {m['size_mb']:.0f} MB "
              f"on disk, peak RSS +{m['rss_mb']:.0f} MB, {m['tuned']}, recorded recall@50 "
              f"{m['recorded_recall']}, bench recall@50 {m['recall']:.3f}; actdb nearest "
              f"k={K}: p50 {m['p50']:.2f} ms, p99 {m['p99']:.2f} ms")
        p50 = m["p50"]
        if kind == "flat":
            print(f"exact nearest / raw FAISS flat (p50): {p50 / raw_p50:.3f} (target <= 1.2)")
    # as after an ingest: statistics are computed once the (approximate) index exists
    t = time.perf_counter()
    db = actdb.open(store)
    st = db.stats()
    stats_s = time.perf_counter() - t
    ps = {r["kind"]: r for r in st["pair_stats"]}
    print(f"same-class / random-pair mean distance: "
          f"{ps['same_class']['mean'] / ps['random']['mean']:.3f} (target about 0.85)")
    print(f"stats: {stats_s:.2f}s = {stats_s / read_s:.2f}x one full read (target <= 3)")

    sql = "SELECT class_name, mean_dist FROM class_stats ORDER BY mean_dist LIMIT 5"
    p50, p99 = latency(lambda _: db.sql(sql), range(20))
    print(f"class-stats SQL ({sql}): p50 {p50:.1f} ms, p99 {p99:.1f} ms")
    print(f"peak RSS: {peak_rss_mb():.0f} MB")


if __name__ == "__main__":
    main()
