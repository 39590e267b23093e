"""Read-only SQL for untrusted callers (``POST /api/sql``).

Layers of defence, each enough on its own for the cases it covers:

1. exactly one statement, and it must be a SELECT (DuckDB's own parser decides, so ``COPY``,
   ``ATTACH``, ``INSTALL``/``LOAD``, ``SET``, ``PRAGMA``, DDL and DML are refused);
2. the catalog is opened read-only;
3. external access is disabled except for the store's own shard folder, and the configuration
   is locked, so table functions cannot read other files (``read_csv('/etc/passwd')``);
4. a row limit, and a time limit enforced by interrupting the connection.

>>> run_sandboxed(store, "SELECT count(*) FROM images", max_rows=100, timeout=5)  # doctest: +SKIP
"""

from __future__ import annotations

import threading
from pathlib import Path

from actdb.errors import QueryError, SqlRefused
from actdb.store import catalog
from actdb.store.shards import SHARD_DIR


def check_statement(sql: str) -> None:
    """Refuse anything but a single SELECT statement."""
    import duckdb

    try:
        stmts = duckdb.extract_statements(sql)
    except duckdb.Error as exc:
        raise QueryError(f"SQL error: {' '.join(str(exc).split())}") from None
    if len(stmts) != 1:
        raise SqlRefused(f"exactly one statement is allowed, got {len(stmts)}")
    kind = stmts[0].type
    if kind != duckdb.StatementType.SELECT:
        raise SqlRefused(f"only SELECT statements are allowed, not {kind.name}")


def run_sandboxed(store: Path, sql: str, max_rows: int = 1000, timeout: float = 10.0):
    """Run ``sql`` under every restriction above; returns (pyarrow Table, truncated).

    The catalog is attached read-only to a private in-memory DuckDB instance, so the locked
    settings never leak into the connections other requests use.
    """
    import duckdb
    import pyarrow as pa

    check_statement(sql)
    store = Path(store)
    path = str(catalog.catalog_path(store).resolve()).replace("'", "''")
    shard_dir = (str((store / SHARD_DIR).resolve()) + "/").replace("'", "''")
    with catalog.PROCESS_LOCK:
        con = duckdb.connect(":memory:")
        try:
            con.execute(f"ATTACH '{path}' AS store (READ_ONLY)")
            con.execute("USE store")
            catalog.create_views(con, store)
            con.execute(f"SET allowed_directories = ['{shard_dir}']")
            con.execute("SET enable_external_access = false")
            con.execute("SET lock_configuration = true")
            return _fetch(con, sql, max_rows, timeout, pa)
        finally:
            con.close()


def _fetch(con, sql: str, max_rows: int, timeout: float, pa):
    timer = threading.Timer(timeout, con.interrupt)
    timer.start()
    try:
        reader = con.sql(sql).to_arrow_reader(min(max_rows + 1, 100_000))
        batches, n = [], 0
        for batch in reader:
            batches.append(batch)
            n += batch.num_rows
            if n > max_rows:
                break
        table = pa.Table.from_batches(batches, schema=reader.schema)
    except Exception as exc:  # noqa: BLE001 - DuckDB errors are the caller's SQL
        msg = " ".join(str(exc).split())
        if "interrupt" in msg.lower():
            raise SqlRefused(f"query took longer than {timeout:g}s and was stopped") from None
        if "disabled" in msg.lower() or "permission" in msg.lower() or "locked" in msg.lower():
            raise SqlRefused(f"not allowed: {msg}") from None
        raise QueryError(f"SQL error: {msg}") from None
    finally:
        timer.cancel()
    return table.slice(0, max_rows), table.num_rows > max_rows
