"""Named reads of what the catalog derives from the vectors: statistics, the query cache,
space comparisons, maps, the atlas's channels, and the consistency check. Each takes a
connection from :func:`~actdb.store.catalog.reader` (or a writer's).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from actdb.errors import StatsMissing
from actdb.store.catalog.files import shard_path
from actdb.store.catalog.reads import committed_shards, has_table, one, scalar
from actdb.store.catalog.schema import SpaceRow, sql_literal

# -- statistics ------------------------------------------------------------------------------


STATS_SETTINGS = ("seed", "pairs_per_class", "pair_sample", "nn_sample")


def stats_record(con, space: str) -> dict | None:
    """When and with which settings a space's statistics were last computed, over how many
    images and classes (None: never)."""
    cur = con.execute("SELECT * EXCLUDE (space) FROM stats_config_all WHERE space = ?", [space])
    rows = cur.fetchall()
    return None if not rows else dict(zip([d[0] for d in cur.description], rows[0],
                                          strict=True))


def stats_config(con, space: str) -> dict | None:
    """The settings a space's statistics were last computed with (None: never)."""
    rec = stats_record(con, space)
    return None if rec is None else {k: rec[k] for k in STATS_SETTINGS}


def has_stats(con, space: str) -> bool:
    return stats_config(con, space) is not None


def _need_stats(con, space: str, what: str) -> None:
    if not has_stats(con, space):
        raise StatsMissing(what)


def centroids(con, space: str):
    """Per class: key, names, n, centroid (float32 arrays), spread. Raises StatsMissing."""
    _need_stats(con, space, "class centroids")
    return con.execute("SELECT class_key, synset, class_name, n, centroid, mean_dist, p95_dist "
                       "FROM centroids_all WHERE space = ? ORDER BY class_key", [space]).df()


def pair_stats(con, space: str):
    _need_stats(con, space, "pair statistics")
    return con.execute("SELECT * EXCLUDE (space) FROM pair_stats_all WHERE space = ? "
                       "ORDER BY mean", [space]).df()


def distance_reference(con, space: str) -> tuple[np.ndarray | None, float | None]:
    """Sorted nearest-neighbour distances of a space's stored images and its median
    random-pair distance, for a query's context; (None, None) before statistics exist."""
    if not has_stats(con, space):
        return None, None
    nn = con.execute("SELECT dist FROM nn_sample_all WHERE space = ? ORDER BY dist",
                     [space]).fetchnumpy()["dist"]
    med = one(con, "SELECT p50 FROM pair_stats_all WHERE space = ? AND kind = 'random'",
              [space])
    return np.asarray(nn, np.float64), (med[0] if med else None)


# -- query cache -----------------------------------------------------------------------------


def cached_vectors(con, shas: list[str], key: str) -> dict[str, np.ndarray]:
    """Cached query vectors by content hash (a list parameter: no Arrow or pandas import on
    a command line's path)."""
    rows = con.execute("SELECT sha256, vec FROM query_cache WHERE fingerprint = ? AND sha256 "
                       "IN (SELECT unnest(?::VARCHAR[]))", [key, list(shas)]).fetchall()
    return {r[0]: np.asarray(r[1], np.float32) for r in rows}


def name_bindings(con, names: list[str], key: str) -> dict[str, str]:
    """name -> sha256 of the vector each of these names denotes now."""
    if not names:
        return {}
    return dict(con.execute(
        f"SELECT name, sha256 FROM query_names WHERE fingerprint = ? AND name IN "
        f"({', '.join('?' * len(names))})", [key, *names]).fetchall())


def query_cache_keys(con, key: str) -> tuple[set[str], dict[str, str]]:
    """Every cached hash of this model, and what each name denotes now."""
    shas = con.execute("SELECT sha256 FROM query_cache WHERE fingerprint = ?",
                       [key]).fetchall()
    names = con.execute("SELECT name, sha256 FROM query_names WHERE fingerprint = ?",
                        [key]).fetchall()
    return {r[0] for r in shas}, dict(names)


