"""The models this process has built, kept for reuse: a notebook opening two stores of one
recipe, an ingest then a query, or a query asked of every space of a store of two networks
builds each model once. The state is one visible object, :data:`BUILT`, that a caller (a test,
a long-lived process done with a network) can ``clear()``.

>>> cache = ModelCache(size=2)
>>> a = cache.get(("a",), object)
>>> cache.get(("a",), object) is a, len(cache)
(True, 1)
>>> _ = cache.get(("b",), object), cache.get(("c",), object)
>>> cache.keys()  # the least recently used went first
[('b',), ('c',)]
>>> cache.clear(); len(cache)
0
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable


class ModelCache:
    """The ``size`` most recently used built models, by key (thread-safe; a model is built
    under the lock, so two threads asking for one recipe build it once)."""

    def __init__(self, size: int = 4):
        self.size = size
        self._models: dict[Hashable, object] = {}  # the most recently used last
        self._lock = threading.Lock()

    def get(self, key: Hashable, build: Callable[[], object]):
        """The model kept under ``key``, else ``build()`` (then kept)."""
        with self._lock:
            model = self._models.pop(key, None) or build()
            self._models[key] = model
            while len(self._models) > self.size:
                self._models.pop(next(iter(self._models)))
            return model

    def keys(self) -> list:
        with self._lock:
            return list(self._models)

    def clear(self) -> None:
        """Forget every kept model (the next ``get`` builds again)."""
        with self._lock:
            self._models.clear()

    def __len__(self) -> int:
        return len(self._models)


#: This process's built Embedders and LayersEmbedders (:func:`actdb.models.embed.shared_embedder`).
BUILT = ModelCache(size=4)
