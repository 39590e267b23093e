"""Every table and view of ``catalog.duckdb``.

Tables are created together, empty, by the first writer, so a store made by ``ingest``,
``merge`` or ``check --repair`` always has all of them; "not computed yet" is an empty table,
never a missing one. Vector columns are ``FLOAT[dim]`` so ``array_distance`` works in SQL.
The views ``activations`` (the committed shards) and ``queries`` (named query vectors) are
kept in the catalog, rewritten in the transaction that changes the shards, so plain DuckDB
sees them too. They name the shard files relative to the store, found through the
:data:`STORE_VARIABLE` (unset: the folder DuckDB runs in), so a moved store keeps working.

>>> print(views_sql(["part-1.parquet"], 4, "f")[:68])
CREATE OR REPLACE VIEW activations AS SELECT image_id, vec::FLOAT[4]
"""

from __future__ import annotations

from typing import NamedTuple, get_args, get_type_hints

from actdb.store.catalog.files import SHARD_DIR

#: The user-facing views and tables of ``actdb sql`` (documented in the README).
VIEWS = ("images", "activations", "classes", "centroids", "class_stats", "pair_stats",
         "nn_sample", "queries", "failures", "runs", "repairs")


def schema_sql(dim: int) -> str:
    """DDL for a store whose vectors have ``dim`` components (idempotent)."""
    return f"""
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
    options VARCHAR,               -- JSON of the run's options
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
CREATE TABLE IF NOT EXISTS repairs (  -- images whose shard was lost; the next ingest redoes them
    image_id BIGINT,
    root VARCHAR,
    path VARCHAR,
    split VARCHAR,
    synset VARCHAR,
    class_name VARCHAR,
    shard VARCHAR,
    reason VARCHAR,
    repaired_at TIMESTAMP DEFAULT current_timestamp
);
CREATE TABLE IF NOT EXISTS query_cache (
    sha256 VARCHAR NOT NULL,       -- of the query file's bytes
    fingerprint VARCHAR NOT NULL,  -- of the model recipe + weights that embedded it
    source VARCHAR,
    vec FLOAT[{dim}] NOT NULL,
    created_at TIMESTAMP DEFAULT current_timestamp,
    PRIMARY KEY (sha256, fingerprint)
);
CREATE TABLE IF NOT EXISTS query_names (  -- a name denotes exactly one cached vector
    name VARCHAR NOT NULL,
    fingerprint VARCHAR NOT NULL,
    sha256 VARCHAR NOT NULL,
    bound_at TIMESTAMP DEFAULT current_timestamp,
    PRIMARY KEY (name, fingerprint)
);
CREATE TABLE IF NOT EXISTS stats_config (  -- one row: the settings the statistics were made with
    seed INTEGER,
    pairs_per_class INTEGER,
    pair_sample INTEGER,
    nn_sample INTEGER,
    images BIGINT,
    classes INTEGER,
    seconds DOUBLE,
    computed_at TIMESTAMP DEFAULT current_timestamp
);
CREATE TABLE IF NOT EXISTS centroids (
    class_key VARCHAR PRIMARY KEY,
    synset VARCHAR,
    class_name VARCHAR,
    class_index INTEGER,
    n INTEGER,
    centroid FLOAT[{dim}],
    mean_dist DOUBLE,
    std_dist DOUBLE,
    p50_dist DOUBLE,
    p95_dist DOUBLE
);
CREATE TABLE IF NOT EXISTS class_stats (
    class_key VARCHAR PRIMARY KEY,
    class_name VARCHAR,
    n INTEGER,
    mean_dist DOUBLE,              -- mean same-class pair distance
    same_pairs BIGINT,
    mean_other_dist DOUBLE,        -- mean distance to other classes' images
    other_pairs BIGINT,
    nearest_class VARCHAR,
    nearest_class_key VARCHAR,
    nearest_class_dist DOUBLE
);
CREATE TABLE IF NOT EXISTS pair_stats (
    kind VARCHAR PRIMARY KEY,      -- same_class | different_class | random | nearest_neighbour
    count BIGINT,
    mean DOUBLE,
    std DOUBLE,
    p05 DOUBLE,
    p25 DOUBLE,
    p50 DOUBLE,
    p75 DOUBLE,
    p95 DOUBLE,
    seed INTEGER,
    sampled BOOLEAN,               -- false: every pair; true: a sample without replacement
    pairs_per_class INTEGER,
    pair_sample INTEGER
);
CREATE TABLE IF NOT EXISTS nn_sample (
    image_id BIGINT,
    dist DOUBLE                    -- L2 distance to the nearest other stored image
);
CREATE TABLE IF NOT EXISTS maps (  -- 2-D maps of a sample of the store, made once, reused
    map_id VARCHAR PRIMARY KEY,    -- method and a hash of the settings: one map per setting
    method VARCHAR,                -- umap | tsne | pca
    settings JSON,                 -- sample and projection settings
    store_state VARCHAR,           -- images and shards it was made from: stale when they change
    points INTEGER,
    seconds DOUBLE,
    created_at TIMESTAMP DEFAULT current_timestamp
);
CREATE TABLE IF NOT EXISTS map_points (
    map_id VARCHAR,
    image_id BIGINT,
    x FLOAT,
    y FLOAT,
    PRIMARY KEY (map_id, image_id)
);
CREATE TABLE IF NOT EXISTS channels (  -- the atlas: a channel's picture, what it is, where it lands
    model VARCHAR,
    layer VARCHAR,
    channel INTEGER,
    recipe VARCHAR,                -- improved | seed
    objective VARCHAR,             -- channel | neuron
    seed INTEGER,
    steps INTEGER,
    size INTEGER,
    variant BOOLEAN,               -- a stability check (--variants), not the main picture
    start_activation DOUBLE,
    objective_value DOUBLE,        -- the objective on the saved picture
    picture VARCHAR,               -- under the store's atlas/ folder, with a .json sidecar
    predicted_vgg19 VARCHAR, prob_vgg19 DOUBLE,
    predicted_vgg16 VARCHAR, prob_vgg16 DOUBLE,
    predicted_resnet50 VARCHAR, prob_resnet50 DOUBLE,
    predicted_class VARCHAR,       -- the store's model's top-1 (else the first model's)
    predicted_key VARCHAR,
    predictions JSON,              -- top-3 of every model
    vote_class VARCHAR,            -- the class vote of the picture's nearest stored images
    vote_share DOUBLE,
    nearest_centroid_class VARCHAR,
    nearest_centroid_key VARCHAR,
    centroid_distance DOUBLE,
    inside_p95 BOOLEAN,            -- within that class's p95 distance to its centroid
    nn_distance DOUBLE,
    nn_percentile DOUBLE,
    top_activation_class VARCHAR,  -- the class with the highest mean of this channel
    top_activation_key VARCHAR,
    agree_predicted_centroid BOOLEAN,
    agree_centroid_activation BOOLEAN,
    agree_all BOOLEAN,             -- predicted = nearest centroid = top activation class
    neighbours JSON,               -- image_id, distance, class_name of each, nearest first
    examples JSON,                 -- top, bottom, quantiles: stored images by this channel
    created_at TIMESTAMP DEFAULT current_timestamp,
    PRIMARY KEY (model, layer, channel, recipe, objective, seed)
);
CREATE OR REPLACE VIEW classes AS
    SELECT coalesce(synset, class_name) AS class_key, any_value(synset) AS synset,
           any_value(class_name) AS class_name, any_value(class_index) AS class_index,
           count(*) AS n_images
    FROM images WHERE class_name IS NOT NULL GROUP BY 1;
"""


