"""Named reads of the catalog's own tables: spaces, shards, images, classes (what is derived
from them, statistics to maps, is read in :mod:`~actdb.store.catalog.derived`). Each takes a
connection from :func:`reader` (or a writer's).

Missing statistics raise :class:`StatsMissing`, shards the catalog lists but the disk lacks
raise :class:`StoreDamaged`: callers never see a DuckDB error for a store's own state.
"""

from __future__ import annotations

import difflib
from pathlib import Path

import numpy as np

from actdb.errors import QueryError, StoreDamaged
from actdb.store.catalog.files import shard_path
from actdb.store.catalog.schema import FailureRow, ImageRow, SpaceRow


def one(con, sql: str, params=None):
    """The first row of a query, the result read to its end (DuckDB refuses other work on a
    connection while a result is open), or None."""
    rows = con.execute(sql, params or []).fetchall()
    return rows[0] if rows else None


def scalar(con, sql: str, params=None):
    return one(con, sql, params)[0]


# -- spaces ----------------------------------------------------------------------------------


def spaces(con) -> list[SpaceRow]:
    """Every space of the store, the default first, then in the order they were added."""
    cols = ", ".join(SpaceRow._fields)
    return [SpaceRow(*r) for r in con.execute(
        f"SELECT {cols} FROM spaces ORDER BY position").fetchall()]


def space_counts(con) -> dict[str, tuple[int, int]]:
    """Per space: (shards, vectors) committed."""
    return {r[0]: (int(r[1]), int(r[2])) for r in con.execute(
        "SELECT space, count(*), coalesce(sum(rows), 0) FROM shards GROUP BY 1").fetchall()}


# -- shards and views ------------------------------------------------------------------------


def committed_shards(con, space: str) -> list[str]:
    """The names of a space's committed shards."""
    return [r[0] for r in con.execute("SELECT name FROM shards WHERE space = ? ORDER BY name",
                                      [space]).fetchall()]


def space_image_ids(con, space: str) -> np.ndarray:
    """The ids of the images a space holds (those of the shards it lists), sorted."""
    return np.asarray(con.execute(
        "SELECT image_id FROM images WHERE shard IN (SELECT name FROM shards WHERE space = ?) "
        "ORDER BY 1", [space]).fetchnumpy()["image_id"], np.int64)


def all_shards(con) -> dict[str, list[str]]:
    """Every space's committed shard names."""
    out: dict[str, list[str]] = {}
    for space, name in con.execute("SELECT space, name FROM shards ORDER BY 1, 2").fetchall():
        out.setdefault(space, []).append(name)
    return out


def shard_rows(con, space: str) -> dict[str, int]:
    return dict(con.execute("SELECT name, rows FROM shards WHERE space = ?",
                            [space]).fetchall())


def shards_to_fill(con, space: str) -> list[str]:
    """The image shards (the names ``images.shard`` gives) this space has no shard of yet:
    what an ingest embeds into a space added after the images were."""
    return [r[0] for r in con.execute(
        "SELECT DISTINCT shard FROM images WHERE shard NOT IN "
        "(SELECT name FROM shards WHERE space = ?) ORDER BY 1", [space]).fetchall()]


def shard_images(con, shard: str) -> dict[str, list[tuple[int, str]]]:
    """The images of one image shard by their dataset root: root -> (image_id, path under
    the root) of each, by id."""
    out: dict[str, list[tuple[int, str]]] = {}
    for image_id, root, path in con.execute(
            "SELECT image_id, root, path FROM images WHERE shard = ? ORDER BY image_id",
            [shard]).fetchall():
        out.setdefault(root, []).append((int(image_id), path))
    return out


def shards_holding(con, ids: np.ndarray) -> list[str]:
    """The shards that hold these image ids (the same names in every space)."""
    import pyarrow as pa

    con.register("wanted_ids", pa.table({"image_id": np.asarray(ids, np.int64)}))
    try:
        return [r[0] for r in con.execute(
            "SELECT DISTINCT shard FROM images JOIN wanted_ids USING (image_id) ORDER BY 1"
        ).fetchall()]
    finally:
        con.unregister("wanted_ids")


def missing_shards(con, folder: Path, space: str) -> list[str]:
    """A space's shards the catalog lists whose files are gone (``folder``: the space's)."""
    return [n for n in committed_shards(con, space) if not shard_path(folder, n).is_file()]


def require_shards(con, folder: Path, space: str) -> list[str]:
    """A space's committed shards; StoreDamaged when a file the catalog lists is gone."""
    names = committed_shards(con, space)
    lost = [n for n in names if not shard_path(folder, n).is_file()]
    if lost:
        raise StoreDamaged(f"{len(lost)} shard file(s) listed in the catalog are missing "
                           f"({lost[0]}{' ...' if len(lost) > 1 else ''})")
    return names


