"""``check``: do the manifest, the catalog, the shards, the index and the statistics agree?
``check(repair=True)``: rebuild what can be rebuilt.

Repair never invents data, and never touches what is sound. A shard that is lost, unreadable
or disagrees with the catalog is unlisted in the space it belongs to, and in no other: its
images keep their ids, and the next ``ingest`` embeds them again into that space alone (from
their files, as it fills a space added later). Crash leftovers are deleted; the index of each
damaged space is rebuilt from its shards, its statistics recomputed with their recorded
settings, and the kept comparison of spaces that lost vectors is dropped.

>>> report = check_store(Store.open(store))
>>> report.ok, report.problems
(True, [])
"""

from __future__ import annotations

from dataclasses import dataclass, field

from actdb.errors import StoreError
from actdb.store import catalog
from actdb.store.catalog import derived, files, reads, writes
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
    bad_shards: dict[str, list[str]] = field(default_factory=dict)  # space -> shard names
    index_bad: list[str] = field(default_factory=list)  # the spaces whose index to rebuild
    stats_bad: list[str] = field(default_factory=list)  # ... and statistics to recompute
    catalog_format: str | None = None  # when DuckDB 1.x clients cannot open the catalog

    @property
    def ok(self) -> bool:
        return not self.problems

    def _repr_html_(self) -> str:
        from actdb.viz.notebook import check_html

        return check_html(self)

    def to_dict(self) -> dict:
        return {"ok": self.ok, "store": self.store, "images": self.images,
                "vectors": self.vectors, "shards": self.shards, "index_ids": self.index_ids,
                "problems": self.problems, "notes": self.notes, "repaired": self.repaired}


def _sample(rows: list[tuple]) -> str:
    vals = [str(r[0]) for r in rows[:5]]
    return ", ".join(vals) + (" ..." if len(rows) > 5 else "")


def check_store(store: Store) -> CheckReport:
    """Verify every invariant of the store format, in every space; never modifies the store.
    The counts are the default space's; a problem in another space names it."""
    path = store.path
    rep = CheckReport(store=str(path))
    if not files.catalog_path(path).exists():
        rep.problems.append(f"{files.CATALOG} is missing")
        return rep
    for tmp in files.temp_files(path):
        rep.problems.append(f"{tmp.name} is a temporary file left by an interrupted writer")
    with store.reader() as con:
        version = reads.storage_version(con)
    if not catalog.readable_by_1x(version):
        rep.notes.append(f"{files.CATALOG} is in DuckDB's storage format {version}, which "
                         "DuckDB 1.x clients cannot open (`check --repair` rewrites it in "
                         f"{catalog.STORAGE_VERSION}'s)")
        rep.catalog_format = version
    for row in store.spaces():
        _check_space(store.in_space(row.name), rep)
    return rep


def _check_space(store: Store, rep: CheckReport) -> None:
    folder, m, space = store.dir, store.manifest, store.space
    said = "" if space.is_default else f"space {space.name}: "
    problems, notes = [], []
    bad = rep.bad_shards.setdefault(space.name, [])
    with store.reader() as con:
        listed = reads.shard_rows(con, space.name)
        on_disk = set(files.shard_files_on_disk(folder))
        for name in sorted(set(listed) - on_disk):
            problems.append(f"shard {name} is listed in the catalog but missing on disk")
            bad.append(name)
        for name in sorted(on_disk - set(listed)):
            problems.append(f"shard {name} is not in the catalog (left by an interrupted "
                            "writer; the next ingest or `check --repair` removes it)")
        present = []
        for name in sorted(set(listed) & on_disk):
            try:
                d = shard_dim(files.shard_path(folder, name))
            except Exception as exc:  # noqa: BLE001 - pyarrow's errors for a broken file
                problems.append(f"shard {name} cannot be read ({str(exc)[:100]})")
                bad.append(name)
                continue
            if d != m.dim:
                problems.append(f"shard {name} has dim {d}, manifest says {m.dim}")
                bad.append(name)
            present.append(name)  # its ids still take part in the checks below
        images, vectors, found, wrong = derived.consistency(con, folder, space, present)
        for label, rows in found.items():
            problems.append(f"{len(rows)} {label}: {_sample(rows)}")
        for name, n in wrong:
            if name in present:
                problems.append(f"shard {name} should hold {n} rows but does not")
                bad.append(name)
        ids = {int(r[0]) for r in con.execute("SELECT image_id FROM space_images").fetchall()}
        unfilled = len(reads.shards_to_fill(con, space.name))
        total = reads.summary(con)["images"] if space.is_default else None
        stats = derived.stats_record(con, space.name)
    if space.is_default:  # every image of the store, whether this space holds it yet or not
        rep.images, rep.vectors, rep.shards = total, vectors, len(listed)
    if unfilled:
        notes.append(f"{unfilled} shard(s) of images not embedded in this space yet (run "
                     "`actdb ingest` again to fill it)")
    index_ids, index_bad = _check_index(store, ids, problems, notes)
    if space.is_default:
        rep.index_ids = index_ids
    if index_bad:
        rep.index_bad.append(space.name)
    if stats is None and images:
        notes.append("statistics not computed yet (`actdb stats`)")
    elif stats is not None and stats["images"] != images:
        notes.append(f"statistics cover {stats['images']} images, the space has "
                     f"{images} (`actdb stats`)")
    if stats is None and images or stats is not None and stats["images"] != images:
        rep.stats_bad.append(space.name)
    rep.problems += [said + p for p in problems]
    rep.notes += [said + n for n in notes]


