"""``merge DEST STORE...``: combine stores made with identical manifests (the same spaces,
each of the same recipe), then index them and compute their statistics (exactly what
``actdb merge`` does).

Workers ingest disjoint ``--shard K/N`` slices into stores of their own; merging them gives
one store with every image exactly once. An image already in DEST (same root and path) is
skipped; an image id already taken gets a fresh one.

>>> res = merge_stores(tmp / "all", [store])
>>> res.added, res.failures, res.stats["images"]
(18, 1, 18)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from actdb.errors import UsageError
from actdb.stats import refresh_index_and_stats
from actdb.store.catalog import reads
from actdb.store.store import Store
from actdb.store.writer import StoreWriter


@dataclass
class MergeResult:
    out: str
    sources: list[str]
    added: int
    skipped: int
    renumbered: int
    failures: int
    index: dict | None = None
    stats: dict | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def merge_stores(out: str | Path, sources: list[str | Path],
                 rows_per_shard: int = 65536) -> MergeResult:
    """Merge ``sources`` into ``out`` (created when missing), index it and compute its
    statistics."""
    if not sources:
        raise UsageError("name at least one store to merge")
    out = Path(out)
    srcs = [Path(s) for s in sources]
    if any(s.resolve() == out.resolve() for s in srcs):
        raise UsageError("the destination must not also be one of the stores to merge")
    opened = [Store.open(s) for s in srcs]
    names = [r.name for r in opened[0].spaces()]
    first = [opened[0].in_space(n).manifest for n in names]
    for s, store in zip(srcs[1:], opened[1:], strict=True):
        theirs = [r.name for r in store.spaces()]
        if theirs != names:
            raise UsageError(f"store {s} has the spaces {', '.join(theirs)}, the first "
                             f"{', '.join(names)}; merge only stores of the same spaces")
        for n, m in zip(names, first, strict=True):
            m.ensure_compatible(store.in_space(n).manifest, what=f"store {s}",
                                fix="merge only stores made with the same recipe (actdb "
                                "info shows each one's)")
    added = skipped = renumbered = n_fail = 0
    with StoreWriter(out, first) as w:
        w.start_run("", "merge", {"sources": [str(s.resolve()) for s in srcs]})
        with w.connect() as con:
            used = set(reads.image_ids(con).tolist())
            have = reads.root_paths(con)
        failed: set[tuple[str, str]] = set()
        next_id = max(used, default=-1) + 1
        for store in opened:
            with store.reader() as con:
                rows, fails = reads.merge_rows(con)
            before = len(rows)
            rows = [r for r in rows if (r.root, r.path) not in have]
            skipped += before - len(rows)
            for start in range(0, len(rows), rows_per_shard):
                chunk = rows[start : start + rows_per_shard]
                ids = [r.image_id for r in chunk]
                vecs = [store.in_space(n).vectors(ids)[1] for n in names]
                new_rows = []
                for r in chunk:
                    new_id = r.image_id
                    if new_id in used:
                        new_id, next_id = next_id, next_id + 1
                        renumbered += 1
                    used.add(new_id)
                    next_id = max(next_id, new_id + 1)
                    have.add((r.root, r.path))
                    new_rows.append(r._replace(image_id=new_id))
                w.commit([r.image_id for r in new_rows], vecs, new_rows, [])
                added += len(new_rows)
            seen = have | failed
            fails = [f for f in fails if (f.root, f.path) not in seen]
            failed.update((f.root, f.path) for f in fails)
            if fails:
                w.commit([], [], [], fails)
                n_fail += len(fails)
        w.finish_run("done", added, skipped, n_fail)
    result = MergeResult(out=str(out), sources=[str(s) for s in srcs], added=added,
                         skipped=skipped, renumbered=renumbered, failures=n_fail)
    result.index, result.stats = refresh_index_and_stats(Store.open(out))
    return result
