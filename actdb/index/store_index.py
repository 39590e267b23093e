"""Build or update a store's index from its committed vectors.

>>> index_store(Store.open(store), IndexConfig(kind="flat"))["ntotal"]
18
"""

from __future__ import annotations

import numpy as np

from actdb.index.faiss_index import (
    IndexConfig,
    as_indexed,
    build,
    choose_kind,
    index_ids,
    load_index,
    measure_recall,
    save_index,
)
from actdb.store.catalog import files, reads
from actdb.store.shards import read_shards
from actdb.store.store import Store

#: An approximate index is rebuilt (not appended to) once the store has grown this much since
#: it was trained: its lists and codes were fitted to the vectors of that time.
REBUILD_GROWTH = 2.0


def index_store(store: Store, cfg: IndexConfig | None = None) -> dict:
    """(Re)build the index of the store's space from scratch; returns what index.json
    records."""
    ids, vecs = store.vectors()
    index, info = build(ids, vecs, cfg or IndexConfig())
    save_index(store.dir, index, info)
    return info.to_dict()


def update_index(store: Store) -> dict:
    """Add vectors the index lacks (after an incremental ingest), rebuilding only when needed.

    A store without an index gets a new ``auto`` one; an ``auto`` index that outgrew exact
    search, or an approximate one whose store more than doubled since it was trained, is
    rebuilt; an approximate one that took new vectors has its recall measured again.
    """
    s = store
    if not files.index_path(s.dir).exists():
        return index_store(s)
    index, info = load_index(s.dir, mmap=False)  # a mapped index cannot be added to
    cfg = IndexConfig(**info.config)
    have = index_ids(index)
    with s.reader() as con:
        rows, stale = reads.images_not_in(con, have, s.space.name)
    n_total = len(have) + len(rows)
    if (stale or choose_kind(cfg.kind, n_total, s.manifest.dim) != info.kind
            or (info.kind != "flat" and n_total > REBUILD_GROWTH * max(info.trained, 1))):
        return index_store(s, cfg)
    if not rows:
        return info.to_dict()
    shards = sorted({r[1] for r in rows})
    sids, svecs = read_shards([files.shard_path(s.dir, n) for n in shards], s.manifest.dim)
    missing = np.array(sorted(r[0] for r in rows), dtype=np.int64)
    keep = np.isin(sids, missing)
    order = np.argsort(sids[keep])  # ids ascending keeps the id map sorted
    index.add_with_ids(as_indexed(svecs[keep][order], cfg.metric), sids[keep][order])
    recall = None
    if info.kind != "flat":
        all_ids, all_vecs = s.vectors()
        recall = round(measure_recall(index, all_ids, all_vecs, cfg.metric, info,
                                      sample=cfg.recall_sample, seed=cfg.seed), 4)
    info = info.grown(int(index.ntotal), recall)
    save_index(s.dir, index, info)
    return info.to_dict()
