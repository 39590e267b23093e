"""Appending to a store, crash-safely.

A commit is: write the shard (temp file + rename), then one catalog transaction that
inserts the shard's image rows, its failures and the shard's name. A shard file that the
catalog does not list is the trace of a crash between those two steps; the next writer
deletes it, and its images are simply ingested again. So a killed ingest, run again, ends
with every image exactly once.

Only one writer at a time: an exclusive ``flock`` on the store's lock file (released by the
kernel even on ``kill -9``). The catalog itself is opened only for the moment of each write.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

import numpy as np

from actdb.errors import StoreError
from actdb.store import catalog
from actdb.store.catalog import reads, writes
from actdb.store.catalog.files import (
    SHARD_DIR,
    WRITER_LOCK,
    manifest_path,
    shard_files_on_disk,
    shard_name,
    shard_path,
    temp_files,
)
from actdb.store.catalog.schema import FailureRow, ImageRow
from actdb.store.manifest import Manifest, read_manifest, write_manifest
from actdb.store.shards import write_shard


class StoreWriter:
    """Exclusive writer over a store directory (a context manager).

    For example::

        with StoreWriter(path, manifest) as w:
            w.start_run(root, "splits", {})
            w.commit(ids, vecs, image_rows, failure_rows)
    """

    def __init__(self, path: str | Path, manifest: Manifest, check_shards: bool = True):
        self.path = Path(path)
        self.manifest = manifest
        self.check_shards = check_shards
        self._lock_fh = None
        self._seq = 0
        self.run_id: int | None = None

    def __enter__(self) -> StoreWriter:
        self.path.mkdir(parents=True, exist_ok=True)
        self._lock_fh = open(self.path / WRITER_LOCK, "a+")  # noqa: SIM115 - closed in __exit__
        try:
            fcntl.flock(self._lock_fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock_fh.close()
            raise StoreError(
                f"another actdb process is writing to {self.path}; wait for it to finish"
            ) from None
        try:
            if manifest_path(self.path).exists():
                read_manifest(self.path).ensure_compatible(self.manifest)
            else:
                write_manifest(self.path, self.manifest)
            (self.path / SHARD_DIR).mkdir(exist_ok=True)
            with self.connect() as con:
                writes.ensure_schema(con, self.manifest.dim)
                if self.check_shards:
                    reads.require_shards(con, self.path)
                    writes.ensure_views(con, self.manifest.dim, self.manifest.fingerprint)
            self.remove_orphans()
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc) -> None:
        if self._lock_fh is not None:
            fcntl.flock(self._lock_fh, fcntl.LOCK_UN)
            self._lock_fh.close()
            self._lock_fh = None

    def connect(self):
        """The catalog, read-write, for one transaction."""
        return catalog.writer(self.path)

    def remove_orphans(self) -> list[str]:
        """Delete temp files and shard files the catalog does not list (crash leftovers)."""
        with self.connect() as con:
            listed = set(reads.committed_shards(con))
        removed = []
        for p in temp_files(self.path):
            p.unlink(missing_ok=True)
            removed.append(p.name)
        for name in shard_files_on_disk(self.path):
            if name not in listed:
                shard_path(self.path, name).unlink(missing_ok=True)
                removed.append(name)
        return removed

    def existing_paths(self, root: str) -> set[str]:
        with self.connect() as con:
            return reads.existing_paths(con, root)

    def next_image_id(self) -> int:
        with self.connect() as con:
            return reads.next_image_id(con)

    def start_run(self, root: str, layout: str, options: dict) -> int:
        with self.connect() as con:
            self.run_id = reads.next_run_id(con)
            writes.start_run(con, self.run_id, root, layout, options)
        return self.run_id

    def finish_run(self, status: str, ingested: int, skipped: int, failed: int) -> None:
        with self.connect() as con:
            writes.finish_run(con, self.run_id, status, ingested, skipped, failed)

    def commit(self, ids: np.ndarray, vecs: np.ndarray, images: list[ImageRow],
               failures: list[FailureRow]) -> str | None:
        """Write a shard for (ids, vecs) and record its images and these failures atomically.
        """
        name = None
        if len(ids):
            self._seq += 1
            name = shard_name(self.run_id, self._seq, os.getpid())
            write_shard(self.path, name, ids, vecs)
        with self.connect() as con:
            writes.commit_shard(con, name, len(ids), images, failures, self.run_id,
                                dim=self.manifest.dim, fingerprint=self.manifest.fingerprint)
        return name
