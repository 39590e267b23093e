"""Build or update a store's index from its committed vectors.

>>> index_store("actdb-store", IndexConfig(kind="flat"))        # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa

from actdb.index.faiss_index import (
    IndexConfig,
    build,
    choose_kind,
    index_ids,
    load_index,
    load_info,
    measure_recall,
    prepare,
    save_index,
)
from actdb.store.shards import read_shards, shard_path
from actdb.store.store import Store


def index_store(store: str | Path | None = None, cfg: IndexConfig | None = None) -> dict:
    """(Re)build the store's index from scratch; returns what index.json records."""
    s = Store.open(store)
    ids, vecs = s.vectors()
    index, info = build(ids, vecs, cfg or IndexConfig())
    save_index(s.path, index, info)
    return info


def update_index(store: str | Path | None = None) -> dict:
    """Add vectors the index lacks (after an incremental ingest), rebuilding only when needed.

    A store without an index gets a new ``auto`` one; an ``auto`` index that outgrew exact
    search is rebuilt approximate; an approximate one is re-tuned for its recall target.
    """
    s = Store.open(store)
    if not (s.path / "index.faiss").exists():
        return index_store(s.path)
    info = load_info(s.path)
    cfg = IndexConfig(**info.get("config", {}))
    index = load_index(s.path)
    have = index_ids(index)
    with s.connect() as con:
        con.register("have_ids", pa.table({"image_id": have}))
        rows = con.execute(
            "SELECT image_id, shard FROM images ANTI JOIN have_ids USING (image_id)").fetchall()
        stale = con.execute("SELECT count(*) FROM have_ids ANTI JOIN images USING (image_id)"
                            ).fetchone()[0]
    n_total = len(have) + len(rows)
    if stale or choose_kind(cfg.kind, n_total, s.manifest.dim) != info["kind"]:
        return index_store(s.path, cfg)
    if not rows:
        return info
    shards = sorted({r[1] for r in rows})
    sids, svecs = read_shards([shard_path(s.path, n) for n in shards], s.manifest.dim)
    missing = np.array(sorted(r[0] for r in rows), dtype=np.int64)
    keep = np.isin(sids, missing)
    index.add_with_ids(prepare(svecs[keep], cfg.metric), sids[keep])
    info["ntotal"] = int(index.ntotal)
    if info["kind"] != "flat":
        all_ids, all_vecs = s.vectors()
        info[f"recall_at_{50}"] = round(measure_recall(
            index, all_ids, all_vecs, cfg.metric, sample=cfg.recall_sample, seed=cfg.seed), 4)
    save_index(s.path, index, info)
    return info
