"""The FAISS index of a store: ids are image_ids; ``index.json`` says how it was built.

Kinds (each a row of :data:`actdb.index.kinds.KINDS`: build, settings, tuning grid, filter,
memory):

- ``flat``: exact search.
- ``ivfpq``: an inverted file (about 2 sqrt(n) lists, a flat coarse quantizer) with 4-bit PQ
  fast-scan codes (``IVF{nlist},PQ{d/4}x4fs``) whose candidates are re-ranked exactly against
  the full vectors (``IndexRefineFlat``). The codes are small enough to hold in memory (d/8
  bytes a vector: 64 for 512-d; ``bench/codes.py`` measured them 1.2-1.6x faster at recall
  0.95 than d/8 sub-quantizers, which need more lists probed and more candidates re-ranked).
  The full vectors are memory-mapped when the index is loaded, so they stay in the OS page
  cache and a query reads only the rows it re-ranks. (An HNSW coarse quantizer was measured
  and lost a fifth of the recall at large nprobe.)
- ``ivf`` (IVF-Flat) and ``hnsw`` (HNSW-Flat): kept for comparison.

``auto`` is exact while a search over the whole store takes a few ms, ``ivfpq`` above. Tuning
measures recall@50 against exact search (on a sample of the store's own vectors) and the
latency of a grid of search settings, and records the cheapest setting that reaches each of
several recall levels (``operating_points`` in ``index.json``): the default is the one for
``target_recall``, and ``nearest(recall=0.99)`` picks another without rebuilding. Metrics:
``l2`` (the original study's; distances reported as L2, not squared) and ``cosine`` (vectors
normalised, distance = 1 - cosine similarity).

>>> x = np.random.default_rng(0).random((200, 8), dtype=np.float32)
>>> index, info = build(np.arange(200), x, IndexConfig(kind="flat"))
>>> info.kind, info.ntotal, info.recall_at_50
('flat', 200, 1.0)
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from actdb.errors import StoreDamaged, StoreError, UsageError
from actdb.heavy import faiss as _faiss
from actdb.index.info import IndexInfo, OperatingPoint, cheapest
from actdb.index.kinds import KINDS as SPECS
from actdb.index.kinds import kind_spec, metric_type
from actdb.store.catalog.files import (
    INDEX,
    INDEX_INFO,
    atomic_write,
    index_info_path,
    index_path,
)

KINDS = ("auto", *SPECS)
METRICS = ("l2", "cosine")
#: auto picks exact search up to this many vector components (n * dim): ~100k x 512-d.
AUTO_EXACT_MAX = 50_000_000
RECALL_K = 50
#: The recall levels whose cheapest setting tuning records (besides the target).
LEVELS = (0.9, 0.95, 0.99)


@dataclass(frozen=True, kw_only=True)
class IndexConfig:
    """How to build the index."""

    kind: str = "auto"
    metric: str = "l2"
    target_recall: float = 0.95
    recall_sample: int = 500
    tune_seconds: float = 90.0  # the most time tuning spends measuring settings
    seed: int = 0
    hnsw_m: int = 32
    nlist: int | None = None  # ivf, ivfpq: inverted lists (default from n)
    pq_m: int | None = None  # ivfpq: PQ sub-quantizers, 4 bits each (default about dim / 4)


def index_ids(index) -> np.ndarray:
    """The ids an IndexIDMap-wrapped index holds, in its internal order."""
    return _faiss().vector_to_array(index.id_map).astype(np.int64)


def as_indexed(vecs: np.ndarray, metric: str) -> np.ndarray:
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


def search_params(kind: str, s: dict):
    """FAISS per-call search parameters of a ``kind`` for a setting (``IndexInfo.setting``);
    None for exact search. Per call, so concurrent searches never share a knob."""
    return kind_spec(kind).params(s)


def searcher(index, kind: str, setting: dict, ids: np.ndarray | None = None):
    """``(x, k) -> (raw scores, ids)``: how queries search ``index`` at a setting (a kind's
    own search, such as ivfpq's split of each query's lists over the cores, or FAISS's);
    ``ids``: the index's (``index_ids``), when the caller has them already."""
    spec = kind_spec(kind)
    if spec.searcher is not None:
        return spec.searcher(index, setting, index_ids(index) if ids is None else ids)
    params = spec.params(setting)
    return lambda x, k: index.search(x, k, params=params)


def _others(rows: np.ndarray, own: np.ndarray, k: int) -> list[np.ndarray]:
    """Each row's first k ids other than its own query's."""
    return [r[r != o][:k] for r, o in zip(rows, own, strict=True)]


class RecallProbe:
    """Stored vectors used as queries and their exact top-k neighbours (themselves left out,
    as ``nearest id:N`` does), computed once, to score settings repeatedly."""

    def __init__(self, ids: np.ndarray, vecs: np.ndarray, metric: str, k: int = RECALL_K,
                 sample: int = 500, seed: int = 0):
        faiss = _faiss()
        x = as_indexed(vecs, metric)
        ids = np.asarray(ids, dtype=np.int64)
        self.k = min(k, len(x) - 1)
        rng = np.random.default_rng(seed)
        pick = rng.choice(len(x), min(sample, len(x)), replace=False)
        self.queries, self.own = x[pick], ids[pick]
        _, exact = faiss.knn(self.queries, x, self.k + 1, metric=metric_type(metric))
        self.exact_ids = _others(ids[exact], self.own, self.k)

    def recall(self, search) -> float:
        """Mean recall@k of ``search`` (a ``searcher``) against exact search, every query in
        one batch: what a setting answers, whatever the clock or the machine's load."""
        _, got = search(self.queries, self.k + 1)
        got = _others(got, self.own, self.k)
        hits = [len(np.intersect1d(g, e)) for g, e in zip(got, self.exact_ids, strict=True)]
        return float(np.mean(hits) / self.k)

    def p50_ms(self, search, queries: int | None = None) -> float:
        """p50 ms of one query at a time through ``search``, over the first ``queries`` (all
        when None)."""
        search(self.queries[:2], self.k + 1)  # warm-up
        times = []
        for q in self.queries[:queries]:
            t = time.perf_counter()
            search(q[None], self.k + 1)
            times.append(time.perf_counter() - t)
        return float(np.median(times) * 1e3)


def measure_recall(index, ids: np.ndarray, vecs: np.ndarray, metric: str, info: IndexInfo,
                   k: int = RECALL_K, sample: int = 500, seed: int = 0) -> float:
    """Mean recall@k of ``index`` with its default setting, on a sample of ``vecs``."""
    return RecallProbe(ids, vecs, metric, k, sample, seed).recall(
        searcher(index, info.kind, info.search))


#: Single queries timed per candidate setting: all of the probe's while the time budget
#: lasts, then this many (timing decides only which reaching setting is cheapest).
MIN_TIMED = 10


def _families(grid: list[dict]) -> list[list[int]]:
    """The grid's positions in runs along which recall grows (more lists probed, a wider
    beam), cheapest first: one run per re-ranking factor for ivfpq."""
    runs: dict = {}
    for i, setting in enumerate(grid):
        runs.setdefault(setting.get("k_factor"), []).append(i)
    return list(runs.values())


def _tune(index, kind: str, built: dict, ids, vecs, cfg: IndexConfig) -> dict:
    """Record, for each recall level (``LEVELS`` and the target), the cheapest setting that
    reaches it. Recall is measured in batches, by bisection along each run of the grid, and
    never depends on the clock; only the settings that reach a level are timed, fully while
    ``tune_seconds`` lasts, then briefly. Levels no setting reaches are listed
    (``unreached``), and the most accurate setting measured stands for them."""
    n = len(ids)
    if kind == "flat" or n < 2:
        return {"search": {}, "recall": 1.0, "operating_points": [], "unreached": []}
    probe = RecallProbe(ids, vecs, cfg.metric, sample=cfg.recall_sample, seed=cfg.seed)
    grid = kind_spec(kind).grid(built, n)
    levels = sorted({*LEVELS, cfg.target_recall})
    recalls: dict[int, float] = {}
    held = index_ids(index) if kind_spec(kind).searcher is not None else None

    def at(i: int):
        return searcher(index, kind, grid[i], held)

    def recall(i: int) -> float:
        if i not in recalls:
            recalls[i] = probe.recall(at(i))
        return recalls[i]

    chosen = set()
    for run in _families(grid):
        for level in levels:
            lo, hi = 0, len(run) - 1
            if recall(run[hi]) < level:  # beyond this run: its best stands for the level
                chosen.add(run[hi])
                break
            while lo < hi:  # recall(run[hi]) >= level holds throughout
                mid = (lo + hi) // 2
                if recall(run[mid]) >= level:
                    hi = mid
                else:
                    lo = mid + 1
            chosen.add(run[hi])
    deadline = time.monotonic() + cfg.tune_seconds
    points = []
    for i in sorted(chosen):
        timed = None if time.monotonic() < deadline else MIN_TIMED
        points.append(OperatingPoint(setting=grid[i], recall=round(recall(i), 4),
                                     p50_ms=round(probe.p50_ms(at(i), timed), 3)))
    best = cheapest(points, cfg.target_recall)
    unreached = [lv for lv in levels if not any(p.recall >= lv for p in points)]
    return {"search": best.setting, "recall": best.recall, "operating_points": points,
            "unreached": unreached}


def choose_kind(kind: str, n: int, dim: int) -> str:
    if kind != "auto":
        return kind_spec(kind).name
    return "flat" if n * dim <= AUTO_EXACT_MAX or n < 10_000 else "ivfpq"


def build(ids: np.ndarray, vecs: np.ndarray, cfg: IndexConfig):
    """Build and tune an index over (ids, vecs); returns (index, IndexInfo)."""
    if cfg.metric not in METRICS:
        raise UsageError(f"unknown metric {cfg.metric!r}; use one of {', '.join(METRICS)}")
    if not 0 < cfg.target_recall <= 1:
        raise UsageError(f"target_recall must be in (0, 1], not {cfg.target_recall}",
                         param="target_recall")
    n, dim = vecs.shape
    kind = choose_kind(cfg.kind, n, dim)
    if kind_spec(kind).trains and n < 39:
        kind = "flat"  # too few vectors to train lists
    t0 = time.perf_counter()
    index, built = kind_spec(kind).make(dim, n, cfg)
    kind_spec(kind).on_load(index)  # as loaded for searching: tuning times the same
    x = as_indexed(vecs, cfg.metric)
    if kind_spec(kind).trains:  # 64 points per list train k-means well enough, and fast
        rng = np.random.default_rng(cfg.seed)
        m = max(64 * built["nlist"], 100_000 if kind == "ivfpq" else 0)
        index.train(x if n <= m else x[np.sort(rng.choice(n, m, replace=False))])
    if n:
        index.add_with_ids(x, np.asarray(ids, dtype=np.int64))
    build_s = time.perf_counter() - t0
    tuned = _tune(index, kind, built, ids, vecs, cfg)
    info = IndexInfo(kind=kind, requested_kind=cfg.kind, metric=cfg.metric, dim=dim,
                     ntotal=int(index.ntotal), trained_ntotal=int(index.ntotal), params=built,
                     search=tuned["search"], recall_at_50=round(tuned["recall"], 4),
                     target_recall=cfg.target_recall,
                     operating_points=tuned["operating_points"],
                     unreached_recall=tuned["unreached"], build_seconds=round(build_s, 3),
                     tune_seconds=round(time.perf_counter() - t0 - build_s, 3),
                     config=asdict(cfg))
    return index, info


def save_index(store: Path, index, info: IndexInfo) -> None:
    """Write the index and its description atomically (temp file + rename, each)."""
    faiss = _faiss()
    atomic_write(index_path(store), lambda tmp: faiss.write_index(index, str(tmp)))
    atomic_write(index_info_path(store),
                 lambda tmp: tmp.write_text(json.dumps(info.to_dict(), indent=2) + "\n"))


def load_index(store: Path, mmap: bool = True):
    """Load the index. ``mmap`` (for searching) maps the full vectors instead of reading
    them; such an index is read-only: load with ``mmap=False`` to add to it."""
    info = load_info(store)
    path = index_path(store)
    if not path.exists():
        raise StoreDamaged(f"{INDEX_INFO} describes an index but {INDEX} is missing")
    faiss = _faiss()
    try:
        index = faiss.read_index(str(path), faiss.IO_FLAG_MMAP_IFC if mmap else 0)
    except RuntimeError as exc:
        raise StoreDamaged(f"{INDEX} cannot be read ({str(exc).splitlines()[0][:120]})"
                           ) from None
    if not hasattr(index, "id_map"):
        raise StoreDamaged(f"{INDEX} is not an index of image ids; run `actdb index`")
    kind_spec(info.kind).on_load(index)
    return index, info


def load_info(store: Path) -> IndexInfo:
    """The index's description (StoreError when the store has none)."""
    info = IndexInfo.of_store(store)
    if info is None:
        raise StoreError(f"no index in {store}; run `actdb index` (or db.space().index())")
    return info


def reconstruct(index, info: IndexInfo, positions: np.ndarray) -> np.ndarray | None:
    """The vectors stored at these internal positions, or None when the index cannot give
    them unchanged (cosine indexes hold normalised vectors; IVF/HNSW need a direct map)."""
    if info.metric != "l2" or not kind_spec(info.kind).exact:
        return None
    inner = _faiss().downcast_index(index.index)
    return np.stack([inner.reconstruct(int(p)) for p in positions])
