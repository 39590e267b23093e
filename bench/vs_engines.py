"""Nearest-neighbour search: actdb's index vs the engines a user would otherwise pick, on the
query benchmark's 1,281,167 x 512 synthetic store (overlapping classes, as hard as real
activations): scikit-learn NearestNeighbors (brute), DuckDB `array_distance ... ORDER BY ...
LIMIT k`, and DuckDB's `vss` HNSW index if it installs here. Build time, memory, p50/p99
latency of k=50 from a query vector, recall@50 against exact search.

    python bench/vs_engines.py                        # ~10 min here
    python bench/vs_engines.py --n 20000 --classes 50 # smoke size
    python bench/vs_engines.py --store /tmp/benchq/store   # reuse bench/query.py's store
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine_line, parser, peak_rss_mb  # noqa: E402
from query import K, latency, write_store  # noqa: E402
from query import recall_at_k as recall  # noqa: E402


def report(name: str, build_s: float, mem_mb: float, p50: float, p99: float, rec: float):
    print(f"{name}: build {build_s:.1f}s, memory {mem_mb:.0f} MB, k={K} p50 {p50:.2f} ms, "
          f"p99 {p99:.2f} ms, recall@50 {rec:.3f}")


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--n", type=int, default=1_281_167, help="stored vectors")
    ap.add_argument("--classes", type=int, default=1000, help="classes of the synthetic data")
    ap.add_argument("--queries", type=int, default=100, help="queries timed per actdb kind")
    ap.add_argument("--slow-queries", type=int, default=10,
                    help="queries timed for the exhaustive engines")
    ap.add_argument("--kinds", default="flat,ivfpq", help="actdb index kinds to compare")
    ap.add_argument("--store", type=Path,
                    help="reuse or write the store here (default: a temp dir)")
    args = ap.parse_args()

    import duckdb
    import faiss

    from actdb.store.catalog import files as store_files
    from actdb.store.catalog import reads
    from actdb.store.store import Store

    print(machine_line() + f", scikit-learn {__import__('sklearn').__version__}")
    store = args.store
    if store is None or not (store / "manifest.json").exists():
        store = store or Path(tempfile.mkdtemp(prefix="actdb-bench-e-")) / "store"
        write_store(store, args.n, 512, args.classes, seed=0)
    ids, vecs = Store.open(store).vectors()
    print(f"store: {len(ids)} x {vecs.shape[1]} vectors")
    rng = np.random.default_rng(1)
    qv = np.maximum(vecs[rng.choice(len(vecs), args.queries, replace=False)]
                    + rng.normal(0, 0.05, (args.queries, vecs.shape[1])), 0).astype(np.float32)
    _, pos = faiss.knn(qv, vecs, K)
    truth = ids[pos]
    slow = qv[: args.slow_queries]

    import actdb

    for kind in args.kinds.split(","):
        qs = slow if kind == "flat" else qv
        t = time.perf_counter()
        actdb.open(store).space().index(kind=kind)
        build_s = time.perf_counter() - t
        db = actdb.open(store)
        p50, p99 = latency(lambda q, db=db: db.space().nearest(q, k=K), qs)
        got = [a.image_id for a in db.space().nearest(qs, k=K).answers]
        report(f"actdb {kind}", build_s, (store / "index.faiss").stat().st_size / 1e6, p50,
               p99, recall(got, truth[: len(qs)]))

    from sklearn.neighbors import NearestNeighbors

    rss = peak_rss_mb()
    t = time.perf_counter()
    nn = NearestNeighbors(n_neighbors=K, algorithm="brute").fit(vecs)
    b = time.perf_counter() - t
    p50, p99 = latency(lambda q, nn=nn: nn.kneighbors(q[None]), slow)
    got = [ids[i] for i in nn.kneighbors(slow, return_distance=False)]
    report("scikit-learn NearestNeighbors(brute)", b, max(peak_rss_mb() - rss,
                                                          vecs.nbytes / 1e6),
           p50, p99, recall(got, truth[: len(slow)]))
    del nn  # free its copy before loading DuckDB's

    con = duckdb.connect()
    s = Store.open(store)
    with s.reader() as cat:
        names = reads.committed_shards(cat, s.space.name)
    files = ", ".join(f"'{store_files.shard_path(store, n)}'" for n in names)
    t = time.perf_counter()
    con.execute(f"CREATE TABLE v AS SELECT image_id, vec::FLOAT[{vecs.shape[1]}] AS vec "
                f"FROM read_parquet([{files}])")
    b = time.perf_counter() - t
    mem = con.execute("SELECT sum(memory_usage_bytes) FROM duckdb_memory()").fetchone()[0] / 1e6
    sql = (f"SELECT image_id FROM v ORDER BY array_distance(vec, ?::FLOAT[{vecs.shape[1]}]) "
           f"LIMIT {K}")

    def dq(q):
        return con.execute(sql, [q.tolist()]).fetchall()

    p50, p99 = latency(dq, slow)
    got = [np.array([r[0] for r in dq(q)]) for q in slow]
    report("DuckDB array_distance ORDER BY LIMIT", b, mem, p50, p99,
           recall(got, truth[: len(slow)]))
    try:
        con.execute("INSTALL vss")
        con.execute("LOAD vss")
    except duckdb.Error as exc:
        print(f"DuckDB vss: does not install here ({str(exc).splitlines()[0][:120]})")
    else:
        t = time.perf_counter()
        con.execute("CREATE INDEX vh ON v USING HNSW (vec)")
        b = time.perf_counter() - t
        p50, p99 = latency(dq, qv)
        got = [np.array([r[0] for r in dq(q)]) for q in qv]
        report("DuckDB vss HNSW", b, float("nan"), p50, p99, recall(got, truth))


if __name__ == "__main__":
    main()