#: The DuckDB variable the views read the store's folder from; actdb sets it on its own
#: connections, and plain DuckDB outside the store's folder needs the one line
#: ``SET VARIABLE actdb_store = '/path/to/store';``.
STORE_VARIABLE = "actdb_store"


def sql_literal(text: str) -> str:
    """A SQL string literal (quotes doubled)."""
    return "'" + text.replace("'", "''") + "'"


def views_sql(shards: list[str], dim: int, fingerprint: str, *, temp: bool = False) -> str:
    """The ``activations`` view over these committed shard files and the ``queries`` view of
    this fingerprint's named vectors (``temp``: this connection's only, for a catalog made
    before the views were kept in it)."""
    kind = "TEMP VIEW" if temp else "VIEW"
    if shards:
        base = f"coalesce(getvariable({sql_literal(STORE_VARIABLE)}), '.') || '/{SHARD_DIR}/'"
        files = ", ".join(f"{base} || {sql_literal(n)}" for n in shards)
        src = f"SELECT image_id, vec::FLOAT[{dim}] AS vec FROM read_parquet([{files}])"
    else:
        src = f"SELECT NULL::BIGINT AS image_id, NULL::FLOAT[{dim}] AS vec WHERE false"
    return (f"CREATE OR REPLACE {kind} activations AS {src};\n"
            f"CREATE OR REPLACE {kind} queries AS SELECT n.name, c.source, c.sha256, "
            "n.bound_at AS created_at, c.vec FROM query_names n JOIN query_cache c "
            f"USING (sha256, fingerprint) WHERE n.fingerprint = {sql_literal(fingerprint)};")


#: Tables the statistics fill (replaced together in one transaction).
STATS_TABLES = ("stats_config", "centroids", "class_stats", "pair_stats", "nn_sample")

class ImageRow(NamedTuple):
    """An image a writer commits (``shard`` and ``run_id`` are added by the commit)."""

    image_id: int
    root: str
    path: str
    split: str | None
    synset: str | None
    class_name: str | None
    class_index: int | None
    width: int
    height: int
    bytes: int


class FailureRow(NamedTuple):
    """An image that could not be embedded, and why."""

    root: str
    path: str
    split: str | None
    synset: str | None
    class_name: str | None
    reason: str


IMAGE_COLUMNS = ImageRow._fields
FAILURE_COLUMNS = FailureRow._fields
#: The ``images`` columns stored as INTEGER (int32); other ints are BIGINT.
_INT32 = {"class_index", "width", "height"}


def arrow_types(row: type) -> list:
    """The Arrow type of each field of a row type, from its annotations and the table's
    INTEGER columns.

    >>> [str(t) for t in arrow_types(ImageRow)][:3], str(arrow_types(ImageRow)[-2])
    (['int64', 'string', 'string'], 'int32')
    """
    import pyarrow as pa

    kinds = {int: pa.int64(), str: pa.string()}
    return [pa.int32() if name in _INT32 else kinds[(get_args(kind) or (kind,))[0]]
            for name, kind in get_type_hints(row).items()]
