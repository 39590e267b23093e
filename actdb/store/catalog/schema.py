"""Every table and view of ``catalog.duckdb``.

Tables are created together, empty, by the first writer, so a store made by ``ingest``,
``merge`` or ``check --repair`` always has all of them; "not computed yet" is an empty table,
never a missing one. A store holds one or more *spaces* (one recipe's vectors each, listed in
``spaces``) over one ``images`` table; what belongs to a space (its shards, statistics) is
keyed by the space's name in the tables, whose vectors are ``FLOAT[]`` since spaces differ in
dimension. Views, rewritten in the transaction that changes the shards, give plain DuckDB
the fixed-size ``FLOAT[dim]`` vectors ``array_distance`` needs: ``activations``, ``queries``
and the statistics under their own names (``centroids`` ...) mean the default space, as
they did before spaces came; every space's vectors are also its own view (``spaces.view``).
The views name the shard files relative to the store, found through the
:data:`STORE_VARIABLE` (unset: the folder DuckDB runs in), so a moved store keeps working.

>>> row = SpaceRow(name="vgg19/b5", folder="", is_default=True, position=0, model="vgg19",
...                layer="b5", pool="mean", dim=4, fingerprint="f")
>>> print(views_sql([row], {"vgg19/b5": ["part-1.parquet"]}).splitlines()[0][:68])
CREATE OR REPLACE VIEW activations AS SELECT image_id, vec::FLOAT[4]
"""

from __future__ import annotations

import re
from typing import NamedTuple, get_args, get_type_hints

from actdb.store.catalog.files import SHARD_DIR

#: The user-facing views and tables of ``actdb sql`` (documented in the README).
VIEWS = ("images", "activations", "classes", "centroids", "class_stats", "pair_stats",
         "nn_sample", "queries", "failures", "runs", "repairs", "spaces", "centroids_all",
         "class_stats_all", "pair_stats_all", "nn_sample_all", "queries_all",
         "space_similarity", "space_separation")

#: The statistics of every space, by space (the views without ``_all`` show the default's).
STATS_TABLES = ("stats_config_all", "centroids_all", "class_stats_all", "pair_stats_all",
                "nn_sample_all")


def cache_key(fingerprint: str, route: str) -> str:
    """What ``query_cache`` and ``query_names`` key a query's vector by: the model's
    fingerprint and the numeric route that computed it (stores from before routes have the
    fingerprint alone, a route nobody asks).

    >>> cache_key("4f2a", "onnx-fp32")
    '4f2a@onnx-fp32'
    """
    return f"{fingerprint}@{route}"


def _queries_sql(where: str, dim: int | None = None) -> str:
    """The named queries, with the route that computed each (NULL: before routes)."""
    vec = f"c.vec::FLOAT[{dim}]" if dim else "c.vec"
    return ("SELECT n.name, c.source, c.sha256, nullif(split_part(n.fingerprint, '@', 2), '') "
            f"AS route, n.bound_at AS created_at, {vec} AS vec FROM query_names n "
            f"JOIN query_cache c USING (sha256, fingerprint) {where}")


