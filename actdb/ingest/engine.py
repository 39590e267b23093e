"""The seam between the ingest driver and an engine, and the local engine.

An engine only produces: for the images it is given, in listing order, batches of
:class:`Embedded` rows (each image's vector or why it failed, and its size). The driver
(``pipeline.ingest``) does everything around it once, for every engine: the options, the
layout, the store's writer, resume, ids, commits, failures, the run record, the index and
the statistics. Faults are injected in tests by handing the driver another engine.

An engine is a context manager (a cluster it starts is stopped on exit) with:

- ``prepare(ec, layers) -> list[Embedder]``: one embedder per layer of ``ec``'s network,
  each the one whose fingerprint its space's manifest records (its ``config`` is the
  resolved recipe);
- ``options() -> dict``: what the run record adds for this engine;
- ``produce(todo, root) -> Iterator[list[Embedded]]`` (only called with images to do).
"""

from __future__ import annotations

import collections
import os
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from actdb.errors import ImageError
from actdb.images import Decoded, decode_files
from actdb.ingest.layout import ImageEntry
from actdb.models.embed import (
    EmbedConfig,
    Embedder,
    default_batch_size,
    gpu_capability,
    layers_embedder,
)

DECODERS = ("auto", "threads", "processes")


@dataclass(frozen=True, kw_only=True)
class RayConfig:
    """How the Ray engine uses the cluster. None: decided from the cluster's resources."""

    address: str | None = None
    actors: int | None = None
    actor_cpus: float | None = None
    actor_gpus: float | None = None


@dataclass(frozen=True, kw_only=True)
class Embedded:
    """One image as an engine hands it back: its vector in each layer asked, or the reason it
    failed."""

    entry: ImageEntry
    vecs: tuple[np.ndarray, ...] | None = None
    error: str | None = None
    width: int = 0
    height: int = 0
    nbytes: int = 0


def decoded(entries: list[ImageEntry], root: Path, size: int, resize: str, workers: int,
            processes: bool, chunk: int = 16
            ) -> Iterator[tuple[ImageEntry, Decoded | ImageError]]:
    """Yield (entry, Decoded | ImageError) in listing order, decoding ahead in
    ``workers`` threads or processes, ``chunk`` files a task (a few batches in flight)."""
    if processes:
        import multiprocessing

        pool = ProcessPoolExecutor(max_workers=workers,  # forkserver: never fork TensorFlow
                                   mp_context=multiprocessing.get_context("forkserver"))
    else:
        pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="actdb-decode")
    pending: collections.deque = collections.deque()
    chunks = (entries[i : i + chunk] for i in range(0, len(entries), chunk))
    with pool:
        try:
            for part in chunks:
                pending.append((part, pool.submit(decode_files, [str(root / e.path)
                                                                 for e in part], size, resize)))
                if len(pending) >= 2 * workers:
                    part0, f0 = pending.popleft()
                    yield from zip(part0, f0.result(), strict=True)
            while pending:
                part0, f0 = pending.popleft()
                yield from zip(part0, f0.result(), strict=True)
        finally:
            for _, f in pending:
                f.cancel()


class LocalEngine:
    """Decoding in threads (or processes, to feed a GPU) ahead of one in-process model."""

    def __init__(self, *, batch_size: int | None = None, workers: int | None = None,
                 decoders: str = "auto"):
        self.processes = decoders == "processes" or (
            decoders == "auto" and gpu_capability() is not None)
        self.batch_size = batch_size or default_batch_size()
        self.workers = workers or (max(1, (os.cpu_count() or 2) - 1) if self.processes else 4)
        self.emb = None  # a LayersEmbedder or OneLayer

    def __enter__(self) -> LocalEngine:
        return self

    def __exit__(self, *exc) -> None:
        return None

    def prepare(self, ec: EmbedConfig, layers: list[str]) -> list[Embedder]:
        if self.emb is None or self._asked != (ec, tuple(layers)):
            self.emb, self._asked = layers_embedder(ec, layers), (ec, tuple(layers))
        return self.emb.members

    def options(self) -> dict:
        return {"batch_size": self.batch_size, "workers": self.workers}

    def produce(self, todo: list[ImageEntry], root: Path) -> Iterator[list[Embedded]]:
        """A batch each time ``batch_size`` images are embedded (failures in their place)."""
        c = self.emb.members[0].config
        group: list = []  # Embedded failures, or (entry, Decoded) to embed
        images = 0
        for e, res in decoded(todo, Path(root), c.image_size, c.resize, self.workers,
                              self.processes):
            if isinstance(res, ImageError):
                group.append(Embedded(entry=e, error=str(res)))
                continue
            group.append((e, res))
            images += 1
            if images >= self.batch_size:
                yield self._embedded(group)
                group, images = [], 0
        if group:
            yield self._embedded(group)

    def _embedded(self, group: list) -> list[Embedded]:
        todo = [g for g in group if not isinstance(g, Embedded)]
        out = self.emb.embed(np.stack([d.array for _, d in todo])) if todo else []
        rows = iter(zip(*out, strict=True))
        return [g if isinstance(g, Embedded) else
                Embedded(entry=g[0], vecs=next(rows), width=g[1].width, height=g[1].height,
                         nbytes=g[1].nbytes) for g in group]
