"""What the queries of one store keep between calls, and the one check that keeps it true.

A handle that answers many queries (a server, a notebook loop) should not load the index,
read the distance reference or build the model for each one. :class:`QueryContext` holds all
of it: the loaded index, the distance reference, the images' metadata (in memory, see
``cache_metadata``), the query cache, the embedder and the maps loaded so far.
:meth:`~QueryContext.refresh_if_changed` is the one place that decides what is still true:
the index when its files changed; the reference, the metadata and the "shards intact" check
when the catalog's data version did (an ingest, a repair, a statistics run); the loaded maps
and the query cache's keys are checked again after any change of the catalog file (a
query-cache or map write changes the file, not the data). Each face call refreshes once,
then reads what it needs.

>>> ctx = QueryContext(Store.open(store))
>>> ctx.refresh_if_changed()
>>> ctx.index.ntotal
18
>>> ctx.close()
"""

from __future__ import annotations

import os
import threading

import numpy as np

from actdb.errors import StoreError
from actdb.store.catalog import derived, files, reads
from actdb.store.store import Store

#: How often a server writes the query vectors it computed (``sql`` writes them first).
CACHE_FLUSH_S = 10.0
#: ``cache_metadata=None`` keeps the metadata in memory from this many answers on.
METADATA_AFTER = 2


def _signature(*paths: str) -> tuple:
    """(mtime, size) of files: changes when a writer commits."""
    sig = []
    for p in paths:
        try:
            st = os.stat(p)
            sig.append((st.st_mtime_ns, st.st_size))
        except FileNotFoundError:
            sig.append(None)
    return tuple(sig)


