"""The FAISS index of a store: ids are image_ids; ``index.json`` says how it was built.

Kinds: ``flat`` (exact), ``ivf`` (IVF-Flat, ``nprobe`` tuned), ``hnsw`` (HNSW-Flat, ``efSearch``
tuned). ``auto`` is exact while a search over the whole store takes a few ms, approximate above,
tuned so recall@50 against exact search is at least ``target_recall`` on a sample of the
store's own vectors. Metrics: ``l2`` (the original study's; distances reported as L2, not
squared) and ``cosine`` (vectors normalised, distance = 1 - cosine similarity).

>>> x = np.random.default_rng(0).random((200, 8), dtype=np.float32)
>>> index, info = build(np.arange(200), x, IndexConfig(kind="flat"))
>>> info["kind"], info["ntotal"], info["recall_at_50"]
('flat', 200, 1.0)
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from actdb.errors import StoreDamaged, StoreError, UsageError
from actdb.store.catalog.files import INDEX, INDEX_INFO, index_info_path, index_path

KINDS = ("auto", "flat", "ivf", "hnsw")
METRICS = ("l2", "cosine")
#: auto picks exact search up to this many vector components (n * dim): ~100k x 512-d.
AUTO_EXACT_MAX = 50_000_000
RECALL_K = 50


@dataclass(frozen=True)
class IndexConfig:
    """How to build the index."""

    kind: str = "auto"
    metric: str = "l2"
    target_recall: float = 0.95
    recall_sample: int = 1000
    seed: int = 0
    hnsw_m: int = 32


def _faiss():
    import faiss

    return faiss


def index_ids(index) -> np.ndarray:
    """The ids held by an IndexIDMap2-wrapped index."""
    return _faiss().vector_to_array(index.id_map).astype(np.int64)


def prepare(vecs: np.ndarray, metric: str) -> np.ndarray:
    """Vectors as the index sees them (float32, unit length for cosine)."""
    x = np.ascontiguousarray(vecs, dtype=np.float32)
    if metric == "cosine":
        x = x.copy()
        _faiss().normalize_L2(x)
    return x


def to_distance(raw: np.ndarray, metric: str) -> np.ndarray:
    """FAISS scores -> reported distances (L2, or 1 - cosine)."""
    if metric == "cosine":
        return 1.0 - raw
    return np.sqrt(np.maximum(raw, 0.0))


def _make(kind: str, metric: str, dim: int, n: int, cfg: IndexConfig):
    faiss = _faiss()
    mt = faiss.METRIC_INNER_PRODUCT if metric == "cosine" else faiss.METRIC_L2
    if kind == "flat":
        inner = faiss.IndexFlat(dim, mt)
        params = {}
    elif kind == "ivf":
        nlist = int(max(1, min(4 * math.sqrt(n), n // 39)))
        quant = faiss.IndexFlat(dim, mt)
        inner = faiss.IndexIVFFlat(quant, dim, nlist, mt)
        inner.cp.seed = cfg.seed
        params = {"nlist": nlist}
    elif kind == "hnsw":
        inner = faiss.IndexHNSWFlat(dim, cfg.hnsw_m, mt)
        inner.hnsw.efConstruction = 40
        params = {"M": cfg.hnsw_m}
    else:
        raise UsageError(f"unknown index kind {kind!r}; use one of {', '.join(KINDS)}")
    return faiss.IndexIDMap2(inner), params


def _inner(index):
    return _faiss().downcast_index(index.index)


def set_search_params(index, info: dict) -> None:
    """Apply the tuned nprobe / efSearch recorded in index.json."""
    inner = _inner(index)
    if info["kind"] == "ivf":
        inner.nprobe = int(info["nprobe"])
    elif info["kind"] == "hnsw":
        inner.hnsw.efSearch = int(info["efSearch"])


class RecallProbe:
    """Sampled queries and their exact top-k, computed once, to score an index repeatedly."""

    def __init__(self, ids: np.ndarray, vecs: np.ndarray, metric: str, k: int = RECALL_K,
                 sample: int = 1000, seed: int = 0):
        faiss = _faiss()
        x = prepare(vecs, metric)
        self.k = min(k, len(x))
        rng = np.random.default_rng(seed)
        self.queries = x[rng.choice(len(x), min(sample, len(x)), replace=False)]
        mt = faiss.METRIC_INNER_PRODUCT if metric == "cosine" else faiss.METRIC_L2
        _, exact = faiss.knn(self.queries, x, self.k, metric=mt)
        self.exact_ids = np.asarray(ids, dtype=np.int64)[exact]

    def recall(self, index) -> float:
        """Mean recall@k of ``index`` against exact search."""
        _, got = index.search(self.queries, self.k)
        hits = [len(np.intersect1d(g, e)) for g, e in zip(got, self.exact_ids, strict=True)]
        return float(np.mean(hits) / self.k)


def measure_recall(index, ids: np.ndarray, vecs: np.ndarray, metric: str, k: int = RECALL_K,
                   sample: int = 1000, seed: int = 0) -> float:
    """Mean recall@k of ``index`` against exact search; queries are a sample of ``vecs``."""
    return RecallProbe(ids, vecs, metric, k, sample, seed).recall(index)


def _tune(index, kind: str, ids: np.ndarray, vecs: np.ndarray,
          cfg: IndexConfig) -> tuple[dict, float]:
    inner = _inner(index)
    if kind == "flat":
        return {}, 1.0
    if kind == "ivf":
        name, values = "nprobe", [v for v in (1, 2, 4, 8, 12, 16, 24, 32, 48, 64, 96, 128,
                                              192, 256, 384, 512) if v <= inner.nlist]
        values.append(inner.nlist)
    else:
        name, values = "efSearch", [16, 32, 48, 64, 96, 128, 192, 256, 384, 512, 1024]
    probe = RecallProbe(ids, vecs, cfg.metric, sample=cfg.recall_sample, seed=cfg.seed)
    recall = 0.0
    for v in values:
        if kind == "ivf":
            inner.nprobe = v
        else:
            inner.hnsw.efSearch = v
        recall = probe.recall(index)
        if recall >= cfg.target_recall:
            break
    return {name: v}, recall


def choose_kind(kind: str, n: int, dim: int) -> str:
    if kind not in KINDS:
        raise UsageError(f"unknown index kind {kind!r}; use one of {', '.join(KINDS)}")
    if kind != "auto":
        return kind
    return "flat" if n * dim <= AUTO_EXACT_MAX or n < 10_000 else "hnsw"


def build(ids: np.ndarray, vecs: np.ndarray, cfg: IndexConfig):
    """Build and tune an index over (ids, vecs); returns (index, info dict)."""
    if cfg.metric not in METRICS:
        raise UsageError(f"unknown metric {cfg.metric!r}; use one of {', '.join(METRICS)}")
    n, dim = vecs.shape
    kind = choose_kind(cfg.kind, n, dim)
    t0 = time.perf_counter()
    index, params = _make(kind, cfg.metric, dim, n, cfg)
    x = prepare(vecs, cfg.metric)
    if kind == "ivf":  # 64 points per list train k-means well enough, and fast
        nlist = params["nlist"]
        rng = np.random.default_rng(cfg.seed)
        sample = x if n <= 64 * nlist else x[np.sort(rng.choice(n, 64 * nlist, replace=False))]
        index.train(sample)
    if n:
        index.add_with_ids(x, np.asarray(ids, dtype=np.int64))
    build_s = time.perf_counter() - t0
    tuned, recall = _tune(index, kind, ids, vecs, cfg) if n else ({}, 1.0)
    info = {"kind": kind, "requested_kind": cfg.kind, "metric": cfg.metric, "dim": dim,
            "ntotal": int(index.ntotal), **params, **tuned,
            f"recall_at_{RECALL_K}": round(recall, 4), "target_recall": cfg.target_recall,
            "build_seconds": round(build_s, 3), "config": asdict(cfg)}
    return index, info


def save_index(store: Path, index, info: dict) -> None:
    """Write the index and its description atomically (temp file + rename, each)."""
    faiss = _faiss()
    store = Path(store)
    tmp = store / f".{INDEX}.tmp"
    faiss.write_index(index, str(tmp))
    os.replace(tmp, index_path(store))
    tmpj = store / f".{INDEX_INFO}.tmp"
    tmpj.write_text(json.dumps(info, indent=2) + "\n")
    os.replace(tmpj, index_info_path(store))


def load_index(store: Path):
    """Load the index with its tuned search parameters applied."""
    info = load_info(store)
    path = index_path(store)
    if not path.exists():
        raise StoreDamaged(f"{INDEX_INFO} describes an index but {INDEX} is missing")
    faiss = _faiss()
    try:
        index = faiss.read_index(str(path))
    except RuntimeError as exc:
        raise StoreDamaged(f"{INDEX} cannot be read ({str(exc).splitlines()[0][:120]})"
                           ) from None
    set_search_params(index, info)
    if info["kind"] == "ivf":
        faiss.extract_index_ivf(index).make_direct_map()  # lets reconstruct(id) work
    return index


def load_info(store: Path) -> dict:
    try:
        return json.loads(index_info_path(store).read_text())
    except FileNotFoundError:
        raise StoreError(f"no index in {store}; run `actdb index` (or db.index())") from None