# -- comparing spaces ----------------------------------------------------------------------


def comparison(con):
    """The last ``compare``'s (similarity, separation) DataFrames (empty before one)."""
    return (con.execute("SELECT * EXCLUDE (settings, computed_at) FROM space_similarity "
                        "ORDER BY space_a, space_b").df(),
            con.execute("SELECT * EXCLUDE (settings, computed_at) FROM space_separation "
                        "ORDER BY space").df())


# -- maps ------------------------------------------------------------------------------------


def store_state(con, space: str) -> str:
    """What a map of a space was made from: the image count and a hash of the space's shard
    names (a map is stale once either changes)."""
    import hashlib

    names = "\n".join(committed_shards(con, space))
    n = scalar(con, "SELECT count(*) FROM images")
    return f"{n} images, shards {hashlib.sha1(names.encode()).hexdigest()[:12]}"


def data_version(con, space: str) -> tuple:
    """What the images and a space's statistics are now: changes with every ingest, repair
    and statistics run, not with query-cache, map or atlas writes."""
    return store_state(con, space), stats_record(con, space)


def maps(con):
    """Every stored map (DataFrame: map_id, method, settings, store_state, points, seconds,
    created_at), newest first."""
    if not has_table(con, "maps"):
        import pandas as pd

        return pd.DataFrame(columns=["map_id", "method", "settings", "store_state", "points",
                                     "seconds", "created_at"])
    return con.execute("SELECT * FROM maps ORDER BY created_at DESC").df()


def map_record(con, map_id: str) -> dict | None:
    if not has_table(con, "maps"):
        return None
    cur = con.execute("SELECT * FROM maps WHERE map_id = ?", [map_id])
    cols = [d[0] for d in cur.description]
    row = cur.fetchall()
    return dict(zip(cols, row[0], strict=True)) if row else None


def map_points(con, map_id: str):
    """A map's points with their class (DataFrame: image_id, x, y, class_name, class_key, path),
    in image id order."""
    return con.execute(
        "SELECT p.image_id, p.x, p.y, i.class_name, coalesce(i.synset, i.class_name) AS "
        "class_key, i.path FROM map_points p JOIN images i USING (image_id) "
        "WHERE p.map_id = ? ORDER BY p.image_id", [map_id]).df()


# -- atlas -----------------------------------------------------------------------------------


#: The channels table's JSON columns, read as Python lists and dicts.
CHANNEL_JSON = ("predictions", "neighbours", "examples")


def channels(con, where: str = "", params=None):
    """The atlas's channels table (DataFrame), ordered by layer, channel, variant; its JSON
    columns (:data:`CHANNEL_JSON`) as Python objects."""
    if not has_table(con, "channels"):
        return con.execute("SELECT NULL AS channel WHERE false").df()
    df = con.execute(f"SELECT * FROM channels {where} ORDER BY model, layer, channel, "
                     "variant, objective, seed", params or []).df()
    for c in CHANNEL_JSON:
        df[c] = [None if v is None else json.loads(v) for v in df[c]]
    return df


def channels_done(con, model: str, layer: str, recipe: str, objective: str, seed: int,
                  steps: int, size: int) -> set[int]:
    """Channels already in the atlas with exactly these settings."""
    if not has_table(con, "channels"):
        return set()
    return {r[0] for r in con.execute(
        "SELECT channel FROM channels WHERE model = ? AND layer = ? AND recipe = ? AND "
        "objective = ? AND seed = ? AND steps = ? AND size = ?",
        [model, layer, recipe, objective, seed, steps, size]).fetchall()}


# -- channels --------------------------------------------------------------------------------


