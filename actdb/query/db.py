"""The query-side handle on a store: one index, one model, many questions.

>>> import actdb
>>> db = actdb.open("actdb-store")                               # doctest: +SKIP
>>> db.nearest("node4.png", k=50).classes                        # doctest: +SKIP
>>> db.centroids("node4.png", k=10)                              # doctest: +SKIP
>>> db.sql("SELECT class_name, mean_dist FROM class_stats").to_pandas()   # doctest: +SKIP
"""

from __future__ import annotations

import threading
from pathlib import Path

from actdb.errors import ActdbError
from actdb.query.filters import ImageFilter, parse_classes
from actdb.query.vectors import QueryResolver, QueryVector
from actdb.store.store import Store


def _as_list(queries) -> list:
    import numpy as np

    if isinstance(queries, str | Path | np.ndarray) or not hasattr(queries, "__iter__"):
        return [queries]
    return list(queries)


class Database:
    """A store opened for queries. Thread-safe: the index and model are loaded once."""

    def __init__(self, store: Store):
        self.store = store
        self.resolver = QueryResolver(store, id_lookup=self._stored_vector)
        self._lock = threading.RLock()
        self._cache: dict[str, tuple] = {}

    @classmethod
    def open(cls, path: str | Path | None = None) -> Database:
        return cls(Store.open(path))

    def _signature(self, *names: str) -> tuple:
        """(mtime, size) of store files: changes whenever a writer commits."""
        sig = []
        for n in names:
            try:
                st = (self.store.path / n).stat()
                sig.append((st.st_mtime_ns, st.st_size))
            except FileNotFoundError:
                sig.append(None)
        return tuple(sig)

    def _cached(self, key: str, files: tuple[str, ...], load):
        """``load()``, cached until one of ``files`` changes (another process committed)."""
        sig = self._signature(*files)
        with self._lock:
            hit = self._cache.get(key)
            if hit is None or hit[0] != sig:
                hit = (sig, load())
                self._cache[key] = hit
            return hit[1]

    @property
    def index_info(self) -> dict:
        return self._loaded_index()[1]

    @property
    def index(self):
        """The FAISS index, reloaded when index.faiss changes on disk."""
        return self._loaded_index()[0]

    def _loaded_index(self):
        from actdb.index.faiss_index import load_index, load_info

        return self._cached("index", ("index.faiss", "index.json"),
                            lambda: (load_index(self.store.path), load_info(self.store.path)))

    def _stored_vector(self, image_id: int):
        """A stored vector straight from the (L2) index, which holds it unchanged; None when
        the index cannot say (cosine indexes hold normalised vectors; missing ids)."""
        try:
            if self.index_info["metric"] != "l2":
                return None
            return self.index.reconstruct(int(image_id))
        except (RuntimeError, ActdbError):
            return None

    def metadata(self):
        """images metadata (numpy columns sorted by image_id) and the distance-context
        reference, as of the catalog's last commit: a query costs no catalog round trip."""
        from actdb.query.nearest import load_reference

        def load():
            with self.store.connect() as con:
                meta = con.execute("SELECT image_id, class_name, synset, split, path, root "
                                   "FROM images ORDER BY image_id").fetchnumpy()
                return meta, load_reference(con)

        return self._cached("meta", ("catalog.duckdb", "catalog.duckdb.wal"), load)

    def resolve(self, queries, names: list[str] | None = None) -> list[QueryVector]:
        """Image paths, ``id:N``, ``.npy`` files, arrays or uploads -> query vectors."""
        return self.resolver.resolve(_as_list(queries), names)

    def nearest(self, queries, k: int = 10, classes=None, split: str | None = None,
                where: str | None = None, names: list[str] | None = None):
        """k nearest stored images; returns a NearestResult (``.neighbors``, ``.classes``,
        ``.context`` DataFrames)."""
        from actdb.query.nearest import nearest

        flt = ImageFilter(_classes(classes), split, where)
        return nearest(self, self.resolve(queries, names), k, flt)

    def centroids(self, queries, k: int = 10, classes=None):
        """Classes ranked by distance from the query to their centroid (DataFrame)."""
        from actdb.query.centroids import centroids

        return centroids(self, self.resolve(queries), k, _classes(classes))

    def examples(self, channel: int, k: int = 20):
        """Stored images with the highest pooled value of ``channel`` (ExamplesResult)."""
        from actdb.query.examples import examples

        return examples(self, channel, k)

    def sql(self, query: str, max_rows: int | None = None):
        """Read-only SQL over the store's views (pyarrow Table; ``.to_pandas()``)."""
        from actdb.query.sql import run_sql

        return run_sql(self.store, query, max_rows)


def _classes(classes):
    return parse_classes(classes) if isinstance(classes, str) else (
        tuple(classes) if classes else None)