def storage_version(con) -> str:
    """The storage format of the connection's catalog, as DuckDB names it (``v1.0.0+``)."""
    return scalar(con, "SELECT tags['storage_version'] FROM duckdb_databases() "
                  "WHERE database_name = current_database()") or "unknown"


def has_spaces(con) -> bool:
    """Whether the catalog is of the spaces format (else: format 2, to migrate)."""
    return has_table(con, "spaces")


# -- images ----------------------------------------------------------------------------------

META_COLUMNS = ("image_id", "class_name", "synset", "split", "path", "root")


def images(con, where: str | None = None):
    """The images table as a DataFrame, optionally filtered by a SQL predicate."""
    sql = "SELECT * FROM images" + (f" WHERE {where}" if where else "") + " ORDER BY image_id"
    return con.execute(sql).df()


def images_by_id(con, ids: np.ndarray):
    """Every column of these images (DataFrame, sorted by id)."""
    return con.execute("SELECT * FROM images WHERE image_id IN (SELECT unnest(?::BIGINT[])) "
                       "ORDER BY image_id", [np.asarray(ids, np.int64).tolist()]).df()


def _unmasked(cols: dict) -> dict[str, np.ndarray]:
    """fetchnumpy's masked arrays (NULLs) as plain arrays with None where NULL (not
    ``np.ma.filled(a, None)``: None there means the array's own fill value, ``'?'``)."""
    out = {}
    for k, v in cols.items():
        mask = getattr(v, "mask", None)  # a MaskedArray (np.ma is slow to import)
        if mask is not None:
            plain = np.asarray(v.data, dtype=object).copy()
            plain[np.broadcast_to(mask, v.shape)] = None
            v = plain
        out[k] = v
    return out


def image_meta(con, ids: np.ndarray | None = None, missing_ok: bool = False
               ) -> dict[str, np.ndarray]:
    """Columns of ``META_COLUMNS`` for these ids, in their order (all images sorted by id when
    None). Unknown ids are an error, or rows of None with ``missing_ok``."""
    cols = ", ".join(META_COLUMNS)
    if ids is None:
        return _unmasked(con.execute(f"SELECT {cols} FROM images ORDER BY image_id"
                                     ).fetchnumpy())
    ids = np.asarray(ids, np.int64)
    got = _unmasked(con.execute(
        f"SELECT {cols} FROM images WHERE image_id IN (SELECT unnest(?::BIGINT[])) "
        "ORDER BY image_id", [ids.tolist()]).fetchnumpy())
    pos = np.searchsorted(got["image_id"], ids)
    found = pos < len(got["image_id"])
    found[found] = got["image_id"][pos[found]] == ids[found]
    if found.all():
        return {k: v[pos] for k, v in got.items()}
    if not missing_ok:
        raise StoreDamaged(f"the index holds image ids the catalog does not list "
                           f"({ids[~found][:3].tolist()})")
    out = {k: np.full(len(ids), None, dtype=object) for k in got}
    for k, v in got.items():
        out[k][found] = v[pos[found]]
    out["image_id"] = ids
    return out


