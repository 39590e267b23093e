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

from actdb.errors import NotFound, QueryError
from actdb.store import catalog
from actdb.store.catalog import derived, files, reads
from actdb.store.catalog.schema import SpaceRow
from actdb.store.manifest import FORMAT_VERSION, Manifest, read_manifest, space_row
from actdb.store.shards import read_shards, read_wanted

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


def pick_space(rows: list[SpaceRow], name: str | None) -> SpaceRow:
    """The space ``name`` means: its full name (``vgg19/block5_conv4``), or a unique short
    form (its layer, or its model when the store has one space of it; a torchvision or timm
    model also without its zoo's prefix, when no Keras model has that name); None: the
    default.

    >>> rows = [SpaceRow(name="vgg19/b5", folder="", is_default=True, position=0, model="vgg19",
    ...                  layer="b5", pool="mean", dim=4, fingerprint="f"),
    ...         SpaceRow(name="vgg19/b4", folder="spaces/vgg19+b4", is_default=False, position=1,
    ...                  model="vgg19", layer="b4", pool="mean", dim=4, fingerprint="g")]
    >>> pick_space(rows, "b4").name, pick_space(rows, None).name
    ('vgg19/b4', 'vgg19/b5')
    """
    if name is None:
        return next(r for r in rows if r.is_default)
    exact = [r for r in rows if r.name == name]
    short = [r for r in rows if name in (r.layer, r.model)] or [
        r for r in rows if name in (r.model.split(":", 1)[-1], r.name.split(":", 1)[-1])]
    if exact or len(short) == 1:
        return (exact or short)[0]
    names = ", ".join(r.name for r in rows)
    if short:
        raise QueryError(f"space {name!r} could mean {', '.join(r.name for r in short)}; "
                         "name it in full", param="space")
    raise NotFound(f"no space {name!r} in this store; its spaces: {names} "
                     "(`actdb spaces` lists them)", param="space")


class Store:
    """A store directory opened for reading, seen through one of its spaces (``space``: a
    name :func:`pick_space` takes; None: the default). ``path`` is the store's folder,
    ``dir`` the space's (its manifest, shards and index)."""

    def __init__(self, path: str | Path, sql_threads: int | None = None, linger: float = 0.0,
                 space: str | None = None):
        self.path = Path(path)
        self.sql_threads = sql_threads
        self.linger = linger
        self._space_name = space

    @classmethod
    def open(cls, path: str | Path, sql_threads: int | None = None,
             linger: float = 0.0, space: str | None = None) -> Store:
        """Open an existing store (raises StoreError when there is none; a store made before
        spaces is upgraded first). ``sql_threads`` and ``linger``: see
        :func:`actdb.store.catalog.reader`."""
        m = read_manifest(Path(path), upgrade=True)
        if m.format_version != FORMAT_VERSION:
            from actdb.store.writer import upgrade

            upgrade(Path(path))
        store = cls(path, sql_threads, linger, space)
        store.manifest = read_manifest(store.dir)  # no such space, or unreadable: now
        return store

    def in_space(self, name: str | None) -> Store:
        """The same store seen through another space."""
        return Store.open(self.path, self.sql_threads, self.linger, self.space_of(name).name)

    def space_of(self, name: str | None) -> SpaceRow:
        return pick_space(self.spaces(), name)

    def spaces(self) -> list[SpaceRow]:
        """Every space, the default first."""
        with self.reader() as con:
            return reads.spaces(con)

    @cached_property
    def space(self) -> SpaceRow:
        """This store's space (the default one without a catalog read)."""
        if self._space_name is None:
            return space_row(read_manifest(self.path))
        return self.space_of(self._space_name)

    @property
    def dir(self) -> Path:
        """The space's folder: its manifest, shards and index."""
        return files.space_dir(self.path, self.space.folder)

    @cached_property
    def manifest(self) -> Manifest:
        return read_manifest(self.dir)

    def reader(self, views: bool = False):
        """A read-only catalog cursor (context manager); ``views``: the space's shard files
        are checked first (StoreDamaged when one is gone), as a read of its vectors needs."""
        if not views:
            return catalog.reader(self.path, threads=self.sql_threads, linger=self.linger)
        return self._with_views()

    def _with_views(self):
        import contextlib

        @contextlib.contextmanager
        def cm():
            with catalog.reader(self.path, threads=self.sql_threads,
                                linger=self.linger) as con:
                reads.require_shards(con, self.dir, self.space.name)
                yield con

        return cm()

    def vectors(self, ids=None) -> tuple[np.ndarray, np.ndarray]:
        """All the space's committed (ids, vecs) sorted by id, or those of ``ids`` in that
        order (reading only the shards that hold them)."""
        with self.reader() as con:
            names = reads.committed_shards(con, self.space.name)
            if ids is not None:
                ids = np.asarray(ids, dtype=np.int64)
                names = sorted(set(names) & set(reads.shards_holding(con, ids)))
        shards = [files.shard_path(self.dir, n) for n in names]
        all_ids, vecs = (read_shards(shards, self.manifest.dim) if ids is None
                         else read_wanted(shards, ids, self.manifest.dim))
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
            where = "" if self.space.is_default else f" in the space {self.space.name}"
            raise QueryError(f"no stored image with id {missing}{where}; see `actdb info`")
        return ids, vecs[pos if order is None else order[pos]]

    def images(self, where: str | None = None):
        """The images table (pandas DataFrame), optionally filtered by a SQL predicate."""
        with self.reader() as con:
            return reads.images(con, where)

    def info(self) -> dict:
        """What is in the store: this space's recipe, counts per split and root, classes,
        failures, size, index, statistics, and every space (``spaces``)."""
        m = self.manifest
        with self.reader() as con:
            counts = reads.summary(con)
            stats = derived.stats_config(con, self.space.name)
            lost = reads.missing_shards(con, self.dir, self.space.name)
        size = sum(p.stat().st_size for p in self.path.rglob("*") if p.is_file())
        index = read_index_info(self.dir)
        damaged = [f"{len(lost)} shard file(s) missing"] if lost else []
        if index is not None and not files.index_path(self.dir).exists():
            damaged.append(f"{files.INDEX} missing")
            index = None
        return {
            "store": str(self.path.resolve()), "space": self.space.name,
            "model": m.model, "layer": m.layer, "pool": m.pool, "dim": m.dim,
            "image_size": m.image_size, "resize": m.resize, "precision": m.precision,
            "weights": m.weights, "weights_sha256": m.weights_sha256,
            "preprocess": m.preprocess, "model_fingerprint": m.fingerprint,
            **counts, "size_bytes": size, "index": index, "stats": stats,
            "damaged": damaged,
            "spaces": self.spaces_info(),
        }

    def spaces_info(self) -> list[dict]:
        """Every space: its recipe, view, committed shards and vectors, index kind, and
        whether it keeps its model as ONNX."""
        with self.reader() as con:
            rows = reads.spaces(con)
            counts = reads.space_counts(con)
        out = []
        for r in rows:
            folder = files.space_dir(self.path, r.folder)
            index = read_index_info(folder)
            shards, vectors = counts.get(r.name, (0, 0))
            out.append({"name": r.name, "default": r.is_default, "model": r.model,
                        "layer": r.layer, "pool": r.pool, "dim": r.dim,
                        "image_size": r.image_size, "precision": r.precision,
                        "fingerprint": r.fingerprint, "shards": shards, "vectors": vectors,
                        "index": None if index is None else index.get("kind"),
                        "onnx": files.onnx_model_path(folder).is_file(),
                        "view": r.view})
        return out
