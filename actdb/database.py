"""``actdb.open()``: one object for everything the command line and the service can do.

>>> import actdb
>>> db = actdb.open(store)                   # db.ingest("imagenet/", per_class=100) made it
>>> db.count()
18
>>> db.space().nearest("id:0", k=3).neighbors.class_name.tolist()
['tench', 'tench', 'tench']
>>> db.sql("SELECT count(*) AS n FROM classes").to_pylist()
[{'n': 3}]
>>> db.spaces().name.tolist()
['vgg19/block5_conv4']

The store-wide questions are methods of :class:`Database` (``ingest``, ``info``, ``check``,
``compare``, ``sql``, the images and classes, ``across_spaces``); every question asked of one
space's vectors (``nearest``, ``centroids``, ``examples``, ``index``, ``stats``, ``plot``,
``map``, ``export``, ``atlas``, ``report``, ``embed``) is a method of the
:class:`~actdb.space.Space` that ``db.space(name)`` gives, with the command's name and
options as keyword arguments. Results are pandas DataFrames, pyarrow Tables or small
dataclasses. The store's path is resolved here and nowhere else: ``path``, else
``$ACTDB_STORE``, else ``./actdb-store``; it need not exist until ``ingest`` makes it.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from pathlib import Path

from actdb.errors import NotFound, Refused
from actdb.progress import progress_for
from actdb.query.resolve import Upload
from actdb.space import Space, configured, positive
from actdb.store.catalog import derived, reads
from actdb.store.store import Store, resolve_store_path

__all__ = ["Database", "Space", "Upload"]


class Database:
    """A store, opened for everything. Thread-safe; ``close()`` stops its background work.

    ``sql_threads`` bounds DuckDB's threads for SQL (a server leaves cores to the model);
    ``linger`` keeps the catalog open that many seconds after a read (a cold query pays
    most for opening it; a writer in this process or another still gets in at once);
    ``defer_cache_writes`` writes the query cache from a background thread every
    ``CACHE_FLUSH_S`` seconds (each write closes the shared catalog instance) and keeps the
    cache's keys in memory;
    ``batch_uploads`` lets concurrent image queries share forward passes; ``cache_metadata``
    keeps the images' names and paths in memory (~70 bytes an image) once a space has
    answered a few queries (True: from the first; False: never), instead of a catalog read
    per answer. The service sets all of them. They hold for every :meth:`space`.

    ``runtime`` embeds query images with ``"onnx"`` (ONNX Runtime on the space's ONNX model,
    exported and checked the first time when the store has none) or the network's framework,
    ``"keras"`` or ``"torch"``; None: ONNX where the space keeps a checked model, else the
    framework (:mod:`actdb.runtime`).
    """

    def __init__(self, path: str | Path | None = None, *, sql_threads: int | None = None,
                 linger: float = 1.0, defer_cache_writes: bool = False,
                 batch_uploads: bool = False, cache_metadata: bool | None = None,
                 runtime: str | None = None):
        from actdb.runtime import check_runtime

        self.path = resolve_store_path(path)
        self._sql_threads, self._linger = sql_threads, linger
        self._options = {"defer_cache_writes": defer_cache_writes,
                         "batch_uploads": batch_uploads, "cache_metadata": cache_metadata,
                         "runtime": check_runtime(runtime)}
        self._lock = threading.Lock()
        self._store: Store | None = None
        self._spaces: dict[str, Space] = {}  # what space() gave, by full name

    def __repr__(self) -> str:
        return f"Database({str(self.path)!r})"

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Flush and stop every space's background writers and batching; drop what they
        loaded. The handle stays usable: the next call opens the store again."""
        with self._lock:
            spaces, self._spaces, self._store = list(self._spaces.values()), {}, None
        for space in spaces:
            space.close()
        if self._linger:
            from actdb.store import catalog

            catalog.close_idle(self.path)

    # -- the store and its spaces ------------------------------------------------------------

    def exists(self) -> bool:
        """Whether there is a store at :attr:`path` yet (``ingest`` makes one)."""
        from actdb.store.catalog.files import manifest_path

        return manifest_path(self.path).is_file()

    @property
    def store(self) -> Store:
        """The opened store, seen through its default space (StoreError when there is none
        yet)."""
        with self._lock:
            if self._store is None:
                self._store = Store.open(self.path, self._sql_threads, self._linger)
            return self._store

    def space(self, name: str | None = None) -> Space:
        """One space of the store (``vgg19/block4_conv4``, or a unique short form such as
        ``block4_conv4``; None: the default), kept until :meth:`close`. NotFound for a space
        the store lacks."""
        store = self.store
        full = store.space.name if name is None else store.space_of(name).name
        with self._lock:
            space = self._spaces.get(full)
        if space is None:
            made = Space(store if full == store.space.name else store.in_space(full),
                         self._options, across=self.across_spaces)
            with self._lock:
                space = self._spaces.setdefault(full, made)
            if space is not made:
                made.close()
        return space

    def spaces(self):
        """Every space of the store (DataFrame: name, default, model, layer, pool, dim,
        image_size, precision, fingerprint, shards, vectors, index, onnx, view), the default
        first."""
        from actdb.viz.notebook import Spaces

        return Spaces(self.store.spaces_info())

    def ingest(self, root: str | Path, progress: bool | Callable | None = None, **options):
        """Embed the images under ``root`` into this store (made when missing), resuming and
        skipping what is there; then update the index and the statistics. Into a store that
        exists, the recipe options default to its manifest's (a conflicting one is refused).

        Options are :class:`~actdb.ingest.pipeline.IngestConfig`'s (``per_class``, ``limit``,
        ``seed``, ``split``, ``batch_size``, ``strict``, ``shard``, ``rows_per_shard``,
        ``workers``, ``engine``...) and :class:`~actdb.options.EmbedConfig`'s (``model``,
        ``layer``, ``pool``, ``weights``, ``image_size``, ``resize``, ``precision``).
        ``layers`` ("a,b" or a list) embeds several layers of the model in one forward pass,
        a space each. Another model or layer than the store's adds a space, and fills it with
        every image the store holds; new images go into every space. ``progress``: a bar in
        a notebook (see :mod:`actdb.progress`), or a callable given ``(done, total)``.
        """
        from actdb.ingest.pipeline import IngestConfig, ingest

        with progress_for(progress, "ingest") as report:
            result = ingest(IngestConfig.of(root, self.path, **options), report)
        self.close()  # the store may be new: open it again on the next call
        return result

    def info(self) -> dict:
        """What is in the store, seen from its default space (:meth:`Space.info`)."""
        return self.space().info()

    def check(self, repair: bool = False):
        """Verify that every file of the store agrees (CheckReport); ``repair=True`` first
        rebuilds what can be rebuilt."""
        from actdb.check import check_store, repair_store

        return repair_store(self.store) if repair else check_store(self.store)

    def compare(self, config=None, progress: bool | Callable | None = None, **options):
        """Compare every space of the store on one seeded sample of ``sample`` shared images
        (CompareResult): linear CKA of every pair (exact, or the debiased minibatch estimate
        when the sample's vectors do not fit in memory), each space's leave-one-out k-NN
        class accuracy (``k`` neighbours, ``queries`` voters) and same/different-class
        distance ratio (``pairs`` pairs); kept in ``space_similarity`` and
        ``space_separation``. Options are :class:`~actdb.options.CompareConfig`'s fields;
        ``progress`` as :meth:`ingest`'s."""
        from actdb.comparing import compare_spaces
        from actdb.options import CompareConfig

        cfg = configured(CompareConfig, config, options, "compare")
        with progress_for(progress, "compare") as report:
            return compare_spaces(self.store, cfg, report)

    def images(self, where: str | None = None):
        """The images table (DataFrame), optionally filtered by a SQL predicate."""
        return self.store.images(where)

    def count(self) -> int:
        """How many images the store holds."""
        with self.store.reader() as con:
            return reads.summary(con)["images"]

    def classes(self):
        """The classes view (DataFrame): class_key, synset, class_name, class_index,
        n_images."""
        with self.store.reader() as con:
            return reads.classes_df(con)

    def image_file(self, image_id: int) -> Path:
        """The file of a stored image, as ingested (NotFound when there is no such image or
        its file is gone; Refused for a path outside its dataset root)."""
        with self.store.reader() as con:
            meta = reads.image_meta(con, [image_id], missing_ok=True)
        if meta["root"][0] is None:
            raise NotFound(f"no stored image with id {image_id}")
        root = Path(meta["root"][0]).resolve()
        full = (root / meta["path"][0]).resolve()
        if not full.is_relative_to(root):  # never read outside the dataset root
            raise Refused(f"the path of image {image_id} is outside its dataset root")
        if not full.is_file():
            raise NotFound(f"the file of image {image_id} is gone")
        return full

    def thumbnail(self, image_id: int, size: int = 128) -> bytes:
        """A JPEG thumbnail of a stored image, at most ``size`` px a side (never enlarged)."""
        from actdb.viz.thumbs import thumbnail

        return thumbnail(self.image_file(image_id), size)

    def channels(self):
        """The atlas's channels table (DataFrame; empty before ``atlas`` runs)."""
        with self.store.reader() as con:
            return derived.channels(con)

    @property
    def atlas_site(self) -> Path:
        """Where ``atlas`` writes its static site by default (what ``serve`` shows)."""
        from actdb.store.catalog.files import atlas_site

        return atlas_site(self.path)

    def maps(self):
        """Every stored map (DataFrame), newest first; ``current`` is False for a map made
        before the store last changed."""
        from actdb.viz.maps import list_maps

        return list_maps(self.store)

    def sql(self, query: str, max_rows: int | None = None, timeout: float | None = None):
        """One read-only SQL statement over the store's views (pyarrow Table)."""
        from actdb.query.sql import run_sql

        if max_rows is not None:
            positive("max_rows", max_rows)
        with self._lock:
            spaces = list(self._spaces.values())
        for space in spaces:  # the ``queries`` views show every query asked so far
            space._ctx.flush_cache()
        return run_sql(self.store, query, max_rows, timeout)

    # -- every space at once -----------------------------------------------------------------

    def across_spaces(self, queries, k: int = 50, classes=None, split: str | None = None,
                      where: str | None = None, names: list[str] | None = None,
                      include_self: bool = False, recall: float | None = None):
        """Where each query lands in every space (DataFrame, a row per query and space):
        the class its ``k`` nearest images vote for, the nearest centroid and whether it lies
        inside that class's p95 radius, the nearest-neighbour distance in context, and the
        route that embedded it. Every option means what it means to :meth:`Space.nearest`,
        and each space answers exactly as it does alone (its runtime and query cache); the
        spaces of one network that embed with Keras share one forward pass."""
        from actdb.query.across import askable_queries, share_forward, side_by_side, space_rows
        from actdb.viz.notebook import Across

        specs = askable_queries(queries, names)
        positive("k", k)
        rows, rows_of = [], self.store.spaces()
        spaces = [self.space(s.name) for s in rows_of]
        with contextlib.ExitStack() as stack:  # each space's context, refreshed
            share_forward([stack.enter_context(s._call(intact=False)) for s in spaces], specs)
        for row, space in zip(rows_of, spaces, strict=True):
            near, cents = space.lands(specs, k=k, centroids=1, classes=classes,
                                      split=split, where=where, include_self=include_self,
                                      recall=recall)
            rows += space_rows(row, near, cents)
        return Across(side_by_side(rows, rows_of))

    def centroids_across_spaces(self, queries, k: int = 10, classes=None):
        """:meth:`Space.centroids` asked of every space (DataFrame: ``space`` and the
        centroids' columns; each query's spaces together, in the store's order)."""
        from actdb.query.across import askable_queries, side_by_side
        from actdb.query.centroids import COLUMNS
        from actdb.viz.notebook import Centroids

        specs, spaces, rows = askable_queries(queries), self.store.spaces(), []
        for space in spaces:
            got = self.space(space.name).centroids(specs, k=k, classes=classes)
            rows += [{"space": space.name, **r} for r in got.to_dict("records")]
        return Centroids(side_by_side(rows, spaces, ["query", "space", *COLUMNS[1:]]))