class ImageMeta:
    """Every image's ``META_COLUMNS`` in memory, for a process that answers many queries.

    An image is one row of three integers (one cache line to read for a neighbour, not five
    scattered strings): where its path starts and ends in one string of all paths, and the
    code of its labels (class_name, synset, split, root: an ImageNet store has ~1,000
    distinct combinations, so a neighbour's labels are one lookup): 32 bytes an image and
    its path.
    """

    LABELS = tuple(c for c in META_COLUMNS if c not in ("image_id", "path"))

    def __init__(self, table) -> None:
        import pyarrow as pa

        self.ids = table.column("image_id").to_numpy()
        n = len(self.ids)
        # dense ids (an ingest numbers images 0, 1, 2...): a position is the id less the first
        self.first = int(self.ids[0]) if n and self.ids[-1] - self.ids[0] == n - 1 else None
        code = np.zeros(n, np.int64)  # each image's combination of the labels so far
        combos = np.zeros((1, 0), np.int64)  # each combination's codes, a column a label
        values = []
        for c in self.LABELS:
            enc = table.column(c).combine_chunks().dictionary_encode()
            vals = np.asarray([*enc.dictionary.to_pylist(), None], dtype=object)
            col = enc.indices.fill_null(-1).to_numpy()  # -1 (null) picks the None last
            pairs = pa.array(code * len(vals) + (col + 1)).dictionary_encode()  # hashed
            uniq, code = pairs.dictionary.to_numpy(), pairs.indices.to_numpy().astype(np.int64)
            combos = np.column_stack([combos[uniq // len(vals)], uniq % len(vals) - 1])
            values.append(vals)
        self.labels = np.empty((len(combos), len(self.LABELS)), dtype=object)
        for j, vals in enumerate(values):
            self.labels[:, j] = vals[combos[:, j]]
        # paths: one str (a slice is one copy, cheaper than an Arrow take after a search),
        # the offsets counted in characters
        paths = table.column("path").combine_chunks().fill_null("").cast(pa.large_string())
        _, offsets, data = paths.buffers()
        byte = np.zeros(1, np.int64)  # offsets of the paths' bytes (no buffer when empty)
        if n:
            byte = np.frombuffer(offsets, np.int64)[paths.offset :][: n + 1]
        raw = memoryview(data or b"")[int(byte[0]) : int(byte[-1])]
        self.text = str(raw, "utf-8")
        if len(self.text) == len(raw):  # ASCII: a character is a byte
            chars = np.diff(byte)
        else:
            import pyarrow.compute as pc  # slow to import: only when needed

            chars = pc.utf8_length(paths).to_numpy().astype(np.int64)
        ends = np.cumsum(chars)
        self.rec = np.column_stack([ends - chars, ends, code])

    @classmethod
    def read(cls, con) -> ImageMeta:
        cols = ", ".join(META_COLUMNS)
        return cls(con.sql(f"SELECT {cols} FROM images ORDER BY image_id").to_arrow_table())

    def _positions(self, ids: np.ndarray) -> np.ndarray:
        n = len(self.ids)
        if self.first is not None:
            pos = ids - self.first if self.first else ids  # negative: too large as uint64
            bad = len(pos) and np.maximum.reduce(pos.view(np.uint64)) >= n
        else:
            pos = np.clip(np.searchsorted(self.ids, ids), 0, max(n - 1, 0))
            bad = (self.ids[pos] != ids).any() if n else len(ids)
        if bad:
            missing = np.setdiff1d(ids, self.ids)
            raise StoreDamaged(f"the index holds image ids the catalog does not list "
                               f"({missing[:3].tolist()})")
        return pos

    def rows(self, ids: np.ndarray) -> dict[str, np.ndarray]:
        """:func:`image_meta` of these ids, answered from memory."""
        ids = np.asarray(ids, np.int64)
        rec = self.rec[self._positions(ids)]
        labels = self.labels[rec[:, 2]]
        text = self.text
        out = {c: labels[:, j] for j, c in enumerate(self.LABELS)}
        out["path"] = np.array([text[a:b] for a, b, _ in rec.tolist()], dtype=object)
        out["image_id"] = ids
        return {c: out[c] for c in META_COLUMNS}


def existing_paths(con, root: str) -> set[str]:
    return {r[0] for r in con.execute("SELECT path FROM images WHERE root = ?",
                                      [root]).fetchall()}


def next_image_id(con) -> int:
    return int(scalar(con, "SELECT coalesce(max(image_id) + 1, 0) FROM images"))


def next_run_id(con) -> int:
    return int(scalar(con, "SELECT coalesce(max(run_id) + 1, 1) FROM runs"))


def image_ids(con) -> np.ndarray:
    return np.asarray(con.execute("SELECT image_id FROM images ORDER BY 1").fetchnumpy()[
        "image_id"], np.int64)


def images_not_in(con, have: np.ndarray, space: str) -> tuple[list[tuple[int, str]], int]:
    """(image_id, shard) of a space's images (those of the shards it lists) missing from
    ``have``, and how many of ``have`` the catalog no longer lists."""
    import pyarrow as pa

    con.register("have_ids", pa.table({"image_id": np.asarray(have, np.int64)}))
    try:
        rows = con.execute("SELECT image_id, shard FROM images ANTI JOIN have_ids "
                           "USING (image_id) WHERE shard IN (SELECT name FROM shards WHERE "
                           "space = ?) ORDER BY 1", [space]).fetchall()
        stale = scalar(con, "SELECT count(*) FROM have_ids ANTI JOIN images USING (image_id)")
    finally:
        con.unregister("have_ids")
    return rows, int(stale)


def summary(con) -> dict:
    """Counts for ``info`` (``shards``: of every space together)."""
    per_split = dict(con.execute(
        "SELECT coalesce(split, '?'), count(*) FROM images GROUP BY 1 ORDER BY 1").fetchall())
    roots = dict(con.execute("SELECT root, count(*) FROM images GROUP BY 1 ORDER BY 1"
                             ).fetchall())
    counts = {k: scalar(con, f"SELECT count(*) FROM {k}")
              for k in ("classes", "failures", "shards", "runs", "repairs")}
    return {"images": sum(per_split.values()), "images_per_split": per_split, "roots": roots,
            **counts}


def merge_rows(con) -> tuple[list[ImageRow], list[FailureRow]]:
    """A store's image rows (by id) and failure rows."""
    rows = con.execute(f"SELECT {', '.join(ImageRow._fields)} FROM images ORDER BY image_id"
                       ).fetchall()
    fails = con.execute(f"SELECT {', '.join(FailureRow._fields)} FROM failures").fetchall()
    return [ImageRow(*r) for r in rows], [FailureRow(*f) for f in fails]


def root_paths(con) -> set[tuple[str, str]]:
    return set(con.execute("SELECT root, path FROM images").fetchall())


# -- classes and filters ---------------------------------------------------------------------


def classes(con) -> list[tuple]:
    """(class_key, class_name, synset, class_index, n_images), by class_key."""
    return con.execute("SELECT class_key, class_name, synset, class_index, n_images "
                       "FROM classes ORDER BY class_key").fetchall()


def classes_df(con):
    return con.execute("SELECT * FROM classes ORDER BY class_name, class_key").df()


def labelled_images(con) -> dict[str, np.ndarray]:
    """image_id and 0-based class label (by class_key order) of every labelled image, grouped
    by class then id."""
    return con.execute(
        "SELECT image_id, dense_rank() OVER (ORDER BY coalesce(synset, class_name)) - 1 "
        "AS label FROM images WHERE class_name IS NOT NULL ORDER BY label, image_id"
    ).fetchnumpy()


def labelled_count(con, space: str) -> int:
    """How many labelled images a space's shards hold (what its statistics cover)."""
    return int(scalar(con, "SELECT count(*) FROM images i JOIN shards s ON s.name = i.shard "
                      "AND s.space = ? WHERE i.class_name IS NOT NULL", [space]))


#: How alike a name must be to be suggested (difflib's ratio): "sea cucumber" for
#: sea_cucumber (0.92), "goldfsh" for goldfish (0.93); not tench for "nosuch" (0.55).
CLOSE_MATCH = 0.75


def resolve_classes(con, names) -> list[str]:
    """Map class names or wnids to class keys, or raise with the closest names."""
    rows = con.execute("SELECT class_key, synset, class_name FROM classes").fetchall()
    lookup: dict[str, str] = {}
    for key, synset, name in rows:
        lookup.setdefault(str(name), key)
        lookup.setdefault(str(name).lower(), key)
        if synset:
            lookup[str(synset)] = key
    keys = []
    for n in names:
        key = lookup.get(n) or lookup.get(n.lower())
        if key is None:
            names_by_lower = {str(r[2]).lower(): str(r[2]) for r in rows if r[2]}
            close = [names_by_lower[c] for c in difflib.get_close_matches(
                n.lower(), names_by_lower, n=3, cutoff=CLOSE_MATCH)]
            hint = f"; did you mean {', '.join(close)}?" if close else \
                "; `actdb sql \"SELECT class_name FROM classes\"` lists them"
            raise QueryError(f"unknown class {n!r} in this store{hint}")
        keys.append(key)
    return keys


def splits(con) -> list[str]:
    return [r[0] for r in con.execute("SELECT DISTINCT split FROM images WHERE split IS NOT "
                                      "NULL ORDER BY 1").fetchall()]


def filtered_ids(con, class_keys: list[str] | None, split: str | None,
                 where: str | None) -> np.ndarray:
    """Image ids passing a class / split / SQL-predicate filter."""
    clauses, params = [], []
    if class_keys:
        clauses.append(f"coalesce(synset, class_name) IN ({', '.join('?' * len(class_keys))})")
        params.extend(class_keys)
    if split:
        clauses.append("split = ?")
        params.append(split)
    if where:
        clauses.append(f"({where})")
    sql = "SELECT image_id FROM images" + (" WHERE " + " AND ".join(clauses) if clauses else "")
    try:
        rows = con.execute(sql, params).fetchnumpy()["image_id"]
    except Exception as exc:  # noqa: BLE001 - DuckDB's errors for a bad predicate
        raise QueryError(f"bad where: {' '.join(str(exc).split())}",
                         param="where") from None
    return np.asarray(rows, np.int64)


def class_members(con, keys: list[str]) -> dict[str, np.ndarray]:
    """image_id, class key and class name of every image of these classes, by id."""
    return con.execute(
        "SELECT image_id, coalesce(synset, class_name) AS key, class_name FROM images "
        f"WHERE coalesce(synset, class_name) IN ({', '.join('?' * len(keys))}) "
        "ORDER BY image_id", keys).fetchnumpy()

def has_table(con, name: str, kind: str = "BASE TABLE") -> bool:
    """Whether the catalog has this table (or, ``kind="VIEW"``, view): stores made before it
    existed lack it."""
    return bool(scalar(con, "SELECT count(*) FROM information_schema.tables WHERE "
                       "table_name = ? AND table_type = ? AND table_catalog = current_database()",
                       [name, kind]))
