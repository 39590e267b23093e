"""The seam between the ingest driver and an engine, and the local engine.

An engine only produces: for the images it is given, in listing order, batches of
:class:`Embedded` rows (each image's vector or why it failed, and its size). The driver
(``pipeline.ingest``) does everything around it once, for every engine: the options, the
layout, the store's writer, resume, ids, commits, failures, the run record, the index and
the statistics. Faults are injected in tests by handing the driver another engine.

The contract is :class:`Engine`. Engines only place work: both run the same reader
(:func:`decode_block`) and mapper (:func:`embed_block`), the local one in a pool of threads
or processes beside one model, the Ray one as Ray Data tasks and model actors.
"""

from __future__ import annotations

import collections
import os
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from actdb.images import Decoded, decode_files
from actdb.ingest.layout import ImageEntry
from actdb.models.embed import (
    Embedder,
    default_batch_size,
    gpu_present,
    layers_embedder,
)
from actdb.options import EmbedConfig

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


class Engine(Protocol):
    """What the driver asks of an engine. A context manager (a cluster it starts is stopped
    on exit)."""

    def __enter__(self) -> Engine: ...

    def __exit__(self, *exc) -> None: ...

    def prepare(self, ec: EmbedConfig, layers: list[str]) -> list[Embedder]:
        """One embedder per layer of ``ec``'s network, each the one whose fingerprint its
        space's manifest records (its ``config`` is the resolved recipe)."""
        ...

    def options(self) -> dict:
        """What the run record adds for this engine."""
        ...

    def produce(self, todo: list[ImageEntry], root: Path) -> Iterator[list[Embedded]]:
        """Batches of rows of ``todo``, in listing order (only called with images to do)."""
        ...


def decode_block(paths: list[str], size: int, resize: str) -> dict[str, np.ndarray]:
    """The reader both engines run: a block of files decoded for the model, as columns
    (``image``, ``width``, ``height``, ``nbytes``, ``error``: "" for a file that decoded;
    a bad file never stops the others)."""
    n = len(paths)
    out = {"image": np.zeros((n, size, size, 3), np.uint8),
           "width": np.zeros(n, np.int32), "height": np.zeros(n, np.int32),
           "nbytes": np.zeros(n, np.int64), "error": np.full(n, "", dtype=object)}
    for i, res in enumerate(decode_files(paths, size, resize)):
        if not isinstance(res, Decoded):  # the ImageError that file raised
            out["error"][i] = str(res) or "unreadable"
            continue
        out["image"][i], out["width"][i], out["height"][i], out["nbytes"][i] = (
            res.array, res.width, res.height, res.nbytes)
    return out


def embed_block(emb, images: np.ndarray, ok: np.ndarray) -> list[np.ndarray]:
    """The mapper both engines run: each layer's vectors of a block of decoded images
    (``emb``: a LayersEmbedder or OneLayer), the rows that failed to decode (``ok`` False)
    left zero."""
    got = emb.embed(images[ok]) if ok.any() else None
    out = []
    for i, m in enumerate(emb.members):
        vecs = np.zeros((len(ok), m.dim), np.float32)
        if got is not None:
            vecs[ok] = got[i]
        out.append(vecs)
    return out


def decoded(entries: list[ImageEntry], root: Path, size: int, resize: str, workers: int,
            processes: bool, chunk: int = 16
            ) -> Iterator[tuple[ImageEntry, dict[str, np.ndarray], int]]:
    """Yield (entry, its block, its row in the block) in listing order, decoding blocks of
    ``chunk`` files ahead in ``workers`` threads or processes (a few batches in flight)."""
    if processes:
        import multiprocessing

        pool = ProcessPoolExecutor(max_workers=workers,  # forkserver: never fork TensorFlow
                                   mp_context=multiprocessing.get_context("forkserver"))
    else:
        pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="actdb-decode")
    pending: collections.deque = collections.deque()
    chunks = (entries[i : i + chunk] for i in range(0, len(entries), chunk))

    def rows(part, block):
        return ((e, block, i) for i, e in enumerate(part))

    with pool:
        try:
            for part in chunks:
                pending.append((part, pool.submit(decode_block, [str(root / e.path)
                                                                 for e in part], size, resize)))
                if len(pending) >= 2 * workers:
                    part0, f0 = pending.popleft()
                    yield from rows(part0, f0.result())
            while pending:
                part0, f0 = pending.popleft()
                yield from rows(part0, f0.result())
        finally:
            for _, f in pending:
                f.cancel()


class LocalEngine:
    """Decoding in threads (or processes, to feed a GPU) ahead of one in-process model."""

    def __init__(self, *, batch_size: int | None = None, workers: int | None = None,
                 decoders: str = "auto"):
        self._asked_run = (batch_size, workers, decoders)
        self.processes, self.batch_size, self.workers = False, batch_size, workers
        self.emb = None  # a LayersEmbedder or OneLayer

    def __enter__(self) -> LocalEngine:
        return self

    def __exit__(self, *exc) -> None:
        return None

    def prepare(self, ec: EmbedConfig, layers: list[str]) -> list[Embedder]:
        if self.emb is None or self._asked != (ec, tuple(layers)):
            self.emb, self._asked = layers_embedder(ec, layers), (ec, tuple(layers))
            # decoders, batch and workers as the network's framework sees the GPU (a torch
            # network's ingest imports no TensorFlow to ask)
            batch_size, workers, decoders = self._asked_run
            gpu = gpu_present(ec.model)
            self.processes = decoders == "processes" or (decoders == "auto" and gpu)
            self.batch_size = batch_size or default_batch_size(gpu=gpu)
            self.workers = workers or (max(1, (os.cpu_count() or 2) - 1) if self.processes
                                       else 4)
        return self.emb.members

    def options(self) -> dict:
        return {"batch_size": self.batch_size, "workers": self.workers}

    def produce(self, todo: list[ImageEntry], root: Path) -> Iterator[list[Embedded]]:
        """A batch each time ``batch_size`` images are embedded (failures in their place)."""
        c = self.emb.members[0].config
        group: list = []  # (entry, block, row)
        images = 0
        for e, block, i in decoded(todo, Path(root), c.image_size, c.resize, self.workers,
                                   self.processes):
            group.append((e, block, i))
            images += not block["error"][i]
            if images >= self.batch_size:
                yield self._embedded(group)
                group, images = [], 0
        if group:
            yield self._embedded(group)

    def _embedded(self, group: list) -> list[Embedded]:
        ok = np.asarray([not b["error"][i] for _, b, i in group])
        vecs = embed_block(self.emb, np.stack([b["image"][i] for _, b, i in group]), ok)
        return [Embedded(entry=e, vecs=tuple(v[j] for v in vecs), width=int(b["width"][i]),
                         height=int(b["height"][i]), nbytes=int(b["nbytes"][i]))
                if ok[j] else Embedded(entry=e, error=b["error"][i])
                for j, (e, b, i) in enumerate(group)]
