"""``check``: do the manifest, the catalog, the shards, the index and the statistics agree?
``check(repair=True)``: rebuild what can be rebuilt.

Repair never invents data. A shard that is lost, unreadable or disagrees with the catalog is
dropped: its images move from ``images`` to ``repairs``, so the next ``ingest`` of their root
embeds them again. Crash leftovers are deleted, the index is rebuilt from the shards, and the
statistics are recomputed with their recorded settings.

>>> report = check_store(Store.open(store))
>>> report.ok, report.problems
(True, [])
"""

from __future__ import annotations

from dataclasses import dataclass, field

from actdb.errors import StoreError
from actdb.store import catalog
from actdb.store.catalog import files, reads, writes
from actdb.store.shards import shard_dim
from actdb.store.store import Store


@dataclass
class CheckReport:
    """Problems found (empty when the store is consistent), what was checked and repaired."""

    store: str
    images: int = 0
    vectors: int = 0
    shards: int = 0
    index_ids: int | None = None
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # incomplete, not inconsistent
    repaired: list[str] = field(default_factory=list)
    bad_shards: list[str] = field(default_factory=list)
    index_bad: bool = False
    stats_bad: bool = False
    catalog_format: str | None = None  # when DuckDB 1.x clients cannot open the catalog

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict:
        return {"ok": self.ok, "store": self.store, "images": self.images,
                "vectors": self.vectors, "shards": self.shards, "index_ids": self.index_ids,
                "problems": self.problems, "notes": self.notes, "repaired": self.repaired}


def _sample(rows: list[tuple]) -> str:
    vals = [str(r[0]) for r in rows[:5]]
    return ", ".join(vals) + (" ..." if len(rows) > 5 else "")


def check_store(store: Store) -> CheckReport:
    """Verify every invariant of the store format; never modifies the store."""
    path = store.path
    rep = CheckReport(store=str(path))
    m = store.manifest
    if not files.catalog_path(path).exists():
        rep.problems.append(f"{files.CATALOG} is missing")
        return rep
    with store.reader() as con:
        listed = reads.shard_rows(con)
        rep.shards = len(listed)
        on_disk = set(files.shard_files_on_disk(path))
        for name in sorted(set(listed) - on_disk):
            rep.problems.append(f"shard {name} is listed in the catalog but missing on disk")
            rep.bad_shards.append(name)
        for name in sorted(on_disk - set(listed)):
            rep.problems.append(f"shard {name} is not in the catalog (left by an interrupted "
                                "writer; the next ingest or `check --repair` removes it)")
        for tmp in files.temp_files(path):
            rep.problems.append(f"{tmp.name} is a temporary file left by an interrupted writer")
        present = []
        for name in sorted(set(listed) & on_disk):
            try:
                d = shard_dim(files.shard_path(path, name))
            except Exception as exc:  # noqa: BLE001 - pyarrow's errors for a broken file
                rep.problems.append(f"shard {name} cannot be read ({str(exc)[:100]})")
                rep.bad_shards.append(name)
                continue
            if d != m.dim:
                rep.problems.append(f"shard {name} has dim {d}, manifest says {m.dim}")
                rep.bad_shards.append(name)
            present.append(name)  # its ids still take part in the checks below
        rep.images, rep.vectors, found, wrong = reads.consistency(con, path, present)
        for label, rows in found.items():
            rep.problems.append(f"{len(rows)} {label}: {_sample(rows)}")
        for name, n in wrong:
            if name in present:
                rep.problems.append(f"shard {name} should hold {n} rows but does not")
                rep.bad_shards.append(name)
        ids = set(reads.image_ids(con).tolist())
        stats = reads.stats_record(con)
        version = reads.storage_version(con)
    if not catalog.readable_by_1x(version):
        rep.notes.append(f"{files.CATALOG} is in DuckDB's storage format {version}, which "
                         "DuckDB 1.x clients cannot open (`check --repair` rewrites it in "
                         f"{catalog.STORAGE_VERSION}'s)")
        rep.catalog_format = version
    _check_index(store, ids, rep)
    if stats is None and rep.images:
        rep.notes.append("statistics not computed yet (`actdb stats`)")
        rep.stats_bad = True
    elif stats is not None and stats["images"] != rep.images:
        rep.notes.append(f"statistics cover {stats['images']} images, the store has "
                         f"{rep.images} (`actdb stats`)")
        rep.stats_bad = True
    return rep


