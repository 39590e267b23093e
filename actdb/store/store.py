"""Reading a store: manifest, catalog, vectors, and ``info``.

>>> s = Store.open(store)
>>> ids, vecs = s.vectors()
>>> vecs.shape
(18, 512)
"""

from __future__ import annotations

import json
import os
from functools import cached_property
from pathlib import Path

import numpy as np

from actdb.errors import QueryError
from actdb.store import catalog
from actdb.store.catalog import files, reads
from actdb.store.manifest import Manifest, read_manifest
from actdb.store.shards import read_shards

DEFAULT_STORE = "actdb-store"


def resolve_store_path(path: str | Path | None = None) -> Path:
    """``path``, else ``$ACTDB_STORE``, else ``./actdb-store`` (the only place that decides).

    >>> resolve_store_path("s").name
    's'
    """
    return Path(path or os.environ.get("ACTDB_STORE") or DEFAULT_STORE).expanduser()


def read_index_info(store: Path) -> dict | None:
    """What the store's ``index.json`` records, or None when the store has no index (the one
    reader of that file)."""
    try:
        return json.loads(files.index_info_path(store).read_text())
    except FileNotFoundError:
        return None


class Store:
    """A store directory opened for reading."""

    def __init__(self, path: str | Path, sql_threads: int | None = None, linger: float = 0.0):
        self.path = Path(path)
        self.sql_threads = sql_threads
        self.linger = linger

    @classmethod
    def open(cls, path: str | Path, sql_threads: int | None = None,
             linger: float = 0.0) -> Store:
        """Open an existing store (raises StoreError when there is none). ``sql_threads`` and
        ``linger``: see :func:`actdb.store.catalog.reader`."""
        store = cls(path, sql_threads, linger)
        store.manifest  # noqa: B018 - fail early with a clear message
        return store

    @cached_property
    def manifest(self) -> Manifest:
        return read_manifest(self.path)

    def reader(self, views: bool = False):
        """A read-only catalog cursor (context manager); ``views`` adds ``activations`` and
        ``queries``."""
        if not views:
            return catalog.reader(self.path, threads=self.sql_threads, linger=self.linger)
        return self._with_views()

    def _with_views(self):
        import contextlib

        @contextlib.contextmanager
        def cm():
            with catalog.reader(self.path, threads=self.sql_threads,
                                linger=self.linger) as con:
                m = self.manifest
                reads.use_views(con, self.path, m.dim, m.fingerprint)
                yield con

        return cm()

    def vectors(self, ids=None) -> tuple[np.ndarray, np.ndarray]:
        """All committed (ids, vecs) sorted by id, or those of ``ids`` in that order (reading
        only the shards that hold them)."""
        with self.reader() as con:
            if ids is None:
                names = reads.committed_shards(con)
            else:
                ids = np.asarray(ids, dtype=np.int64)
                names = reads.shards_holding(con, ids)
        all_ids, vecs = read_shards([files.shard_path(self.path, n) for n in names],
                                    self.manifest.dim)
        order = None
        if len(all_ids) > 1 and not np.all(all_ids[1:] > all_ids[:-1]):
            order = np.argsort(all_ids, kind="stable")  # shards of merged stores interleave
            all_ids = all_ids[order]
        if ids is None:
            return all_ids, (vecs if order is None else vecs[order])
        pos = np.clip(np.searchsorted(all_ids, ids), 0, max(len(all_ids) - 1, 0))
        found = all_ids[pos] == ids if len(all_ids) else np.zeros(len(ids), bool)
        if not found.all():
            missing = ids[~found][:5].tolist()
            raise QueryError(f"no stored image with id {missing}; see `actdb info`")
        return ids, vecs[pos if order is None else order[pos]]

    def images(self, where: str | None = None):
        """The images table (pandas DataFrame), optionally filtered by a SQL predicate."""
        with self.reader() as con:
            return reads.images(con, where)

    def info(self) -> dict:
        """What is in the store: recipe, counts per split and root, classes, failures, size,
        index, statistics."""
        m = self.manifest
        with self.reader() as con:
            counts = reads.summary(con)
            stats = reads.stats_config(con)
            lost = reads.missing_shards(con, self.path)
        size = sum(p.stat().st_size for p in self.path.rglob("*") if p.is_file())
        index = read_index_info(self.path)
        damaged = [f"{len(lost)} shard file(s) missing"] if lost else []
        if index is not None and not files.index_path(self.path).exists():
            damaged.append(f"{files.INDEX} missing")
            index = None
        return {
            "store": str(self.path.resolve()),
            "model": m.model, "layer": m.layer, "pool": m.pool, "dim": m.dim,
            "image_size": m.image_size, "resize": m.resize, "precision": m.precision,
            "weights": m.weights, "weights_sha256": m.weights_sha256,
            "preprocess": m.preprocess, "model_fingerprint": m.fingerprint,
            **counts, "size_bytes": size, "index": index, "stats": stats,
            "damaged": damaged,
        }