def schema_sql() -> str:
    """DDL for a store (idempotent)."""
    return """
CREATE TABLE IF NOT EXISTS spaces (  -- one recipe's vectors each, over the shared images
    name VARCHAR PRIMARY KEY,      -- model/layer, e.g. vgg19/block5_conv4
    folder VARCHAR NOT NULL,       -- its manifest, shards and index: '' is the store's own
    is_default BOOLEAN NOT NULL,   -- the first space: what a query without a space asks
    position INTEGER NOT NULL,     -- the order spaces were added in
    model VARCHAR,
    layer VARCHAR,
    pool VARCHAR,
    dim INTEGER,
    image_size INTEGER,
    precision VARCHAR,
    weights VARCHAR,
    fingerprint VARCHAR,
    view VARCHAR,                  -- the view of its vectors (image_id, vec FLOAT[dim])
    added_at TIMESTAMP DEFAULT current_timestamp
);
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
    shard VARCHAR NOT NULL,        -- the shard of that name holds its vector in every space
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
    space VARCHAR NOT NULL,
    name VARCHAR NOT NULL,         -- the same name in every space holds the same images
    rows INTEGER NOT NULL,
    run_id INTEGER,
    created_at TIMESTAMP DEFAULT current_timestamp,
    PRIMARY KEY (space, name)
);
CREATE TABLE IF NOT EXISTS repairs (  -- images an earlier actdb's repair dropped (not written now)
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
    fingerprint VARCHAR NOT NULL,  -- cache_key(): the model's fingerprint @ the numeric route
    source VARCHAR,
    vec FLOAT[] NOT NULL,
    created_at TIMESTAMP DEFAULT current_timestamp,
    PRIMARY KEY (sha256, fingerprint)
);
CREATE TABLE IF NOT EXISTS query_names (  -- a name denotes exactly one cached vector
    name VARCHAR NOT NULL,
    fingerprint VARCHAR NOT NULL,  -- cache_key(), as in query_cache
    sha256 VARCHAR NOT NULL,
    bound_at TIMESTAMP DEFAULT current_timestamp,
    PRIMARY KEY (name, fingerprint)
);
CREATE TABLE IF NOT EXISTS stats_config_all (  -- per space: the statistics' settings
    space VARCHAR PRIMARY KEY,
    seed INTEGER,
    pairs_per_class INTEGER,
    pair_sample INTEGER,
    nn_sample INTEGER,
    images BIGINT,
    classes INTEGER,
    seconds DOUBLE,
    computed_at TIMESTAMP DEFAULT current_timestamp
);
CREATE TABLE IF NOT EXISTS centroids_all (
    space VARCHAR NOT NULL,
    class_key VARCHAR NOT NULL,
    synset VARCHAR,
    class_name VARCHAR,
    class_index INTEGER,
    n INTEGER,
    centroid FLOAT[],
    mean_dist DOUBLE,
    std_dist DOUBLE,
    p50_dist DOUBLE,
    p95_dist DOUBLE,
    PRIMARY KEY (space, class_key)
);
CREATE TABLE IF NOT EXISTS class_stats_all (
    space VARCHAR NOT NULL,
    class_key VARCHAR NOT NULL,
    class_name VARCHAR,
    n INTEGER,
    mean_dist DOUBLE,              -- mean same-class pair distance
    same_pairs BIGINT,
    mean_other_dist DOUBLE,        -- mean distance to other classes' images
    other_pairs BIGINT,
    nearest_class VARCHAR,
    nearest_class_key VARCHAR,
    nearest_class_dist DOUBLE,
    PRIMARY KEY (space, class_key)
);
CREATE TABLE IF NOT EXISTS pair_stats_all (
    space VARCHAR NOT NULL,
    kind VARCHAR NOT NULL,         -- same_class | different_class | random | nearest_neighbour
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
    pair_sample INTEGER,
    PRIMARY KEY (space, kind)
);
CREATE TABLE IF NOT EXISTS nn_sample_all (
    space VARCHAR NOT NULL,
    image_id BIGINT,
    dist DOUBLE                    -- L2 distance to the nearest other stored image
);
CREATE TABLE IF NOT EXISTS space_similarity (  -- actdb compare: every pair of spaces
    space_a VARCHAR NOT NULL,
    space_b VARCHAR NOT NULL,
    cka DOUBLE,                    -- linear CKA over the shared sample
    method VARCHAR,                -- exact | minibatch (the debiased estimate)
    n INTEGER,                     -- images in the sample
    seed INTEGER,                  -- of the sample
    settings JSON,
    computed_at TIMESTAMP DEFAULT current_timestamp,
    PRIMARY KEY (space_a, space_b)
);
CREATE TABLE IF NOT EXISTS space_separation (  -- actdb compare: how each space keeps classes
    space VARCHAR PRIMARY KEY,
    knn_accuracy DOUBLE,           -- leave-one-out k-NN class accuracy on the sample
    k INTEGER,
    queries INTEGER,
    same_over_different DOUBLE,    -- mean same-class / different-class pair distance
    n INTEGER,                     -- labelled images in the sample
    seed INTEGER,
    settings JSON,
    computed_at TIMESTAMP DEFAULT current_timestamp
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


class SpaceRow(NamedTuple):
    """A space as the ``spaces`` table lists it."""

    name: str
    folder: str
    is_default: bool
    position: int
    model: str
    layer: str
    pool: str
    dim: int
    fingerprint: str
    image_size: int | None = None
    precision: str | None = None
    weights: str | None = None

    @property
    def view(self) -> str:
        """The SQL view of this space's vectors.

        >>> SpaceRow("resnet50/conv5_block3_out", "x", False, 1, "resnet50",
        ...          "conv5_block3_out", "mean", 2048, "f").view
        'activations_resnet50_conv5_block3_out'
        """
        return "activations_" + re.sub(r"\W+", "_", self.name).strip("_").lower()


SPACE_COLUMNS = (*SpaceRow._fields, "view")


def _vectors_sql(folder: str, shards: list[str], dim: int) -> str:
    if not shards:
        return f"SELECT NULL::BIGINT AS image_id, NULL::FLOAT[{dim}] AS vec WHERE false"
    base = f"coalesce(getvariable({sql_literal(STORE_VARIABLE)}), '.') || " + sql_literal(
        f"/{folder + '/' if folder else ''}{SHARD_DIR}/")
    files = ", ".join(f"{base} || {sql_literal(n)}" for n in shards)
    return f"SELECT image_id, vec::FLOAT[{dim}] AS vec FROM read_parquet([{files}])"


def views_sql(spaces: list[SpaceRow], shards: dict[str, list[str]]) -> str:
    """Every view over the spaces' committed shard files (``shards``: names by space): one
    per space, and under the names that predate spaces the default space's ``activations``,
    ``queries`` and statistics."""
    default = next(s for s in spaces if s.is_default)
    out = [f"CREATE OR REPLACE VIEW activations AS "
           f"{_vectors_sql(default.folder, shards.get(default.name, []), default.dim)};"]
    out += [f"CREATE OR REPLACE VIEW {s.view} AS "
            f"{_vectors_sql(s.folder, shards.get(s.name, []), s.dim)};" for s in spaces]
    name, dim = sql_literal(default.name), default.dim
    same = "split_part(n.fingerprint, '@', 1)"
    out.append("CREATE OR REPLACE VIEW queries AS "
               + _queries_sql(f"WHERE {same} = {sql_literal(default.fingerprint)}", dim) + ";")
    out.append("CREATE OR REPLACE VIEW queries_all AS SELECT s.name AS space, q.* FROM ("
               + _queries_sql("").replace("SELECT n.name,", f"SELECT {same} AS fp, n.name,", 1)
               + ") q JOIN spaces s ON s.fingerprint = q.fp;")
    for table in STATS_TABLES:
        replace = f" REPLACE (centroid::FLOAT[{dim}] AS centroid)" if table == \
            "centroids_all" else ""
        out.append(f"CREATE OR REPLACE VIEW {table.removesuffix('_all')} AS SELECT * EXCLUDE "
                   f"(space){replace} FROM {table} WHERE space = {name};")
    return "\n".join(out)


def migrate_sql(default: SpaceRow) -> str:
    """Format 2 (one space, before spaces) -> this schema, after :func:`schema_sql`: the
    shards, statistics and query cache become the default space's; :func:`views_sql` next."""
    name = sql_literal(default.name)
    stats = "\n".join(f"INSERT INTO {t} BY NAME SELECT {name} AS space, * "
                      f"FROM {t.removesuffix('_all')};\nDROP TABLE {t.removesuffix('_all')};"
                      for t in STATS_TABLES)
    cols = ", ".join(SpaceRow._fields)
    values = ", ".join("NULL" if v is None else sql_literal(v) if isinstance(v, str)
                       else str(v).lower() if isinstance(v, bool) else str(v) for v in default)
    return f"""
DROP VIEW IF EXISTS activations;
DROP VIEW IF EXISTS queries;
ALTER TABLE shards RENAME TO shards_v2;
ALTER TABLE query_cache RENAME TO query_cache_v2;
{schema_sql()}
INSERT INTO shards SELECT {name}, name, rows, run_id, created_at FROM shards_v2;
DROP TABLE shards_v2;
INSERT INTO query_cache SELECT sha256, fingerprint, source, vec::FLOAT[], created_at
    FROM query_cache_v2;
DROP TABLE query_cache_v2;
{stats}
INSERT INTO spaces ({cols}, view) VALUES ({values}, {sql_literal(default.view)});
"""

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