def _check_index(store: Store, ids: set[int], problems: list[str], notes: list[str]
                 ) -> tuple[int | None, bool]:
    """Check a space's index against its image ids: how many ids it holds (None: no index)
    and whether it needs rebuilding."""
    folder = store.dir
    has_info = files.index_info_path(folder).exists()
    has_index = files.index_path(folder).exists()
    if not has_info and not has_index:
        if ids:
            notes.append("the store has no index yet (`actdb index`)")
        return None, bool(ids)
    if has_info != has_index:
        present, missing = ((files.INDEX_INFO, files.INDEX) if has_info
                            else (files.INDEX, files.INDEX_INFO))
        problems.append(f"{present} is present but {missing} is missing")
        return None, True
    from actdb.index.faiss_index import index_ids, load_index

    try:
        index, _ = load_index(folder)
    except StoreError as exc:
        problems.append(str(exc))
        return None, True
    dim = store.manifest.dim
    if index.d != dim:
        problems.append(f"index dim {index.d} differs from manifest dim {dim}")
    got = index_ids(index)
    if len(got) != len(set(got.tolist())):
        problems.append("index holds duplicate ids")
    missing, extra = ids - set(got.tolist()), set(got.tolist()) - ids
    if extra or index.d != dim:
        problems.append(f"index ids differ from the catalog ({len(missing)} missing, "
                        f"{len(extra)} extra)")
    elif missing:
        notes.append(f"the index lacks {len(missing)} stored images (an interrupted "
                     "ingest? `actdb index` or `check --repair` adds them)")
    return len(got), bool(extra or missing or index.d != dim)


def repair_store(store: Store) -> CheckReport:
    """Fix what :func:`check_store` finds, then check again (the report lists the repairs)."""
    from actdb.index.faiss_index import IndexConfig
    from actdb.index.info import IndexInfo
    from actdb.index.store_index import index_store
    from actdb.stats import compute_stats, settings
    from actdb.store.writer import StoreWriter

    before = check_store(store)
    done = []
    rows = store.spaces()
    lost = {space: sorted(set(names)) for space, names in before.bad_shards.items() if names}
    with StoreWriter(store.path, check_shards=False) as w:
        removed = w.remove_orphans()  # also on entry; listed here for the report
        if lost:
            with w.connect() as con:
                n = writes.forget_space_shards(con, lost)
            folders = {row.name: files.space_dir(store.path, row.folder) for row in rows}
            for space, names in lost.items():
                for name in names:
                    files.shard_path(folders[space], name).unlink(missing_ok=True)
                done.append(f"dropped {len(names)} damaged shard(s) of {space}")
            done.append(f"{n} vector(s) to embed again: the images keep their ids, and the "
                        "next `actdb ingest` embeds them into the spaces that lost them")
        if before.catalog_format:
            catalog.rewrite_catalog(store.path)
            done.append(f"rewrote {files.CATALOG} from storage format {before.catalog_format} "
                        f"to {catalog.STORAGE_VERSION}'s, which DuckDB 1.x clients open")
    leftovers = [p for p in before.problems if "interrupted writer" in p]
    if leftovers or removed:
        done.append(f"removed {max(len(leftovers), len(removed))} file(s) left by "
                    "interrupted writers")
    for row in rows:
        space = store.in_space(row.name)
        named = "" if row.is_default else f" of {row.name}"
        if row.name in before.index_bad or row.name in lost:
            info = IndexInfo.of_store(space.dir)
            index_store(space, IndexConfig(**info.config) if info and info.config else None)
            done.append(f"rebuilt the index{named}")
        if row.name in before.stats_bad or row.name in lost:
            compute_stats(space, settings(space))
            done.append(f"recomputed the statistics{named}")
    after = check_store(store)
    after.repaired = done
    return after
