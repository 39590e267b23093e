"""Each index kind as one row of a table (:data:`KINDS`): how it is built, what its search
settings mean to FAISS, which settings tuning measures, how a filter reaches it, whether it
gives stored vectors back unchanged, and what it holds in memory.

>>> spec = KINDS["ivf"]
>>> spec.grid({"nlist": 8}, 1000)
[{'nprobe': 1}, {'nprobe': 2}, {'nprobe': 4}, {'nprobe': 8}]
>>> KINDS["flat"].memory(1000, 512, {})  # the vectors and their ids
{'resident': 2056000, 'mapped': 0}
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from actdb.errors import UsageError
from actdb.heavy import faiss as _faiss


def metric_type(metric: str):
    faiss = _faiss()
    return faiss.METRIC_INNER_PRODUCT if metric == "cosine" else faiss.METRIC_L2


def default_nlist(n: int) -> int:
    """About 2 sqrt(n) lists, a power of two, with at least ~39 points each to train.

    >>> default_nlist(1_281_167), default_nlist(14_000_000), default_nlist(100_000_000)
    (2048, 8192, 16384)
    """
    return max(1, min(2 ** round(math.log2(max(2 * math.sqrt(n), 1))), n // 39))


def default_pq_m(dim: int) -> int:
    """The most sub-quantizers up to dim / 4 that divide the dimension (2 dims a code or more).

    >>> default_pq_m(512), default_pq_m(2048), default_pq_m(100), default_pq_m(3)
    (128, 512, 25, 1)
    """
    return next(m for m in range(max(1, dim // 4), 0, -1) if dim % m == 0)


def _probes(nlist: int, steps: tuple[int, ...]) -> list[int]:
    return sorted({p for p in steps if p < nlist} | {nlist})


# -- flat --------------------------------------------------------------------------------------

def _make_flat(dim: int, n: int, cfg):
    faiss = _faiss()
    return faiss.IndexIDMap(faiss.IndexFlat(dim, metric_type(cfg.metric))), {}


# -- ivfpq -------------------------------------------------------------------------------------

def _make_ivfpq(dim: int, n: int, cfg):
    faiss = _faiss()
    nlist = cfg.nlist or default_nlist(n)
    m = cfg.pq_m or default_pq_m(dim)
    if dim % m:
        raise UsageError(f"pq_m {m} must divide the vector dimension {dim}")
    base = faiss.index_factory(dim, f"IVF{nlist},PQ{m}x4fs", metric_type(cfg.metric))
    faiss.extract_index_ivf(base).cp.seed = cfg.seed
    return faiss.IndexIDMap(faiss.IndexRefineFlat(base)), {"nlist": nlist, "pq_m": m}


def _params_ivfpq(s: dict):
    faiss = _faiss()
    return faiss.IndexRefineSearchParameters(
        k_factor=float(s["k_factor"]),
        base_index_params=faiss.SearchParametersIVF(nprobe=int(s["nprobe"])))


def _grid_ivfpq(built: dict, n: int) -> list[dict]:
    probes = _probes(built["nlist"], (8, 16, 32, 64, 96, 128, 192, 256, 384, 512, 768, 1024,
                                      2048, 4096))
    return [{"nprobe": p, "k_factor": f} for p in probes for f in (10, 15, 20, 40)]


def _split_searcher(index, setting: dict, ids: np.ndarray):
    from actdb.index.split import SplitSearch

    return SplitSearch(index, setting, ids)


# -- ivf ---------------------------------------------------------------------------------------

def _make_ivf(dim: int, n: int, cfg):
    faiss = _faiss()
    mt = metric_type(cfg.metric)
    nlist = cfg.nlist or default_nlist(n)
    inner = faiss.IndexIVFFlat(faiss.IndexFlat(dim, mt), dim, nlist, mt)
    inner.cp.seed = cfg.seed
    return faiss.IndexIDMap(inner), {"nlist": nlist}


def _params_ivf(s: dict):
    return _faiss().SearchParametersIVF(nprobe=int(s["nprobe"]))


def _grid_ivf(built: dict, n: int) -> list[dict]:
    return [{"nprobe": p}
            for p in _probes(built["nlist"], (1, 2, 4, 8, 16, 32, 64, 128, 256, 512))]


def _select_ivf(index, params, sel, share: float, k: int):
    inner = _faiss().downcast_index(index.index)
    want = int(np.ceil(4 * k * inner.nlist / (index.ntotal * max(share, 1e-9))))
    return _faiss().SearchParametersIVF(sel=sel, nprobe=min(inner.nlist,
                                                            max(params.nprobe, want)))


# -- hnsw --------------------------------------------------------------------------------------

def _make_hnsw(dim: int, n: int, cfg):
    faiss = _faiss()
    inner = faiss.IndexHNSWFlat(dim, cfg.hnsw_m, metric_type(cfg.metric))
    inner.hnsw.efConstruction = 40
    return faiss.IndexIDMap(inner), {"M": cfg.hnsw_m}


def _params_hnsw(s: dict):
    return _faiss().SearchParametersHNSW(efSearch=int(s["efSearch"]))


def _grid_hnsw(built: dict, n: int) -> list[dict]:
    return [{"efSearch": e} for e in (16, 32, 64, 128, 256, 384, 512, 1024) if e <= n]


def _select_hnsw(index, params, sel, share: float, k: int):
    ef = min(index.ntotal, max(params.efSearch, int(np.ceil(4 * k / max(share, 1e-9)))))
    return _faiss().SearchParametersHNSW(sel=sel, efSearch=ef)


def _select_flat(index, params, sel, share: float, k: int):
    return _faiss().SearchParameters(sel=sel)


# -- the table ---------------------------------------------------------------------------------

@dataclass(frozen=True, kw_only=True)
class KindSpec:
    """One index kind. ``make(dim, n, cfg) -> (index, build params)``; ``params(setting)``:
    FAISS's per-call search parameters (None: exact); ``grid(build params, n)``: the
    settings tuning measures, cheap to expensive; ``searcher(index, setting, ids)``: a
    search of its own (None: FAISS's); ``select(index, params, selector, share, k)``: search
    parameters carrying a filter (None: post-filter a wider search); ``trains``: k-means on a
    sample first; ``exact``: it gives the stored (L2) vectors back unchanged; ``memory(n,
    dim, build params)``: bytes held in memory and bytes memory-mapped once loaded;
    ``on_load(index)``: how it is set up for searching, once built or read."""

    name: str
    make: Callable
    params: Callable[[dict], object] = lambda s: None
    grid: Callable[[dict, int], list[dict]] = lambda built, n: []
    searcher: Callable | None = None
    select: Callable | None = _select_flat
    trains: bool = False
    exact: bool = False
    memory: Callable[[int, int, dict], dict]
    on_load: Callable = lambda index: None


def _search_on_every_core(index) -> None:
    """IVF-flat: one query searches its lists on every core (FAISS splits over queries by
    default). ivfpq splits a query's lists itself (``split.SplitSearch``): FAISS's fast-scan
    split (its implementations 14/15) lets thread timing pick among tied 4-bit distances."""
    _faiss().extract_index_ivf(index).parallel_mode = 1


KINDS: dict[str, KindSpec] = {
    "flat": KindSpec(name="flat", make=_make_flat, exact=True,
                     memory=lambda n, dim, p: {"resident": n * (4 * dim + 8), "mapped": 0}),
    "ivfpq": KindSpec(
        name="ivfpq", make=_make_ivfpq, params=_params_ivfpq, grid=_grid_ivfpq,
        searcher=_split_searcher, select=None, trains=True, exact=True,
        # 4-bit codes and list ids, the centroids, the id map; the re-ranked vectors mapped
        memory=lambda n, dim, p: {"resident": n * (p["pq_m"] // 2 + 16) + 4 * dim * p["nlist"],
                                  "mapped": 4 * n * dim}),
    "ivf": KindSpec(name="ivf", make=_make_ivf, params=_params_ivf, grid=_grid_ivf,
                    select=_select_ivf, trains=True, on_load=_search_on_every_core,
                    memory=lambda n, dim, p: {"resident": n * (4 * dim + 16)
                                              + 4 * dim * p["nlist"], "mapped": 0}),
    "hnsw": KindSpec(name="hnsw", make=_make_hnsw, params=_params_hnsw, grid=_grid_hnsw,
                     select=_select_hnsw,
                     # the vectors, about 2M links a vector at level 0 (4 bytes each), the ids
                     memory=lambda n, dim, p: {"resident": n * (4 * dim + 8 * p["M"] + 8),
                                               "mapped": 0}),
}


def kind_spec(kind: str) -> KindSpec:
    """The row of ``kind`` (UsageError for a kind there is none of)."""
    try:
        return KINDS[kind]
    except KeyError:
        raise UsageError(f"unknown index kind {kind!r}; use one of auto, "
                         f"{', '.join(KINDS)}") from None
