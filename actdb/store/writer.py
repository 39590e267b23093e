"""Appending to a store, crash-safely.

A commit is: write the shard (temp file + rename), then one catalog transaction that
inserts the shard's image rows, its failures and the shard's name. A shard file that the
catalog does not list is the trace of a crash between those two steps; the next writer
deletes it, and its images are simply ingested again. So a killed ingest, run again, ends
with every image exactly once.

Only one writer at a time: an exclusive ``flock`` on ``store/.lock`` (released by the kernel
even on ``kill -9``).
"""

from __future__ import annotations

import fcntl
import json
import os
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from actdb.errors import StoreError
from actdb.store import catalog
from actdb.store.manifest import Manifest, read_manifest, write_manifest
from actdb.store.shards import SHARD_DIR, list_shard_files, write_shard

IMAGE_COLUMNS = ("image_id", "root", "path", "split", "synset", "class_name", "class_index",
                 "width", "height", "bytes", "shard", "run_id")
FAILURE_COLUMNS = ("root", "path", "split", "synset", "class_name", "reason", "run_id")


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


class StoreWriter:
    """Exclusive writer over a store directory (a context manager).

    >>> with StoreWriter(path, manifest) as w:          # doctest: +SKIP
    ...     w.commit(ids, vecs, image_rows, failure_rows)
    """

    def __init__(self, path: str | Path, manifest: Manifest):
        self.path = Path(path)
        self.manifest = manifest
        self._lock_fh = None
        self._seq = 0
        self.run_id: int | None = None

    def __enter__(self) -> StoreWriter:
        self.path.mkdir(parents=True, exist_ok=True)
        self._lock_fh = open(self.path / ".lock", "a+")
        try:
            fcntl.flock(self._lock_fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock_fh.close()
            raise StoreError(
                f"another actdb process is writing to {self.path}; wait for it to finish"
            ) from None
        if (self.path / "manifest.json").exists():
            read_manifest(self.path).ensure_compatible(self.manifest)
        else:
            write_manifest(self.path, self.manifest)
        (self.path / SHARD_DIR).mkdir(exist_ok=True)
        self.remove_orphans()
        return self

    def __exit__(self, *exc) -> None:
        if self._lock_fh is not None:
            fcntl.flock(self._lock_fh, fcntl.LOCK_UN)
            self._lock_fh.close()
            self._lock_fh = None

    def connect(self):
        return catalog.connect(self.path, read_only=False, views=False)

    def remove_orphans(self) -> list[str]:
        """Delete temp files and shard files the catalog does not list (crash leftovers)."""
        with self.connect() as con:
            listed = set(catalog.committed_shards(con))
        removed = []
        d = self.path / SHARD_DIR
        for p in d.glob(".*.tmp"):
            p.unlink(missing_ok=True)
            removed.append(p.name)
        for name in list_shard_files(self.path):
            if name not in listed:
                (d / name).unlink(missing_ok=True)
                removed.append(name)
        return removed

    def existing_paths(self, root: str) -> set[str]:
        with self.connect() as con:
            rows = con.execute("SELECT path FROM images WHERE root = ?", [root]).fetchall()
        return {r[0] for r in rows}

    def next_image_id(self) -> int:
        with self.connect() as con:
            row = con.execute("SELECT coalesce(max(image_id) + 1, 0) FROM images").fetchone()
        return int(row[0])

    def start_run(self, root: str, layout: str, options: dict) -> int:
        with self.connect() as con:
            run_id = int(con.execute("SELECT coalesce(max(run_id) + 1, 1) FROM runs").fetchone()[0])
            con.execute(
                "INSERT INTO runs (run_id, started_at, root, layout, options, status) "
                "VALUES (?, ?, ?, ?, ?, 'running')",
                [run_id, _now(), root, layout, json.dumps(options, default=str)],
            )
        self.run_id = run_id
        return run_id

    def finish_run(self, status: str, ingested: int, skipped: int, failed: int) -> None:
        with self.connect() as con:
            con.execute(
                "UPDATE runs SET finished_at = ?, status = ?, ingested = ?, skipped = ?, "
                "failed = ? WHERE run_id = ?",
                [_now(), status, ingested, skipped, failed, self.run_id],
            )

    def commit(self, ids: np.ndarray, vecs: np.ndarray, images: list[tuple],
               failures: list[tuple]) -> str | None:
        """Write a shard for (ids, vecs) and record its images and these failures atomically.

        ``images`` rows follow IMAGE_COLUMNS without ``shard``/``run_id``; ``failures`` rows
        follow FAILURE_COLUMNS without ``run_id``.
        """
        name = None
        if len(ids):
            self._seq += 1
            name = f"part-r{self.run_id:04d}-{self._seq:05d}-{os.getpid()}.parquet"
            write_shard(self.path, name, ids, vecs)
        with self.connect() as con:
            con.execute("BEGIN TRANSACTION")
            try:
                if name:
                    con.register("new_images", _images_table(images, name, self.run_id))
                    cols = ", ".join(IMAGE_COLUMNS)
                    con.execute(f"INSERT INTO images ({cols}) SELECT {cols} FROM new_images")
                    con.execute("INSERT INTO shards (name, rows, run_id) VALUES (?, ?, ?)",
                                [name, len(ids), self.run_id])
                    con.execute("DELETE FROM failures f USING new_images n "
                                "WHERE f.root = n.root AND f.path = n.path")
                if failures:
                    con.executemany(
                        f"INSERT OR REPLACE INTO failures ({', '.join(FAILURE_COLUMNS)}) VALUES "
                        f"({', '.join('?' * len(FAILURE_COLUMNS))})",
                        [tuple(f) + (self.run_id,) for f in failures])
                con.execute("COMMIT")
            except Exception:
                con.execute("ROLLBACK")
                raise
        return name


def _images_table(rows: list[tuple], shard: str, run_id: int | None):
    """Image rows as an Arrow table DuckDB can insert from in one statement."""
    import pyarrow as pa

    cols = list(zip(*rows, strict=True)) if rows else [()] * (len(IMAGE_COLUMNS) - 2)
    types = [pa.int64(), pa.string(), pa.string(), pa.string(), pa.string(), pa.string(),
             pa.int32(), pa.int32(), pa.int32(), pa.int64()]
    arrays = [pa.array(list(c), type=t) for c, t in zip(cols, types, strict=True)]
    n = len(rows)
    arrays += [pa.array([shard] * n, pa.string()), pa.array([run_id] * n, pa.int32())]
    return pa.table(arrays, names=list(IMAGE_COLUMNS))
