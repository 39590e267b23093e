"""Named writes of the catalog. Each takes a connection from :func:`writer` and is one
transaction: a reader sees all of it or none of it."""

from __future__ import annotations

import contextlib
import json
from datetime import datetime, timezone

import numpy as np

from actdb.store.catalog.reads import all_shards, has_spaces, has_table, spaces
from actdb.store.catalog.schema import (
    FAILURE_COLUMNS,
    IMAGE_COLUMNS,
    STATS_TABLES,
    FailureRow,
    ImageRow,
    SpaceRow,
    arrow_types,
    migrate_sql,
    schema_sql,
    sql_literal,
    views_sql,
)


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


@contextlib.contextmanager
def transaction(con):
    con.execute("BEGIN TRANSACTION")
    try:
        yield con
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")


def ensure_schema(con, default: SpaceRow) -> None:
    """Every table, and the views once there are spaces; a catalog of format 2 (before
    spaces) is migrated in one transaction, its store becoming the ``default`` space."""
    if has_spaces(con) or not has_table(con, "shards"):
        con.execute(schema_sql())
        if has_spaces(con) and not has_table(con, "queries_all", "VIEW"):
            with transaction(con):  # a store from before every space's queries had a view
                _write_views(con)
        return
    with transaction(con):
        con.execute(migrate_sql(default))
        _write_views(con)


def add_space(con, space: SpaceRow) -> None:
    """List a new space (the first becomes the default) and its view, in one transaction."""
    cols = ", ".join(SpaceRow._fields)
    with transaction(con):
        con.execute(f"INSERT INTO spaces ({cols}, view) VALUES "
                    f"({', '.join('?' * len(SpaceRow._fields))}, ?)", [*space, space.view])
        _write_views(con)


def _write_views(con) -> None:
    rows = spaces(con)
    if rows:
        con.execute(views_sql(rows, all_shards(con)))


def start_run(con, run_id: int, root: str, layout: str, options: dict) -> None:
    con.execute("INSERT INTO runs (run_id, started_at, root, layout, options, status) "
                "VALUES (?, ?, ?, ?, ?, 'running')",
                [run_id, _now(), root, layout, json.dumps(options, default=str)])


def finish_run(con, run_id: int, status: str, ingested: int, skipped: int,
               failed: int) -> None:
    con.execute("UPDATE runs SET finished_at = ?, status = ?, ingested = ?, skipped = ?, "
                "failed = ? WHERE run_id = ?",
                [_now(), status, ingested, skipped, failed, run_id])


def _images_table(rows: list[ImageRow], shard: str, run_id: int | None):
    """Image rows as an Arrow table DuckDB inserts in one statement."""
    import pyarrow as pa

    cols = list(zip(*rows, strict=True)) if rows else [()] * len(IMAGE_COLUMNS)
    types = arrow_types(ImageRow)
    arrays = [pa.array(list(c), type=t) for c, t in zip(cols, types, strict=True)]
    n = len(rows)
    arrays += [pa.array([shard] * n, pa.string()), pa.array([run_id] * n, pa.int32())]
    return pa.table(arrays, names=[*IMAGE_COLUMNS, "shard", "run_id"])


def commit_shard(con, shard: str | None, n_rows: dict[str, int], images: list[ImageRow],
                 failures: list[FailureRow], run_id: int | None) -> None:
    """List a shard with its image rows (and in the views), and record failures. With no
    ``images``, the shard of an image shard's name in other spaces (``n_rows``: the rows of
    each space's file, by space)."""
    with transaction(con):
        if shard and images:
            con.register("new_images", _images_table(images, shard, run_id))
            cols = ", ".join([*IMAGE_COLUMNS, "shard", "run_id"])
            con.execute(f"INSERT INTO images ({cols}) SELECT {cols} FROM new_images")
            con.execute("DELETE FROM failures f USING new_images n "
                        "WHERE f.root = n.root AND f.path = n.path")
            con.execute("DELETE FROM repairs r USING new_images n "
                        "WHERE r.root = n.root AND r.path = n.path")
            con.unregister("new_images")
        if shard:
            con.executemany("INSERT INTO shards (space, name, rows, run_id) VALUES (?, ?, ?, ?)",
                            [(space, shard, n, run_id) for space, n in n_rows.items()])
            _write_views(con)
        if failures:
            con.executemany(
                f"INSERT OR REPLACE INTO failures ({', '.join(FAILURE_COLUMNS)}, run_id, "
                f"failed_at) VALUES ({', '.join('?' * (len(FAILURE_COLUMNS) + 1))}, "
                "current_timestamp)",  # a failure again: this run's id and time
                [(*f, run_id) for f in failures])