class QueryContext:
    """The loaded state of one space's queries (thread-safe; ``close()`` stops its threads);
    each :class:`actdb.space.Space` holds one.

    ``defer_cache_writes``, ``batch_uploads`` and ``cache_metadata``: see
    :class:`actdb.database.Database`.
    """

    def __init__(self, store: Store, *, defer_cache_writes: bool = False,
                 batch_uploads: bool = False, cache_metadata: bool | None = None,
                 runtime: str | None = None):
        self.store = store
        self.runtime = runtime
        self.defer_cache_writes = defer_cache_writes
        self.batch_uploads = batch_uploads
        self.cache_metadata = cache_metadata
        self._lock = threading.RLock()
        # as str: os.stat takes them without a call to Path.__fspath__ (a query's path)
        self._index_files = (str(files.index_path(store.dir)),
                             str(files.index_info_path(store.dir)))
        self._catalog_files = (str(files.catalog_path(store.path)),
                               str(files.catalog_wal_path(store.path)))
        self._index_sig = self._catalog_sig = self._version = None
        self._index = self._reference = self._meta = None
        self._loading = None  # (thread, result box, index signature) of an early load
        self._embedder = self._cache = self._route = None
        self._intact = False
        self._answered = 0
        self._maps: dict = {}  # map_id -> StoredMap, its projection loaded once
        self._maps_checked: set[str] = set()  # maps checked since the catalog last changed

    def refresh_if_changed(self) -> None:
        """Forget what a writer (in this process or another) has changed since the last call:
        four ``stat`` calls (catalog and its WAL, index and its description) when nothing
        has, one catalog read when only the catalog file has."""
        sig = _signature(*self._catalog_files, *self._index_files)
        catalog_sig = sig[: len(self._catalog_files)]
        with self._lock:
            self._check_index(sig[len(self._catalog_files):])
            if catalog_sig == self._catalog_sig:
                return
            self._catalog_sig = catalog_sig
            self._maps_checked = set()
            if self._cache is not None:
                self._cache.forget_keys()
            with self.store.reader() as con:
                version = derived.data_version(con, self.store.space.name)
            if version != self._version:
                self._version = version
                self._reference = self._meta = None
                self._intact = False

    # -- what queries read -------------------------------------------------------------------

    def _check_index(self, index_sig: tuple | None = None) -> None:
        """Forget the loaded index when its files changed (holding the lock); ``index_sig``:
        their signature, taken just now."""
        index_sig = index_sig or _signature(*self._index_files)
        if index_sig != self._index_sig:
            self._index, self._index_sig = None, index_sig

    def load_index_early(self) -> None:
        """Start reading the index on another thread, which FAISS lets run while this one
        opens the catalog (a cold ``nearest id:N`` saves the read; bench/query.py times it);
        ``index`` waits for it. The thread ends with the read."""
        if self._index is not None:
            return  # loaded: refresh_if_changed checks its files
        from actdb.index.loaded import LoadedIndex

        with self._lock:
            if self._index is not None or self._loading is not None:
                return
            self._check_index()
            box: dict = {}

            def load():
                try:
                    box["index"] = LoadedIndex.open(self.store.dir)
                except Exception as exc:  # noqa: BLE001 - raised again by ``index``
                    box["error"] = exc

            thread = threading.Thread(target=load, name="actdb-index-load", daemon=True)
            self._loading = (thread, box, self._index_sig)
            thread.start()

    @property
    def index(self):
        """The store's LoadedIndex (StoreError when it has none)."""
        index = self._index
        if index is not None:
            return index
        from actdb.index.loaded import LoadedIndex

        with self._lock:
            if self._index is None and self._loading is not None:
                thread, box, sig = self._loading
                self._loading = None
                thread.join()
                if sig == self._index_sig:  # else the files changed since: read them again
                    if "error" in box:
                        raise box["error"]
                    self._index = box["index"]
            if self._index is None:
                self._index = LoadedIndex.open(self.store.dir)
            return self._index

    @property
    def reference(self):
        """The distance reference of the query context (``derived.distance_reference``)."""
        with self._lock:
            if self._reference is None:
                with self.store.reader() as con:
                    self._reference = derived.distance_reference(
                        con, self.store.space.name)
            return self._reference

    def image_meta(self, ids: np.ndarray) -> dict[str, np.ndarray]:
        """The rows of these images (``reads.META_COLUMNS``), from memory once this context
        keeps the metadata (see ``cache_metadata``), else read from the catalog."""
        with self._lock:
            self._answered += 1
            keep = self.cache_metadata or (self.cache_metadata is None
                                           and self._answered > METADATA_AFTER)
            if keep and self._meta is None:
                with self.store.reader() as con:
                    self._meta = reads.ImageMeta.read(con)
            meta = self._meta if keep else None
        if meta is not None:
            return meta.rows(ids)
        with self.store.reader() as con:
            return reads.image_meta(con, ids)

    def stored_vectors(self, ids: list[int]) -> np.ndarray:
        """Stored vectors: straight from the index when it holds them unchanged (memory-mapped
        rows), else from the shards."""
        try:
            vecs = self.index.vectors(ids)
        except StoreError:
            vecs = None
        return self.store.vectors(ids)[1] if vecs is None else vecs

    def require_intact(self) -> None:
        """StoreDamaged when a shard the catalog lists is gone (checked once per data
        version)."""
        if not self._intact:
            with self.store.reader() as con:
                reads.require_shards(con, self.store.dir, self.store.space.name)
            self._intact = True

    # -- the model and the query cache -------------------------------------------------------

    @property
    def route(self) -> str:
        """The numeric route image queries take (runtime and precision, ``onnx-fp32``,
        ``keras-bf16``...): the embedder's once it is built, else the planned one
        (:func:`actdb.runtime.planned_route`), known without building it."""
        emb = self._embedder
        if emb is not None:
            return emb.route
        if self._route is None:
            from actdb.runtime import planned_route

            self._route = planned_route(self.store, self.runtime)
        return self._route

    @property
    def embedder(self):
        """What embeds query images under ``runtime`` (:func:`actdb.runtime.query_embedder`),
        made on first use. When it cannot take the planned route (a warning says why), the
        query cache follows the route it takes."""
        with self._lock:
            if self._embedder is None:
                from actdb.runtime import query_embedder

                emb = query_embedder(self.store, self.runtime)
                if self.batch_uploads:
                    from actdb.models.batching import BatchingEmbedder

                    emb = BatchingEmbedder(emb)
                self._embedder = emb
                if self._cache is not None and self._cache.route != emb.route:
                    self._cache.close()
                    self._cache = None
            return self._embedder

    def embed_images(self, images: list, names: list[str] | None = None) -> np.ndarray:
        """Decode image files (or bytes) as the store's images were, then embed them (a bad
        image's error names it: ``names``, else its path)."""
        from actdb.models.common import embed_decoded

        return embed_decoded(self.embedder, images, names=names)

    @property
    def cache(self):
        """The store's query cache (writes deferred to a background thread when
        ``defer_cache_writes``)."""
        from actdb.query.cache import QueryCache

        with self._lock:
            if self._cache is None:
                self._cache = QueryCache(self.store, route=self.route,
                                         deferred=self.defer_cache_writes,
                                         interval_s=CACHE_FLUSH_S,
                                         keep_keys=self.defer_cache_writes)
            return self._cache

    def flush_cache(self) -> None:
        """Write the pending query vectors now (before SQL reads the ``queries`` view)."""
        if self._cache is not None:
            self._cache.flush()

    # -- maps --------------------------------------------------------------------------------

    def stored_map(self, map_id: str):
        """A stored map by id, kept loaded while it stays current (None: there is none)."""
        from actdb.viz.maps import find_map, map_state

        with self._lock:
            m = self._maps.get(map_id)
            if m is not None and (not m.stored or map_id in self._maps_checked):
                return m
        if m is not None and map_state(self.store, map_id) == (str(m.created_at), True):
            with self._lock:
                self._maps_checked.add(map_id)
            return m
        m = find_map(self.store, map_id)
        if m is not None:
            self.keep_map(m)
        return m

    def keep_map(self, m) -> None:
        """Hold a map this handle made or read, for the calls after."""
        with self._lock:
            self._maps[m.map_id] = m
            self._maps_checked.add(m.map_id)

    def close(self) -> None:
        """Flush and stop the background writer and the batching; drop what is loaded."""
        with self._lock:
            if self._loading is not None:
                self._loading[0].join()
                self._loading = None
            if self._cache is not None:
                self._cache.close()
            if hasattr(self._embedder, "close"):
                self._embedder.close()
            self._cache = self._embedder = self._index = self._route = None
            self._reference = self._meta = None
            self._maps = {}
