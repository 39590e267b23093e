"""Connections to ``catalog.duckdb``: concurrent readers, a writer only around a commit.

DuckDB lets one process write a database file and no other process open it meanwhile, and
it locks files with POSIX ``fcntl`` locks, which a process loses as soon as *any* of its
handles on the file closes. So within a process every reader shares one read-only DuckDB
instance per store (each reader gets its own cursor, so readers never wait for each other,
and one cursor's query can be interrupted alone), opened on first use and closed when the
last reader leaves, so that other processes can write between reads. A server passes
``linger``: the instance then stays open that long after its last reader (opening the file
is what a cold query pays most), unless a writer wants in.

A writer waits until the process's readers are done (and closes a lingering instance), opens
the file read-write for the moment of its commit, and retries while another process holds
DuckDB's lock, touching a marker file meanwhile; while the marker is fresh, new readers
neither join the open instance nor open the file (for up to ``YIELD_S``), and the last one
out closes it instead of lingering, so a busy server cannot starve an ingest in another
process.

The shared read-only instance has file access restricted to the store's shard folder and its
configuration locked, so user SQL (``actdb sql``, ``POST /api/sql``) can read the store and
nothing else on the machine.

>>> with reader(store) as con:
...     con.execute("SELECT count(*) FROM images").fetchall()
[(18,)]
"""

from __future__ import annotations

import atexit
import contextlib
import threading
import time
from pathlib import Path

from actdb.errors import StoreError
from actdb.store.catalog.files import (
    SHARD_DIR,
    SPACES_DIR,
    atomic_write,
    catalog_path,
    writer_waiting_path,
)
from actdb.store.catalog.schema import STORE_VARIABLE, sql_literal

#: A writer's marker older than this is a crashed writer's: readers ignore it.
MARKER_FRESH_S = 10.0
#: How long a reader holds off opening the file while a writer in another process waits.
YIELD_S = 2.0

class _Shared:
    """The process's read-only instance of one catalog file, and who is using it."""

    def __init__(self) -> None:
        self.con = None
        self.readers = 0
        self.writing = False
        self.writers_waiting = 0  # writers of this process waiting for the readers to leave
        self.closer: threading.Timer | None = None
        self.cond = threading.Condition()


class Connections:
    """The read-only catalog instances of this process, one per store, and how many readers
    each thread holds of each (readers may nest). One object, :data:`CONNECTIONS`, that
    :func:`reader` uses; ``clear()`` closes the idle instances and forgets them all."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._shared: dict[str, _Shared] = {}
        self._local = threading.local()

    def of(self, store: Path) -> _Shared:
        """The store's instance record (made on first use)."""
        key = str(catalog_path(store).resolve())
        with self._lock:
            return self._shared.setdefault(key, _Shared())

    def holding(self) -> dict:
        """How many readers of each instance this thread holds, by the record's id."""
        if not hasattr(self._local, "held"):
            self._local.held = {}
        return self._local.held

    def close_idle(self) -> None:
        """Close every instance no reader is using (lingering ones)."""
        with self._lock:
            shared = list(self._shared.values())
        for sh in shared:
            _close_if_idle(sh)

    def clear(self) -> None:
        """Close the idle instances and forget every record (one in use stays open until
        its readers leave, and is no longer shared with new readers)."""
        self.close_idle()
        with self._lock:
            self._shared.clear()


#: This process's catalog instances.
CONNECTIONS = Connections()


def _is_lock_error(exc: Exception) -> bool:
    msg = str(exc).lower()
    return "lock" in msg and ("conflict" in msg or "could not set" in msg)


def _writer_waiting(store: Path) -> bool:
    try:
        return time.time() - writer_waiting_path(store).stat().st_mtime < MARKER_FRESH_S
    except FileNotFoundError:
        return False


#: The storage format a new catalog is written in: the oldest that every DuckDB 1.x reads
#: (1.0.0's), so the DuckDB CLI, DBeaver or a notebook with any DuckDB from 1.0 on opens it,
#: whatever newer DuckDB actdb itself runs on (2.x writes a format 1.x cannot read).
STORAGE_VERSION = "v1.0.0"


def _open(store: Path, read_only: bool, timeout: float, config: dict | None = None):
    """``duckdb.connect`` that retries while another process holds the file's lock; a writer
    marks that it is waiting, so that readers yield."""
    import duckdb

    path = catalog_path(store)
    deadline = time.monotonic() + timeout
    delay = 0.01
    marker = writer_waiting_path(store)
    try:
        while True:
            try:
                return duckdb.connect(str(path), read_only=read_only, config={
                    **({} if read_only else {"storage_compatibility_version": STORAGE_VERSION}),
                    **(config or {})})
            except duckdb.Error as exc:
                if not _is_lock_error(exc) or time.monotonic() > deadline:
                    first = str(exc).splitlines()[0]
                    raise StoreError(f"cannot open {path}: {first}; if another actdb process "
                                     "is writing to this store, try again when it is done"
                                     ) from None
                if not read_only:
                    marker.touch()
                time.sleep(delay)
                delay = min(delay * 2, 0.25)
    finally:
        if not read_only:
            marker.unlink(missing_ok=True)


