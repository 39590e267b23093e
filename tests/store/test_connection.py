"""Catalog connections: readers never wait for one another; writers are never starved."""

import contextlib
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from actdb.store import catalog
from actdb.store.catalog import connection


@pytest.fixture
def store(built_store, tmp_path):
    copy = tmp_path / "store"
    shutil.copytree(built_store, copy)
    return copy


@pytest.mark.slow
def test_a_reader_does_not_wait_for_a_slow_reader(store):
    started, done = threading.Event(), {}

    def slow():
        with catalog.reader(store) as con:
            started.set()
            t = threading.Timer(2.0, con.interrupt)
            t.start()
            with contextlib.suppress(Exception):  # interrupted, as intended
                con.execute("SELECT count(*) FROM range(10000000000000) t(a) "
                            "WHERE a % 7 = 3").fetchall()
            t.cancel()
            done["slow"] = time.monotonic()

    th = threading.Thread(target=slow)
    th.start()
    started.wait(10)
    t0 = time.monotonic()
    with catalog.reader(store) as con:
        assert con.execute("SELECT count(*) FROM images").fetchall() == [(18,)]
    quick = time.monotonic() - t0
    th.join(30)
    assert quick < 0.5 and done["slow"] - t0 > 1.0


def test_asking_for_a_writer_while_holding_a_reader_is_an_error_not_a_deadlock(store):
    with catalog.reader(store), pytest.raises(RuntimeError, match="holds a reader"), \
            catalog.writer(store):
        pass


def test_a_writer_in_this_process_gets_in_while_lingering_readers_come_and_go(store):
    """A server's readers (linger) overlap all the time; a writer in one of its threads (a
    map being stored) must still get in, and a nested reader must not wait for it."""
    stop, wrote = threading.Event(), threading.Event()

    def read_on():
        while not stop.is_set():
            with catalog.reader(store, linger=5.0) as con:
                con.execute("SELECT count(*) FROM images").fetchall()
                with catalog.reader(store, linger=5.0) as inner:  # nested: never blocks
                    inner.execute("SELECT 1").fetchall()

    readers = [threading.Thread(target=read_on) for _ in range(3)]
    for t in readers:
        t.start()
    try:
        def write():
            with catalog.writer(store) as con:
                con.execute("CREATE TABLE IF NOT EXISTS t (a INTEGER)")
            wrote.set()

        w = threading.Thread(target=write)
        w.start()
        assert wrote.wait(20), "the writer was starved by lingering readers"
    finally:
        stop.set()
        for t in readers:
            t.join(10)
        catalog.close_idle(store)


@pytest.mark.slow
def test_a_writer_in_another_process_gets_in_while_this_one_reads_on(store):
    """Overlapping readers with linger keep the file open all the time; the other process's
    writer marks that it waits, and the readers yield: new ones do not join the open instance,
    so it closes (before, readers that kept overlapping starved the writer for 16 s)."""
    stop = threading.Event()

    def read_on():
        while not stop.is_set():
            with catalog.reader(store, linger=5.0) as con:
                con.execute("SELECT count(*) FROM images").fetchall()
                time.sleep(0.02)

    threads = [threading.Thread(target=read_on) for _ in range(3)]
    for t in threads:
        t.start()
    try:
        time.sleep(0.3)
        code = ("import sys, time; from actdb.store import catalog; t = time.monotonic(); "
                "ctx = catalog.writer(sys.argv[1], timeout=30); ctx.__enter__(); "
                "print(time.monotonic() - t); ctx.__exit__(None, None, None)")
        out = subprocess.run([sys.executable, "-c", code, str(store)], capture_output=True,
                             text=True, timeout=60)
    finally:
        stop.set()
        for t in threads:
            t.join(30)
        catalog.close_idle(store)
    assert out.returncode == 0, out.stderr[-1000:]
    assert float(out.stdout) < 2 * connection.YIELD_S  # in within a yield window, not a linger


def test_a_catalog_opens_in_the_duckdb_1x_command_line_client(store):
    """The catalog is written in a storage format DuckDB 1.x reads (``duckdb-cli<2`` is a
    test dependency), however new the DuckDB that actdb runs on; also after a later write."""
    import json

    import actdb

    cli = shutil.which("duckdb", path=str(Path(sys.executable).parent))
    assert cli, "the duckdb-cli test dependency is missing: pip install -e '.[test]'"
    version = subprocess.run([cli, "--version"], capture_output=True, text=True, timeout=60)
    assert version.stdout.startswith("v1."), version.stdout
    db = actdb.open(store)
    db.space().stats(seed=3)  # a write after the store was made
    res = subprocess.run([cli, "-readonly", "-json", str(store / "catalog.duckdb"), "-c",
                          "SELECT (SELECT count(*) FROM images) AS n, "
                          "(SELECT count(*) FROM classes) AS c"],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout) == [{"n": db.count(), "c": 3}]


def test_the_process_connections_are_one_object_that_clear_closes(store):
    with catalog.reader(store, linger=60) as con:
        con.execute("SELECT 1").fetchall()
    kept = connection.CONNECTIONS.of(store)
    assert kept.con is not None  # lingering after its reader left
    connection.CONNECTIONS.clear()
    assert kept.con is None and connection.CONNECTIONS.of(store) is not kept
    with catalog.reader(store) as con:  # a new record, opened again
        assert con.execute("SELECT count(*) FROM images").fetchall() == [(18,)]
