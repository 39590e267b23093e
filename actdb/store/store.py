"""Reading a store: manifest, catalog, vectors, and ``info``.

>>> s = Store.open("actdb-store")                  # doctest: +SKIP
>>> ids, vecs = s.vectors()                        # doctest: +SKIP
"""

from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path

import numpy as np
import pyarrow as pa

from actdb.store import catalog
from actdb.store.manifest import Manifest, read_manifest
from actdb.store.shards import read_shards, shard_path

DEFAULT_STORE = "actdb-store"


def resolve_store_path(path: str | Path | None = None) -> Path:
    """``path``, else ``$ACTDB_STORE``, else ``./actdb-store``."""
    return Path(path or os.environ.get("ACTDB_STORE") or DEFAULT_STORE).expanduser()


class Store:
    """A store directory opened for reading."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    @classmethod
    def open(cls, path: str | Path | None = None) -> Store:
        """Open an existing store (raises StoreError when there is none)."""
        store = cls(resolve_store_path(path))
        store.manifest  # noqa: B018 - fail early with a clear message
        return store

    @cached_property
    def manifest(self) -> Manifest:
        return read_manifest(self.path)

    def connect(self, read_only: bool = True):
        """A catalog connection (context manager) with the ``activations`` view."""
        return catalog.connect(self.path, read_only=read_only)

    def shard_names(self) -> list[str]:
        with self.connect() as con:
            return catalog.committed_shards(con)

    def vectors(self, ids=None) -> tuple[np.ndarray, np.ndarray]:
        """All committed (ids, vecs) sorted by id, or those of ``ids`` in that order (reading
        only the shards that hold them)."""
        with self.connect() as con:
            if ids is None:
                names = catalog.committed_shards(con)
            else:
                ids = np.asarray(ids, dtype=np.int64)
                con.register("wanted", pa.table({"image_id": ids}))
                names = [r[0] for r in con.execute(
                    "SELECT DISTINCT shard FROM images JOIN wanted USING (image_id) ORDER BY 1"
                ).fetchall()]
        all_ids, vecs = read_shards([shard_path(self.path, n) for n in names], self.manifest.dim)
        order = None
        if len(all_ids) > 1 and not np.all(all_ids[1:] > all_ids[:-1]):
            order = np.argsort(all_ids, kind="stable")  # shards of merged stores interleave
            all_ids = all_ids[order]
        if ids is None:
            return all_ids, (vecs if order is None else vecs[order])
        pos = np.clip(np.searchsorted(all_ids, ids), 0, max(len(all_ids) - 1, 0))
        found = all_ids[pos] == ids if len(all_ids) else np.zeros(len(ids), bool)
        if not found.all():
            from actdb.errors import QueryError

            missing = ids[~found][:5].tolist()
            raise QueryError(f"no stored image with id {missing}; see `actdb info`")
        return ids, vecs[pos if order is None else order[pos]]

    def images(self, where: str | None = None):
        """The images table (pandas DataFrame), optionally filtered by a SQL predicate."""
        sql = "SELECT * FROM images" + (f" WHERE {where}" if where else "") + " ORDER BY image_id"
        with self.connect() as con:
            return con.execute(sql).df()

    def info(self) -> dict:
        """What is in the store: recipe, counts per split, classes, failures, size, index."""
        import json

        m = self.manifest
        with self.connect() as con:
            per_split = dict(con.execute(
                "SELECT coalesce(split, '?'), count(*) FROM images GROUP BY 1 ORDER BY 1"
            ).fetchall())
            n_images = sum(per_split.values())
            n_classes = con.execute("SELECT count(*) FROM classes").fetchone()[0]
            n_failures = con.execute("SELECT count(*) FROM failures").fetchone()[0]
            n_shards = con.execute("SELECT count(*) FROM shards").fetchone()[0]
            runs = con.execute("SELECT count(*) FROM runs").fetchone()[0]
        size = sum(p.stat().st_size for p in self.path.rglob("*") if p.is_file())
        index = None
        index_json = self.path / "index.json"
        if index_json.exists():
            index = json.loads(index_json.read_text())
        return {
            "store": str(self.path.resolve()),
            "model": m.model, "layer": m.layer, "pool": m.pool, "dim": m.dim,
            "image_size": m.image_size, "resize": m.resize, "precision": m.precision,
            "weights": m.weights, "weights_sha256": m.weights_sha256,
            "fingerprint": m.fingerprint,
            "images": n_images, "images_per_split": per_split, "classes": n_classes,
            "failures": n_failures, "shards": n_shards, "runs": runs,
            "size_bytes": size, "index": index,
        }