def _restrict(con, store: Path) -> None:
    """Limit file access to the shard folders (the default space's, and every other space's
    folder: spaces may be added while the instance is open) and lock the configuration.
    DuckDB may hand back an instance this module opened before and has not finished closing:
    already done."""
    if con.execute("SELECT current_setting('lock_configuration')").fetchall()[0][0]:
        return
    dirs = ", ".join(sql_literal(str((Path(store) / d).resolve()) + "/")
                     for d in (SHARD_DIR, SPACES_DIR))
    con.execute(f"SET allowed_directories = [{dirs}]")
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")


def _locate(con, store: Path) -> None:
    """Tell the connection's views where the store is (see ``schema.STORE_VARIABLE``)."""
    con.execute(f"SET VARIABLE {STORE_VARIABLE} = {sql_literal(str(Path(store).resolve()))}")


def _close(sh: _Shared) -> None:
    """Close the instance (holding ``sh.cond``)."""
    if sh.closer is not None:
        sh.closer.cancel()
        sh.closer = None
    if sh.con is not None:
        sh.con.close()
        sh.con = None
    sh.cond.notify_all()


def _close_if_idle(sh: _Shared) -> None:
    with sh.cond:
        if sh.readers == 0:
            _close(sh)


@contextlib.contextmanager
def reader(store: Path, timeout: float = 60.0, threads: int | None = None,
           linger: float = 0.0):
    """A read-only cursor on the store's catalog (a context manager).

    ``threads`` bounds DuckDB's worker threads and applies when this call opens the process's
    instance (the first concurrent reader decides); ``linger`` keeps it open that many seconds
    after the last reader leaves.
    """
    path = catalog_path(store)
    if not path.exists():
        raise StoreError(f"no catalog at {path}; run `actdb ingest` into this store first")
    sh = CONNECTIONS.of(store)
    nested = id(sh) in CONNECTIONS.holding()  # this thread reads already: never wait on a writer
    with sh.cond:
        yield_until = time.monotonic() + YIELD_S
        while True:
            if sh.writing or (sh.writers_waiting and not nested):
                sh.cond.wait()  # a waiting writer goes first, so steady reads cannot starve it
            elif (not nested and time.monotonic() < yield_until
                  and _writer_waiting(store)):
                # Another process's writer waits: join no open instance (overlapping readers
                # would keep the file open for ever), let it close, hold off opening.
                if not sh.readers:
                    _close(sh)
                sh.cond.wait(0.05)
            else:
                break
        if sh.closer is not None:
            sh.closer.cancel()
            sh.closer = None
        if sh.con is None:
            con = _open(store, True, timeout, {"threads": threads} if threads else None)
            _restrict(con, store)
            sh.con = con
        sh.readers += 1
        cur = sh.con.cursor()
        _locate(cur, store)
    held = CONNECTIONS.holding()
    held[id(sh)] = held.get(id(sh), 0) + 1
    try:
        yield cur
    finally:
        held[id(sh)] -= 1
        if not held[id(sh)]:
            del held[id(sh)]
        with sh.cond:
            cur.close()
            sh.readers -= 1
            if sh.readers == 0:
                sh.cond.notify_all()  # a writer of this process may be waiting for this
                if linger > 0 and not sh.writers_waiting and not _writer_waiting(store):
                    sh.closer = threading.Timer(linger, _close_if_idle, args=(sh,))
                    sh.closer.daemon = True
                    sh.closer.start()
                else:
                    _close(sh)


# At exit, close lingering instances here rather than let a daemon closer thread run DuckDB's
# C++ close while the interpreter finalizes (which aborts the process).
atexit.register(CONNECTIONS.close_idle)


def close_idle(store: Path) -> None:
    """Close the store's read-only instance now if no reader is using it (a lingering one)."""
    _close_if_idle(CONNECTIONS.of(store))


def readable_by_1x(version: str) -> bool:
    """Whether DuckDB 1.x clients open a catalog of this storage version (as DuckDB names
    it, e.g. ``v1.0.0+``)."""
    return version.startswith("v1.")


def rewrite_catalog(store: Path) -> None:
    """Copy the catalog into a new file of :data:`STORAGE_VERSION`, then swap it in (for a
    catalog an earlier actdb wrote in a newer format). The caller holds the store's writer
    lock; readers of the old file keep reading it until they reopen."""
    def copy(tmp: Path) -> None:
        with writer(store) as con:
            db = con.execute("SELECT current_database()").fetchall()[0][0]
            con.execute(f"ATTACH {sql_literal(str(tmp))} AS fresh "
                        f"(STORAGE_VERSION {sql_literal(STORAGE_VERSION)})")
            con.execute(f'COPY FROM DATABASE "{db}" TO fresh')
            con.execute("DETACH fresh")

    atomic_write(catalog_path(store), copy)


@contextlib.contextmanager
def writer(store: Path, timeout: float = 60.0):
    """A read-write connection, once this process's readers of the store are done."""
    sh = CONNECTIONS.of(store)
    if id(sh) in CONNECTIONS.holding():
        raise RuntimeError("a catalog writer was asked for while this thread holds a reader")
    with sh.cond:
        sh.writers_waiting += 1
        try:
            while sh.writing or sh.readers:
                sh.cond.wait()
        finally:
            sh.writers_waiting -= 1
        sh.writing = True
        _close(sh)  # a lingering read-only instance
    try:
        Path(store).mkdir(parents=True, exist_ok=True)
        con = _open(store, False, timeout)
        try:
            _locate(con, store)
            yield con
        finally:
            con.close()
    finally:
        with sh.cond:
            sh.writing = False
            sh.cond.notify_all()