def _check_index(store: Store, ids: set[int], rep: CheckReport) -> None:
    path = store.path
    has_info, has_index = files.index_info_path(path).exists(), files.index_path(path).exists()
    if not has_info and not has_index:
        if ids:
            rep.notes.append("the store has no index yet (`actdb index`)")
            rep.index_bad = True
        return
    if has_info != has_index:
        present, missing = ((files.INDEX_INFO, files.INDEX) if has_info
                            else (files.INDEX, files.INDEX_INFO))
        rep.problems.append(f"{present} is present but {missing} is missing")
        rep.index_bad = True
        return
    from actdb.index.faiss_index import index_ids, load_index

    try:
        index, _ = load_index(path)
    except StoreError as exc:
        rep.problems.append(str(exc))
        rep.index_bad = True
        return
    if index.d != store.manifest.dim:
        rep.problems.append(f"index dim {index.d} differs from manifest dim "
                            f"{store.manifest.dim}")
    got = index_ids(index)
    rep.index_ids = len(got)
    if len(got) != len(set(got.tolist())):
        rep.problems.append("index holds duplicate ids")
    missing, extra = ids - set(got.tolist()), set(got.tolist()) - ids
    if extra or index.d != store.manifest.dim:
        rep.problems.append(f"index ids differ from the catalog ({len(missing)} missing, "
                            f"{len(extra)} extra)")
        rep.index_bad = True
    elif missing:
        rep.notes.append(f"the index lacks {len(missing)} stored images (an interrupted "
                         "ingest? `actdb index` or `check --repair` adds them)")
        rep.index_bad = True


def repair_store(store: Store) -> CheckReport:
    """Fix what :func:`check_store` finds, then check again (the report lists the repairs)."""
    from actdb.index.faiss_index import IndexConfig
    from actdb.index.info import IndexInfo
    from actdb.index.store_index import index_store
    from actdb.stats import compute_stats, settings
    from actdb.store.writer import StoreWriter

    before = check_store(store)
    done = []
    with StoreWriter(store.path, store.manifest, check_shards=False) as w:
        removed = w.remove_orphans()  # also on entry; listed here for the report
        if before.bad_shards:
            bad = sorted(set(before.bad_shards))
            with w.connect() as con:
                n = writes.forget_shards(con, bad, "shard lost or damaged; re-ingest",
                                        dim=store.manifest.dim,
                                        fingerprint=store.manifest.fingerprint)
            for name in bad:
                files.shard_path(store.path, name).unlink(missing_ok=True)
            done.append(f"dropped {len(bad)} damaged shard(s); their {n} images are listed in "
                        "`repairs` and the next ingest of their root embeds them again")
        if before.catalog_format:
            catalog.rewrite_catalog(store.path)
            done.append(f"rewrote {files.CATALOG} from storage format {before.catalog_format} "
                        f"to {catalog.STORAGE_VERSION}'s, which DuckDB 1.x clients open")
    leftovers = [p for p in before.problems if "interrupted writer" in p]
    if leftovers or removed:
        done.append(f"removed {max(len(leftovers), len(removed))} file(s) left by "
                    "interrupted writers")
    if before.index_bad or before.bad_shards:
        info = IndexInfo.of_store(store.path)
        index_store(store, IndexConfig(**info.config) if info and info.config else None)
        done.append("rebuilt the index")
    if before.stats_bad or before.bad_shards:
        compute_stats(store, settings(store))
        done.append("recomputed the statistics")
    after = check_store(store)
    after.repaired = done
    return after
