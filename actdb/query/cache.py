"""Query vectors cached by content, and the names that refer to them.

An image query is embedded once per (sha256 of its bytes, model fingerprint, numeric route:
runtime and precision, :func:`actdb.runtime.planned_route`); asking again skips the model.
Two routes give slightly different numbers (ONNX Runtime fp32 and Keras bf16 differ by
bf16's rounding), so each keeps its own vectors: an answer never depends on which route
asked first. A name (file stem or ``names=``) denotes exactly one vector: binding a name
to other content rebinds it, and the caller is told (``QueryVector.rebound``).

Writes are immediate by default, or wait for the end of a :meth:`holding` block. A server
defers them (``deferred=True``): a background thread writes everything pending once per
``interval_s`` in one transaction, pending vectors are served from memory meanwhile, and
:meth:`close` stops the thread after a last flush. A server also keeps the cache's keys
(hashes and name bindings) in memory (``keep_keys``), read again after :meth:`forget_keys`
(which the query context calls when the catalog file changes), so a new upload reads nothing
from the catalog.

>>> cache = QueryCache(Store.open(store), route="keras-fp32")
>>> cache.get(["0" * 64])                             # never seen
{}
>>> cache.key == cache_key(Store.open(store).manifest.fingerprint, "keras-fp32")
True
"""

from __future__ import annotations

import collections
import threading
import weakref

import numpy as np

from actdb.errors import StoreError
from actdb.store.catalog import derived, writes
from actdb.store.catalog.schema import cache_key
from actdb.store.store import Store

MEMO_SIZE = 10_000


class QueryCache:
    """The store's cached query vectors, with an in-process memo."""

    def __init__(self, store: Store, *, route: str, deferred: bool = False,
                 interval_s: float = 1.0, keep_keys: bool = False):
        self.store = store
        self.route = route
        #: what the catalog keys this cache's rows by: the model's fingerprint and the route
        self.key = cache_key(store.manifest.fingerprint, route)
        self.keep_keys = keep_keys
        self._keys: tuple[set[str], dict[str, str]] | None = None  # (shas, names)
        self._lock = threading.Lock()
        self._memo: collections.OrderedDict[str, np.ndarray] = collections.OrderedDict()
        self._pending: list[tuple[str, str, str, np.ndarray]] = []
        self._pending_names: dict[str, str] = {}
        self._held = 0  # open holding() blocks
        self._stop = threading.Event()
        self._thread = None
        if deferred:
            self._thread = threading.Thread(target=_loop, args=(weakref.ref(self), self._stop,
                                                                interval_s),
                                            name="actdb-query-cache", daemon=True)
            self._thread.start()
            # a caller who never calls close(): the thread still stops, at the latest at exit
            weakref.finalize(self, self._stop.set)

    def get(self, shas: list[str]) -> dict[str, np.ndarray]:
        """Cached vectors of these content hashes (memo first, then the catalog)."""
        with self._lock:
            found = {s: self._memo[s] for s in shas if s in self._memo}
        unknown = [s for s in dict.fromkeys(shas) if s not in found]
        if unknown and self.keep_keys:
            have = self._catalog_keys()[0]
            unknown = [s for s in unknown if s in have]
        if unknown:
            with self.store.reader() as con:
                from_catalog = derived.cached_vectors(con, unknown, self.key)
            self._remember(from_catalog)
            found.update(from_catalog)
        return found

    def put(self, rows: list[tuple[str, str, str, np.ndarray]],
            computed: set[str] | None = None) -> set[str]:
        """Cache (sha256, name, source, vec) rows and bind the names; returns the names that
        denoted other content before. Only rows whose vector was ``computed`` now (all when
        None) or whose name changes content are written: asking the same question again
        writes nothing. Best effort: a read-only or busy store still answers."""
        self._remember({sha: vec for sha, _, _, vec in rows})
        names = [name for _, name, _, _ in rows]
        with self._lock:
            before = {n: self._pending_names[n] for n in names if n in self._pending_names}
        try:
            if self.keep_keys:
                bound = self._catalog_keys()[1]
                before = {**{n: bound[n] for n in names if n in bound}, **before}
            else:
                with self.store.reader() as con:
                    before = {**derived.name_bindings(con, [n for n in names if n not in before],
                                                    self.key), **before}
        except StoreError:
            pass
        rebound = {name for sha, name, _, _ in rows if before.get(name, sha) != sha}
        rows = [r for r in rows if computed is None or r[0] in computed or before.get(r[1]) != r[0]]
        if not rows:
            return rebound
        with self._lock:
            later = self._thread is not None or self._held
            if later:
                self._pending.extend(rows)
                self._pending_names.update({name: sha for sha, name, _, _ in rows})
        if not later:
            self._write(rows)
        return rebound

    def holding(self) -> _Holding:
        """Writes inside the block wait for its end, so a caller that reads the catalog
        after caching (``nearest``: the neighbours' rows) opens it once, then writes once."""
        return _Holding(self)

    def flush(self) -> None:
        """Write what is pending now."""
        with self._lock:
            rows, self._pending = self._pending, []
            self._pending_names = {}
        if rows:
            self._write(rows)

    def close(self) -> None:
        """Stop the background writer (after a last flush)."""
        if self._thread is not None:
            self._stop.set()
            self._thread.join(timeout=30)
            self._thread = None
        self.flush()

    def forget_keys(self) -> None:
        """The catalog changed: read the kept keys again when next needed."""
        self._keys = None

    def _catalog_keys(self) -> tuple[set[str], dict[str, str]]:
        """The catalog's cached hashes and name bindings (kept until :meth:`forget_keys`)."""
        keys = self._keys
        if keys is None:
            with self.store.reader() as con:
                keys = derived.query_cache_keys(con, self.key)
            self._keys = keys
        return keys

    def _remember(self, vecs: dict[str, np.ndarray]) -> None:
        with self._lock:
            for sha, vec in vecs.items():
                self._memo[sha] = vec
                self._memo.move_to_end(sha)
            while len(self._memo) > MEMO_SIZE:
                self._memo.popitem(last=False)

    def _write(self, rows) -> None:
        from actdb.store import catalog

        try:
            with catalog.writer(self.store.path, timeout=5) as con:
                writes.put_queries(con, self.key, rows)
        except (StoreError, OSError):
            pass


class _Holding:
    """The block of :meth:`QueryCache.holding` (a class: a query's fastest path)."""

    def __init__(self, cache: QueryCache) -> None:
        self.cache = cache

    def __enter__(self) -> QueryCache:
        cache = self.cache
        with cache._lock:
            cache._held += 1
        return cache

    def __exit__(self, *exc) -> None:
        cache = self.cache
        with cache._lock:
            cache._held -= 1
            last = not cache._held
        if last and cache._thread is None:
            cache.flush()


def _loop(cache_ref, stop: threading.Event, interval_s: float) -> None:
    """The deferred writer: holds only a weak reference, so a forgotten cache can go."""
    while not stop.wait(interval_s):
        cache = cache_ref()
        if cache is None:
            return
        cache.flush()
        del cache
