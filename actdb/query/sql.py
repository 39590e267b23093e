"""Read-only SQL over the store's views (``actdb sql``, ``db.sql()``, ``POST /api/sql``).

Views: ``images``, ``activations`` (vectors as ``FLOAT[dim]``, so ``array_distance`` works),
``classes``, ``centroids``, ``class_stats``, ``pair_stats``, ``nn_sample``, ``queries`` (named
query vectors), ``failures``, ``runs``, ``repairs``.

Every caller gets the same protections, each enough on its own for what it covers:

1. exactly one statement, a SELECT (DESCRIBE, SHOW, SUMMARIZE, FROM, VALUES, WITH) or EXPLAIN,
   as DuckDB's own parser says: no COPY, ATTACH, INSTALL/LOAD, SET, PRAGMA, DDL or DML;
2. the catalog is open read-only;
3. file access is limited to the store's shard folder and the configuration is locked
   (:mod:`actdb.store.catalog.connection`), so ``read_csv('/etc/passwd')`` fails;
4. optional row and time limits (the time limit interrupts only this statement's cursor).

>>> check_statement("SELECT 1; SELECT 2")
Traceback (most recent call last):
...
actdb.errors.SqlRefused: exactly one SQL statement is allowed, got 2
"""

from __future__ import annotations

import threading

from actdb.errors import QueryError, SqlRefused, SqlTimeout


def check_statement(sql: str) -> None:
    """Refuse anything but a single read-only statement (DuckDB parses DESCRIBE, SHOW and
    SUMMARIZE as SELECT).

    >>> check_statement("DROP TABLE images")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    actdb.errors.SqlRefused: only read-only statements are allowed (SELECT, ...), not DROP
    """
    import duckdb

    try:
        stmts = duckdb.extract_statements(sql)
    except duckdb.Error as exc:
        raise QueryError(f"SQL error: {' '.join(str(exc).split())}") from None
    if len(stmts) != 1:
        raise SqlRefused(f"exactly one SQL statement is allowed, got {len(stmts)}")
    kind = stmts[0].type
    if kind not in (duckdb.StatementType.SELECT, duckdb.StatementType.EXPLAIN):
        raise SqlRefused("only read-only statements are allowed (SELECT, WITH, DESCRIBE, SHOW, "
                         f"SUMMARIZE, EXPLAIN), not {kind.name}")


def run_sql(store, sql: str, max_rows: int | None = None, timeout: float | None = None):
    """Run one statement; returns a pyarrow Table of at most ``max_rows`` rows."""
    import pyarrow as pa

    check_statement(sql)
    with store.reader(views=True) as con:
        timer = threading.Timer(timeout, con.interrupt) if timeout else None
        if timer:
            timer.start()
        try:
            rel = con.sql(sql)
            if rel is None:
                return pa.table({})
            reader = rel.to_arrow_reader(min(max_rows or 100_000, 100_000))
            batches, n = [], 0
            for batch in reader:
                batches.append(batch)
                n += batch.num_rows
                if max_rows is not None and n >= max_rows:
                    break
            table = pa.Table.from_batches(batches, schema=reader.schema)
        except Exception as exc:  # noqa: BLE001 - any DuckDB error is the caller's SQL
            msg = " ".join(str(exc).split())
            if "interrupt" in msg.lower():
                raise SqlTimeout(f"query took longer than {timeout:g}s and was stopped"
                                 ) from None
            if any(w in msg.lower() for w in ("disabled", "permission", "locked")):
                raise SqlRefused(f"not allowed: {msg}") from None
            raise QueryError(f"SQL error: {msg}") from None
        finally:
            if timer:
                timer.cancel()
    return table if max_rows is None else table.slice(0, max_rows)
