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
from dataclasses import replace
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
    space_dir,
    space_folder,
    temp_files,
)
from actdb.store.catalog.schema import FailureRow, ImageRow, SpaceRow
from actdb.store.manifest import (
    FORMAT_VERSION,
    Manifest,
    read_manifest,
    space_row,
    write_manifest,
)
from actdb.store.shards import write_shard


class StoreWriter:
    """Exclusive writer over a store directory (a context manager).

    ``manifest``: the recipe of the space(s) this writer commits vectors of (a list: several
    spaces, written by one forward pass), the first one the default when the store is new;
    a space the store lacks is added; None: the store as it is (statistics, repairs). For
    example::

        with StoreWriter(path, manifest) as w:
            w.start_run(root, "splits", {})
            w.commit(ids, [vecs], image_rows, failure_rows)
    """

    def __init__(self, path: str | Path, manifest: Manifest | list[Manifest] | None = None,
                 check_shards: bool = True, run_id: int | None = None):
        self.path = Path(path)
        self.manifests = [manifest] if isinstance(manifest, Manifest) else list(manifest or [])
        self.check_shards = check_shards
        self._lock_fh = None
        self._seq = 0
        self.run_id = run_id  # the run its shards belong to (start_run sets a new one)
        self.spaces: list[SpaceRow] = []  # what commit() writes, in the manifests' order

    @property
    def manifest(self) -> Manifest:
        """The default space's recipe."""
        return read_manifest(self.path)

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
            self._open()
        except BaseException:
            self.__exit__()
            raise
        return self

    def _open(self) -> None:
        if not manifest_path(self.path).exists():
            if not self.manifests:
                raise StoreError(f"no actdb store at {self.path}")
            write_manifest(self.path, self.manifests[0])
        default = read_manifest(self.path, upgrade=True)
        (self.path / SHARD_DIR).mkdir(exist_ok=True)
        with self.connect() as con:
            writes.ensure_schema(con, space_row(default))  # a format-2 catalog: migrated
            rows = {r.name: r for r in reads.spaces(con)}
            if not rows:
                writes.add_space(con, rows.setdefault(default.space_name, space_row(default)))
        if default.format_version != FORMAT_VERSION:
            write_manifest(self.path, replace(default, format_version=FORMAT_VERSION))
        for m in self.manifests:
            row = rows.get(m.space_name) or self._add_space(m, len(rows))
            rows[row.name] = row
            read_manifest(space_dir(self.path, row.folder)).ensure_compatible(
                m, f"the space {row.name} of the store")
            self.spaces.append(row)
        if self.check_shards:
            with self.connect() as con:
                for row in rows.values():
                    reads.require_shards(con, space_dir(self.path, row.folder), row.name)
        self.remove_orphans()

    def _add_space(self, m: Manifest, position: int) -> SpaceRow:
        row = space_row(m, folder=space_folder(m.model_label, m.layer), is_default=False,
                        position=position)
        folder = space_dir(self.path, row.folder)
        (folder / SHARD_DIR).mkdir(parents=True, exist_ok=True)
        write_manifest(folder, m)
        with self.connect() as con:
            writes.add_space(con, row)
        return row

    def __exit__(self, *exc) -> None:
        if self._lock_fh is not None:
            fcntl.flock(self._lock_fh, fcntl.LOCK_UN)
            self._lock_fh.close()
            self._lock_fh = None

    def connect(self):
        """The catalog, read-write, for one transaction."""
        return catalog.writer(self.path)

    def remove_orphans(self) -> list[str]:
        """Delete temp files and shard files the catalog does not list (crash leftovers), in
        every space."""
        with self.connect() as con:
            listed = reads.all_shards(con)
            rows = reads.spaces(con)
        removed = []
        for p in temp_files(self.path):
            p.unlink(missing_ok=True)
            removed.append(p.name)
        for row in rows:
            folder = space_dir(self.path, row.folder)
            for name in sorted(set(shard_files_on_disk(folder)) - set(listed.get(row.name, []))):
                shard_path(folder, name).unlink(missing_ok=True)
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

    def commit(self, ids: np.ndarray, vecs: list[np.ndarray], images: list[ImageRow],
               failures: list[FailureRow]) -> str | None:
        """Write a shard of (ids, vecs) in each of this writer's spaces (``vecs``: one array
        each, in :attr:`spaces`' order) and record its images and these failures atomically.
        """
        name = None
        if len(ids):
            self._seq += 1
            name = shard_name(self.run_id, self._seq, os.getpid())
            for row, v in zip(self.spaces, vecs, strict=True):
                write_shard(space_dir(self.path, row.folder), name, ids, v)
        with self.connect() as con:
            writes.commit_shard(con, name, {r.name: len(ids) for r in self.spaces}, images,
                                failures, self.run_id)
        return name

    def fill(self, shard: str, spaces: list[SpaceRow], ids: np.ndarray,
             vecs: list[np.ndarray]) -> None:
        """Write the images of an existing image shard into further spaces (one array each,
        in ``spaces``' order; ``ids`` may lack images that failed), listed atomically."""
        for row, v in zip(spaces, vecs, strict=True):
            write_shard(space_dir(self.path, row.folder), shard, ids, v)
        with self.connect() as con:
            writes.commit_shard(con, shard, {r.name: len(ids) for r in spaces}, [], [],
                                self.run_id)


def upgrade(path: Path) -> None:
    """Bring a store made before spaces to this format (what opening it does, once)."""
    try:
        with StoreWriter(path, check_shards=False):
            pass
    except PermissionError:
        raise StoreError(f"the store at {path} was made by an earlier actdb and is upgraded "
                         "when first opened, which needs it writable: open it once where it "
                         "can be written (or copy it)") from None