def channel_examples(con, space: SpaceRow, channel: int, k: int):
    """Top-k images by one channel's pooled value in a space, the channel's mean/max/count,
    and each of the space's named queries' value and percentile."""
    c = channel + 1  # DuckDB arrays are 1-based
    top = con.execute(
        f"SELECT a.image_id, a.vec[{c}] AS value, i.class_name, i.synset, i.split, i.path "
        f"FROM {space.view} a JOIN images i USING (image_id) "
        "ORDER BY value DESC, a.image_id LIMIT ?", [k]).df()
    mean, mx, n = one(con, f"SELECT avg(vec[{c}]), max(vec[{c}]), count(*) FROM {space.view}")
    queries = con.execute(
        f"WITH q AS (SELECT n.name, c.vec FROM query_names n JOIN query_cache c "
        "USING (sha256, fingerprint) WHERE split_part(n.fingerprint, '@', 1) = ? "
        "QUALIFY row_number() OVER (PARTITION BY n.name ORDER BY n.bound_at DESC) = 1) "
        f"SELECT q.name, q.vec[{c}] AS value, "
        f"(SELECT 100.0 * count(*) FROM {space.view} a WHERE a.vec[{c}] <= q.vec[{c}]) "
        f"/ {max(n, 1)} AS percentile FROM q ORDER BY q.name", [space.fingerprint]).df()
    return top, float(mean or 0.0), float(mx or 0.0), queries


# -- consistency (check) ---------------------------------------------------------------------

CHECKS = {
    "duplicate vector ids": "SELECT image_id FROM vecids GROUP BY 1 HAVING count(*) > 1",
    "images without a vector": "SELECT image_id FROM space_images "
                               "ANTI JOIN vecids USING (image_id)",
    "orphan vectors (no image row)": "SELECT image_id FROM vecids "
                                     "ANTI JOIN space_images USING (image_id)",
    "images whose vector is in another shard than recorded":
        "SELECT i.image_id FROM space_images i JOIN vecids v USING (image_id) "
        "WHERE i.shard <> v.shard",
    "duplicate image paths": "SELECT root || '/' || path FROM space_images "
                             "GROUP BY root, path HAVING count(*) > 1",
    "duplicate image ids in the catalog": "SELECT image_id FROM space_images "
                                          "GROUP BY 1 HAVING count(*) > 1",
}


def consistency(con, folder: Path, space: SpaceRow, present: list[str]
                ) -> tuple[int, int, dict[str, list], list[tuple[str, int]]]:
    """Read the ids inside a space's ``present`` shard files (in its ``folder``) and compare
    them with the catalog's images of the shards the space lists (a space still being
    filled, or refilled after a repair, lacks the rest).

    Returns (images in the catalog, vectors in the files, {problem: sample rows},
    [(shard, rows the catalog expects)] for shards whose files hold another number)."""
    if present:
        files = ", ".join(sql_literal(str(shard_path(folder, n).resolve())) for n in present)
        con.execute(
            "CREATE OR REPLACE TEMP TABLE vecids AS SELECT image_id, "
            f"parse_filename(filename) AS shard FROM read_parquet([{files}], filename=true)")
    else:
        con.execute("CREATE OR REPLACE TEMP TABLE vecids (image_id BIGINT, shard VARCHAR)")
    con.execute("CREATE OR REPLACE TEMP VIEW space_images AS SELECT * FROM images WHERE shard IN "
                f"(SELECT name FROM shards WHERE space = {sql_literal(space.name)})")
    n_images = scalar(con, "SELECT count(*) FROM space_images")
    n_vectors = scalar(con, "SELECT count(*) FROM vecids")
    found = {label: rows for label, sql in CHECKS.items()
             if (rows := con.execute(sql).fetchall())}
    wrong = con.execute(
        "SELECT s.name, s.rows FROM shards s LEFT JOIN "
        "(SELECT shard, count(*) AS c FROM vecids GROUP BY 1) v ON v.shard = s.name "
        "WHERE s.space = ? AND coalesce(v.c, 0) <> s.rows", [space.name]).fetchall()
    return n_images, n_vectors, found, wrong
