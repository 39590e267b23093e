"""``actdb sql``: DuckDB over the store's documented views, read-only.

Views: ``images``, ``activations`` (vectors as ``FLOAT[dim]``, so ``array_distance`` works),
``classes``, ``centroids``, ``class_stats``, ``pair_stats``, ``nn_sample``, ``queries`` (cached
query vectors by name), ``failures``, ``runs``.

>>> run_sql("actdb-store", "SELECT * FROM class_stats LIMIT 3")    # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path

from actdb.errors import QueryError
from actdb.store.store import Store


def run_sql(store: str | Path | Store | None, sql: str, max_rows: int | None = None):
    """Run one statement on a read-only catalog connection; returns a pyarrow Table
    (at most ``max_rows`` rows when given)."""
    import pyarrow as pa

    s = store if isinstance(store, Store) else Store.open(store)
    with s.connect(read_only=True) as con:
        try:
            rel = con.sql(sql)
            if rel is None:
                return pa.table({})
            if max_rows is None:
                return rel.to_arrow_table()
            reader = rel.to_arrow_reader(max_rows)
            batches, n = [], 0
            for batch in reader:
                batches.append(batch)
                n += batch.num_rows
                if n >= max_rows:
                    break
            return pa.Table.from_batches(batches, schema=reader.schema).slice(0, max_rows)
        except Exception as exc:  # noqa: BLE001 - any DuckDB error is the user's SQL
            msg = " ".join(str(exc).split())
            raise QueryError(f"SQL error: {msg}") from None
