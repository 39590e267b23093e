"""Connections to ``catalog.duckdb``: concurrent readers, a writer only around a commit.

DuckDB lets one process write a database file and no other process open it meanwhile, and
it locks files with POSIX ``fcntl`` locks, which a process loses as soon as *any* of its
handles on the file closes. So within a process every reader shares one read-only DuckDB
instance per store (each reader gets its own cursor, so readers never wait for each other,
and one cursor's query can be interrupted alone), opened on first use and closed when the
last reader leaves, so that other processes can write between reads. A writer waits until
the process's readers are done, opens the file read-write for the moment of its commit, and
retries while another process holds DuckDB's lock: an ingest in one process appends while
readers in others query.

The shared read-only instance has file access restricted to the store's shard folder and its
configuration locked, so user SQL (``actdb sql``, ``POST /api/sql``) can read the store and
nothing else on the machine.

>>> with reader(store) as con:
...     con.execute("SELECT count(*) FROM images").fetchall()
[(18,)]
"""

from __future__ import annotations

import contextlib
import threading
import time
from pathlib import Path

from actdb.errors import StoreError
from actdb.store.catalog.files import SHARD_DIR, catalog_path

_registry_lock = threading.Lock()
_local = threading.local()


class _Shared:
    """The process's read-only instance of one catalog file, and who is using it."""

    def __init__(self) -> None:
        self.con = None
        self.readers = 0
        self.writing = False
        self.cond = threading.Condition()


_SHARED: dict[str, _Shared] = {}


def _shared(store: Path) -> _Shared:
    key = str(catalog_path(store).resolve())
    with _registry_lock:
        return _SHARED.setdefault(key, _Shared())


def _is_lock_error(exc: Exception) -> bool:
    msg = str(exc).lower()
    return "lock" in msg and ("conflict" in msg or "could not set" in msg)


def _open(path: Path, read_only: bool, timeout: float, config: dict | None = None):
    """``duckdb.connect`` that retries while another process holds the file's lock."""
    import duckdb

    deadline = time.monotonic() + timeout
    delay = 0.01
    while True:
        try:
            return duckdb.connect(str(path), read_only=read_only, config=config or {})
        except duckdb.Error as exc:
            if not _is_lock_error(exc) or time.monotonic() > deadline:
                first = str(exc).splitlines()[0]
                raise StoreError(f"cannot open {path}: {first}; if another actdb process is "
                                 "writing to this store, try again when it is done") from None
            time.sleep(delay)
            delay = min(delay * 2, 0.25)


def _restrict(con, store: Path) -> None:
    shard_dir = (str((Path(store) / SHARD_DIR).resolve()) + "/").replace("'", "''")
    con.execute(f"SET allowed_directories = ['{shard_dir}']")
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")


def _holding() -> set:
    if not hasattr(_local, "held"):
        _local.held = set()
    return _local.held


@contextlib.contextmanager
def reader(store: Path, timeout: float = 60.0, threads: int | None = None):
    """A read-only cursor on the store's catalog (a context manager).

    ``threads`` bounds DuckDB's worker threads; it applies when this call opens the process's
    instance (the first concurrent reader decides).
    """
    path = catalog_path(store)
    if not path.exists():
        raise StoreError(f"no catalog at {path}; run `actdb ingest` into this store first")
    sh = _shared(store)
    with sh.cond:
        while sh.writing:
            sh.cond.wait()
        if sh.con is None:
            con = _open(path, True, timeout, {"threads": threads} if threads else None)
            _restrict(con, store)
            sh.con = con
        sh.readers += 1
        cur = sh.con.cursor()
    _holding().add(id(sh))
    try:
        yield cur
    finally:
        _holding().discard(id(sh))
        with sh.cond:
            cur.close()
            sh.readers -= 1
            if sh.readers == 0:
                sh.con.close()
                sh.con = None
                sh.cond.notify_all()


@contextlib.contextmanager
def writer(store: Path, timeout: float = 60.0):
    """A read-write connection, once this process's readers of the store are done."""
    sh = _shared(store)
    if id(sh) in _holding():
        raise RuntimeError("a catalog writer was asked for while this thread holds a reader")
    with sh.cond:
        while sh.writing or sh.readers:
            sh.cond.wait()
        sh.writing = True
    try:
        Path(store).mkdir(parents=True, exist_ok=True)
        con = _open(catalog_path(store), False, timeout)
        try:
            yield con
        finally:
            con.close()
    finally:
        with sh.cond:
            sh.writing = False
            sh.cond.notify_all()
