"""``catalog.duckdb``: image metadata, failures, runs and the list of committed shards.

DuckDB lets one process write a database file, and no other process open it meanwhile.
So writers (ingest) hold a connection only for the few milliseconds of each commit, and
every connection retries while another process holds the lock: readers can query while an
ingest appends. The ``activations`` view is made per connection from the store's current
location, so a moved or copied store keeps working.
"""

from __future__ import annotations

import contextlib
import threading
import time
from pathlib import Path

from actdb.errors import StoreError
from actdb.store.shards import SHARD_DIR

CATALOG = "catalog.duckdb"
#: DuckDB refuses to open one file twice in a process with different settings (read-only
#: and read-write), so connections within a process take turns. They are short-lived.
PROCESS_LOCK = threading.RLock()

SCHEMA = """
CREATE TABLE IF NOT EXISTS images (
    image_id BIGINT PRIMARY KEY,
    root VARCHAR NOT NULL,         -- dataset root (absolute) the path is relative to
    path VARCHAR NOT NULL,         -- relative to root, '/'-separated
    split VARCHAR,
    synset VARCHAR,                -- wnid, NULL for class folders that are not wnids
    class_name VARCHAR,            -- Keras-style short name, or the folder name
    class_index INTEGER,           -- Keras ImageNet-1k index, NULL when not ImageNet
    width INTEGER,
    height INTEGER,
    bytes BIGINT,
    shard VARCHAR NOT NULL,
    run_id INTEGER
);
CREATE TABLE IF NOT EXISTS failures (
    root VARCHAR NOT NULL,
    path VARCHAR NOT NULL,
    split VARCHAR,
    synset VARCHAR,
    class_name VARCHAR,
    reason VARCHAR NOT NULL,
    run_id INTEGER,
    failed_at TIMESTAMP DEFAULT current_timestamp,
    PRIMARY KEY (root, path)
);
CREATE TABLE IF NOT EXISTS runs (
    run_id INTEGER PRIMARY KEY,
    started_at TIMESTAMP,
    finished_at TIMESTAMP,
    root VARCHAR,
    layout VARCHAR,
    options VARCHAR,               -- JSON of the ingest options
    ingested INTEGER DEFAULT 0,
    skipped INTEGER DEFAULT 0,
    failed INTEGER DEFAULT 0,
    status VARCHAR                 -- running | done | interrupted | failed
);
CREATE TABLE IF NOT EXISTS shards (
    name VARCHAR PRIMARY KEY,
    rows INTEGER NOT NULL,
    run_id INTEGER,
    created_at TIMESTAMP DEFAULT current_timestamp
);
CREATE TABLE IF NOT EXISTS query_cache (
    sha256 VARCHAR NOT NULL,       -- of the query file's bytes
    fingerprint VARCHAR NOT NULL,  -- of the model recipe + weights that embedded it
    name VARCHAR NOT NULL,         -- file stem or --name; SQL refers to queries by it
    source VARCHAR,
    vec FLOAT[] NOT NULL,
    created_at TIMESTAMP DEFAULT current_timestamp,
    PRIMARY KEY (sha256, fingerprint)
);
CREATE OR REPLACE VIEW classes AS
    SELECT coalesce(synset, class_name) AS class_key, any_value(synset) AS synset,
           any_value(class_name) AS class_name, any_value(class_index) AS class_index,
           count(*) AS n_images
    FROM images WHERE class_name IS NOT NULL GROUP BY 1;
"""


def catalog_path(store: Path) -> Path:
    return Path(store) / CATALOG


def _is_lock_error(exc: Exception) -> bool:
    msg = str(exc).lower()
    return "lock" in msg and ("conflict" in msg or "could not set" in msg)


@contextlib.contextmanager
def connect(store: Path, read_only: bool = True, timeout: float = 60.0, views: bool = True):
    """Open the catalog, retrying while another process holds DuckDB's lock.

    >>> with connect(store) as con:                             # doctest: +SKIP
    ...     con.sql("SELECT count(*) FROM images").fetchone()
    """
    import duckdb

    path = catalog_path(store)
    if read_only and not path.exists():
        raise StoreError(f"no catalog at {path}; run `actdb ingest` into this store first")
    deadline = time.monotonic() + timeout
    delay = 0.01
    with PROCESS_LOCK:
        while True:
            try:
                con = duckdb.connect(str(path), read_only=read_only)
                break
            except duckdb.Error as exc:
                if not _is_lock_error(exc) or time.monotonic() > deadline:
                    raise StoreError(f"cannot open {path}: {str(exc).splitlines()[0]}") from None
                time.sleep(delay)
                delay = min(delay * 2, 0.25)
        try:
            if not read_only:
                con.execute(SCHEMA)
            if views:
                create_views(con, Path(store))
            yield con
        finally:
            con.close()


def committed_shards(con) -> list[str]:
    return [r[0] for r in con.execute("SELECT name FROM shards ORDER BY name").fetchall()]


def create_views(con, store: Path) -> None:
    """(Re)create the temporary views ``activations`` (this store's committed shards, vectors
    as FLOAT[dim]) and ``queries`` (cached query vectors made with this store's recipe)."""
    from actdb.store.manifest import read_manifest

    m = read_manifest(store)
    names = committed_shards(con)
    if names:
        files = ", ".join(
            "'" + str((store / SHARD_DIR / n).resolve()).replace("'", "''") + "'" for n in names
        )
        src = f"SELECT image_id, vec::FLOAT[{m.dim}] AS vec FROM read_parquet([{files}])"
    else:
        src = f"SELECT NULL::BIGINT AS image_id, NULL::FLOAT[{m.dim}] AS vec WHERE false"
    con.execute(f"CREATE OR REPLACE TEMP VIEW activations AS {src}")
    fp = m.fingerprint.replace("'", "''")
    con.execute(
        "CREATE OR REPLACE TEMP VIEW queries AS SELECT name, source, sha256, created_at, "
        f"vec::FLOAT[{m.dim}] AS vec FROM query_cache WHERE fingerprint = '{fp}'")
