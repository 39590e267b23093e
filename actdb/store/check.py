"""``actdb check``: do the manifest, the catalog, the Parquet shards and the index agree?

>>> report = check_store("actdb-store")      # doctest: +SKIP
>>> report.ok, report.problems                # doctest: +SKIP
(True, [])
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from actdb.store import catalog
from actdb.store.manifest import read_manifest
from actdb.store.shards import list_shard_files, shard_dim, shard_path


@dataclass
class CheckReport:
    """Problems found (empty when the store is consistent) and what was checked."""

    store: str
    images: int = 0
    vectors: int = 0
    shards: int = 0
    index_ids: int | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def _sample(rows: list[tuple]) -> str:
    vals = [str(r[0]) for r in rows[:5]]
    return ", ".join(vals) + (" ..." if len(rows) > 5 else "")


def check_store(path: str | Path) -> CheckReport:
    """Verify every invariant of the store format; never modifies the store."""
    path = Path(path)
    rep = CheckReport(store=str(path))
    m = read_manifest(path)
    with catalog.connect(path, read_only=True, views=False) as con:
        listed = dict(con.execute("SELECT name, rows FROM shards").fetchall())
        rep.images = con.execute("SELECT count(*) FROM images").fetchone()[0]
        rep.shards = len(listed)
        on_disk = set(list_shard_files(path))
        for name in sorted(set(listed) - on_disk):
            rep.problems.append(f"shard {name} is listed in the catalog but missing on disk")
        for name in sorted(on_disk - set(listed)):
            rep.problems.append(
                f"shard {name} is not in the catalog (left by an interrupted ingest; "
                "run `actdb ingest` again to resume, which removes it)")
        present = sorted(set(listed) & on_disk)
        for name in present:
            d = shard_dim(shard_path(path, name))
            if d != m.dim:
                rep.problems.append(f"shard {name} has dim {d}, manifest says {m.dim}")
        if present:
            files = ", ".join("'" + str(shard_path(path, n).resolve()).replace("'", "''") + "'"
                              for n in present)
            con.execute(
                "CREATE TEMP TABLE vecids AS SELECT image_id, parse_filename(filename) AS shard "
                f"FROM read_parquet([{files}], filename=true)")
        else:
            con.execute("CREATE TEMP TABLE vecids (image_id BIGINT, shard VARCHAR)")
        rep.vectors = con.execute("SELECT count(*) FROM vecids").fetchone()[0]
        queries = {
            "duplicate vector ids": "SELECT image_id FROM vecids GROUP BY 1 HAVING count(*) > 1",
            "images without a vector": "SELECT image_id FROM images "
                                       "ANTI JOIN vecids USING (image_id)",
            "orphan vectors (no image row)": "SELECT image_id FROM vecids "
                                             "ANTI JOIN images USING (image_id)",
            "images whose vector is in another shard than recorded":
                "SELECT i.image_id FROM images i JOIN vecids v USING (image_id) "
                "WHERE i.shard <> v.shard",
            "duplicate image paths": "SELECT root || '/' || path FROM images "
                                     "GROUP BY root, path HAVING count(*) > 1",
            "duplicate image ids in the catalog": "SELECT image_id FROM images "
                                                  "GROUP BY 1 HAVING count(*) > 1",
        }
        for label, sql in queries.items():
            rows = con.execute(sql).fetchall()
            if rows:
                rep.problems.append(f"{len(rows)} {label}: {_sample(rows)}")
        for name, n in con.execute(
            "SELECT s.name, s.rows FROM shards s LEFT JOIN "
            "(SELECT shard, count(*) AS c FROM vecids GROUP BY 1) v ON v.shard = s.name "
            "WHERE coalesce(v.c, 0) <> s.rows"
        ).fetchall():
            if name in on_disk:
                rep.problems.append(f"shard {name} should hold {n} rows but does not")
        ids_in_catalog = {r[0] for r in con.execute("SELECT image_id FROM images").fetchall()}
    _check_index(path, m.dim, ids_in_catalog, rep)
    return rep


def _check_index(path: Path, dim: int, ids: set[int], rep: CheckReport) -> None:
    index_file = path / "index.faiss"
    if not index_file.exists():
        return
    from actdb.index.faiss_index import index_ids, load_index

    try:
        index = load_index(path)
    except Exception as exc:  # noqa: BLE001
        rep.problems.append(f"index.faiss cannot be read: {exc}")
        return
    if index.d != dim:
        rep.problems.append(f"index dim {index.d} differs from manifest dim {dim}")
    got = index_ids(index)
    rep.index_ids = len(got)
    if len(got) != len(set(got.tolist())):
        rep.problems.append("index holds duplicate ids")
    missing, extra = ids - set(got.tolist()), set(got.tolist()) - ids
    if missing or extra:
        rep.problems.append(
            f"index ids differ from the catalog ({len(missing)} missing, {len(extra)} extra); "
            "run `actdb index` to rebuild it")
