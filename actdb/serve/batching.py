"""Coalesce concurrent embedding requests into one forward pass.

Eight clients uploading at once would otherwise run eight batch-of-one forward passes that
fight over the same cores. A single worker thread takes whatever requests are waiting (up to
``max_batch`` images, waiting at most ``wait_s`` for more once one has arrived) and embeds them
together; vectors equal embedding each request alone, to float rounding (checked in the
tests).

>>> emb = BatchingEmbedder(Embedder(cfg))          # doctest: +SKIP
>>> emb.embed(images)                              # doctest: +SKIP
"""

from __future__ import annotations

import queue
import threading
from concurrent.futures import Future

import numpy as np

from actdb.models.embed import Embedder


class BatchingEmbedder:
    """Drop-in for :class:`actdb.models.embed.Embedder` that batches across threads."""

    def __init__(self, embedder, max_batch: int = 32, wait_s: float = 0.005):
        self.inner = embedder
        self.max_batch = max_batch
        self.wait_s = wait_s
        self._queue: queue.Queue = queue.Queue()
        threading.Thread(target=self._work, name="actdb-embed", daemon=True).start()

    def __getattr__(self, name):  # config, dim, weights_sha256, fingerprint, model, ...
        return getattr(self.inner, name)

    def embed(self, images: np.ndarray) -> np.ndarray:
        fut: Future = Future()
        self._queue.put((np.asarray(images), fut))
        return fut.result()

    embed_files = Embedder.embed_files  # the same decoding, then our batching embed

    def _work(self) -> None:
        while True:
            jobs = [self._queue.get()]
            n = len(jobs[0][0])
            while n < self.max_batch:
                try:
                    job = self._queue.get(timeout=self.wait_s)
                except queue.Empty:
                    break
                jobs.append(job)
                n += len(job[0])
            try:
                out = self.inner.embed(np.concatenate([j[0] for j in jobs]))
            except Exception as exc:  # noqa: BLE001 - hand the error to every waiting caller
                for _, fut in jobs:
                    fut.set_exception(exc)
                continue
            at = 0
            for images, fut in jobs:
                fut.set_result(out[at : at + len(images)])
                at += len(images)