def write_stats(con, space: str, config: dict, centroids, class_stats, pair_stats,
                nn_sample) -> None:
    """Replace a space's statistics at once (DataFrames in the tables' column order, less
    ``space``)."""
    frames = {"centroids_all": centroids, "class_stats_all": class_stats,
              "pair_stats_all": pair_stats, "nn_sample_all": nn_sample}
    with transaction(con):
        for name in STATS_TABLES:
            con.execute(f"DELETE FROM {name} WHERE space = ?", [space])
        for name, df in frames.items():
            con.register("stats_in", df)
            con.execute(f"INSERT INTO {name} SELECT {sql_literal(space)}, * FROM stats_in")
            con.unregister("stats_in")
        cols = ("space", "seed", "pairs_per_class", "pair_sample", "nn_sample", "images",
                "classes", "seconds")
        con.execute(f"INSERT INTO stats_config_all ({', '.join(cols)}) VALUES "
                    f"({', '.join('?' * len(cols))})", [space, *(config[c] for c in cols[1:])])


def put_queries(con, key: str, rows: list[tuple[str, str, str, np.ndarray]]) -> None:
    """Cache (sha256, name, source, vec) rows and bind each name to its sha256."""
    with transaction(con):
        con.executemany(
            "INSERT OR IGNORE INTO query_cache (sha256, fingerprint, source, vec) "
            "VALUES (?, ?, ?, ?)",
            [(sha, key, source, np.asarray(vec, np.float32).tolist())
             for sha, _, source, vec in rows])
        con.executemany(
            "INSERT OR REPLACE INTO query_names (name, fingerprint, sha256, bound_at) "
            "VALUES (?, ?, ?, ?)", [(name, key, sha, _now()) for sha, name, _, _ in rows])


def put_comparison(con, similarity, separation, settings: dict) -> None:
    """Replace the kept comparison of spaces (DataFrames in the tables' columns, less
    ``settings`` and ``computed_at``)."""
    with transaction(con):
        for table, df in (("space_similarity", similarity), ("space_separation", separation)):
            con.execute(f"DELETE FROM {table}")
            con.register("compared", df)
            cols = ", ".join(df.columns)
            con.execute(f"INSERT INTO {table} ({cols}, settings) SELECT {cols}, ? "
                        "FROM compared", [json.dumps(settings)])
            con.unregister("compared")


def put_map(con, record: dict, points) -> None:
    """Store a map (replacing an older one with the same id): its record and its points
    (a DataFrame: image_id, x, y)."""
    cols = ("map_id", "method", "settings", "store_state", "points", "seconds")
    with transaction(con):
        con.execute("DELETE FROM map_points WHERE map_id = ?", [record["map_id"]])
        con.execute("DELETE FROM maps WHERE map_id = ?", [record["map_id"]])
        con.execute(f"INSERT INTO maps ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
                    [record[c] for c in cols])
        con.register("points_in", points[["image_id", "x", "y"]])
        con.execute("INSERT INTO map_points SELECT ?, image_id, x, y FROM points_in",
                    [record["map_id"]])
        con.unregister("points_in")


def put_channels(con, rows) -> None:
    """Atlas rows (a DataFrame in the channels table's column names), replacing any with the
    same key, in one transaction: a batch of channels is in the atlas whole or not at all."""
    with transaction(con):
        con.register("channels_in", rows)
        cols = ", ".join(rows.columns)
        con.execute("DELETE FROM channels c USING channels_in n WHERE c.model = n.model AND "
                    "c.layer = n.layer AND c.channel = n.channel AND c.recipe = n.recipe AND "
                    "c.objective = n.objective AND c.seed = n.seed")
        con.execute(f"INSERT INTO channels ({cols}) SELECT {cols} FROM channels_in")
        con.unregister("channels_in")


def forget_space_shards(con, lost: dict[str, list[str]]) -> int:
    """Unlist lost shards space by space (``lost``: space -> shard names), keeping every
    image and its id: the next ingest embeds those images again into the spaces that lost
    them (:func:`~actdb.store.catalog.reads.shards_to_fill`). The kept comparison of spaces
    that lost vectors no longer describes the store and is dropped. Returns how many
    (image, space) vectors were unlisted."""
    lost = {space: names for space, names in lost.items() if names}
    if not lost:
        return 0
    pairs = [(space, name) for space, names in lost.items() for name in names]
    with transaction(con):
        n = sum(int(con.execute("SELECT coalesce(sum(rows), 0) FROM shards WHERE space = ? "
                                "AND name = ?", pair).fetchall()[0][0]) for pair in pairs)
        con.executemany("DELETE FROM shards WHERE space = ? AND name = ?", pairs)
        spaces_lost = list(lost)
        marks = ", ".join("?" * len(spaces_lost))
        con.execute(f"DELETE FROM space_similarity WHERE space_a IN ({marks}) "
                    f"OR space_b IN ({marks})", spaces_lost * 2)
        con.execute(f"DELETE FROM space_separation WHERE space IN ({marks})", spaces_lost)
        _write_views(con)
    return n
