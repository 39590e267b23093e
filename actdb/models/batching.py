"""Coalesce concurrent embedding requests into one forward pass.

Eight clients uploading at once would otherwise run eight batch-of-one forward passes that
fight over the same cores. A single worker thread takes whatever requests are waiting (up to
``max_batch`` images, waiting at most ``wait_s`` for more once one has arrived, and only while
other callers are inside :meth:`embed`: a lone request never waits) and embeds them
together; vectors equal embedding each request alone, to float rounding (checked in the
tests). :meth:`close` stops the worker.

For example::

    emb = BatchingEmbedder(Embedder(cfg))
    vecs = emb.embed(images)          # from any number of threads at once
    emb.close()
"""

from __future__ import annotations

import queue
import threading
import weakref
from concurrent.futures import Future

import numpy as np

_STOP = object()


class BatchingEmbedder:
    """Drop-in for :class:`actdb.models.embed.Embedder` that batches across threads."""

    def __init__(self, embedder, max_batch: int = 32, wait_s: float = 0.005):
        self.inner = embedder
        self.max_batch = max_batch
        self.wait_s = wait_s
        self._queue: queue.Queue = queue.Queue()
        self._callers = _Callers()
        self._thread = threading.Thread(target=_work, args=(self.inner, self._queue,
                                                             max_batch, wait_s, self._callers),
                                        name="actdb-embed", daemon=True)
        self._thread.start()
        # a caller who never calls close(): the worker still stops, at the latest at exit
        weakref.finalize(self, self._queue.put, _STOP)

    def __getattr__(self, name):  # config, dim, weights_sha256, fingerprint, model, ...
        return getattr(self.inner, name)

    def embed(self, images: np.ndarray) -> np.ndarray:
        if self._thread is None:
            raise RuntimeError("this BatchingEmbedder is closed")
        fut: Future = Future()
        with self._callers:
            self._queue.put((np.asarray(images), fut))
            return fut.result()

    def close(self) -> None:
        """Finish the requests already queued, then stop the worker thread."""
        if self._thread is not None:
            self._queue.put(_STOP)
            self._thread.join(timeout=60)
            self._thread = None


class _Callers:
    """How many callers are inside ``embed`` (a context manager counts one)."""

    def __init__(self) -> None:
        self.n = 0
        self._lock = threading.Lock()

    def __enter__(self):
        with self._lock:
            self.n += 1

    def __exit__(self, *exc):
        with self._lock:
            self.n -= 1


def _work(inner, jobs_queue: queue.Queue, max_batch: int, wait_s: float,
          callers: _Callers) -> None:
    """The worker: embeds whatever is queued, batched; ends at the stop mark."""
    while True:
        first = jobs_queue.get()
        if first is _STOP:
            return
        jobs, n, stop = [first], len(first[0]), False
        while n < max_batch:
            if callers.n <= len(jobs) and jobs_queue.empty():
                break  # nobody else is waiting: do not hold this request up
            try:
                job = jobs_queue.get(timeout=wait_s)
            except queue.Empty:
                break
            if job is _STOP:
                stop = True
                break
            jobs.append(job)
            n += len(job[0])
        try:
            out = inner.embed(np.concatenate([j[0] for j in jobs]))
        except Exception as exc:  # noqa: BLE001 - hand the error to every waiting caller
            for _, fut in jobs:
                fut.set_exception(exc)
        else:
            at = 0
            for images, fut in jobs:
                fut.set_result(out[at : at + len(images)])
                at += len(images)
        if stop:
            return
