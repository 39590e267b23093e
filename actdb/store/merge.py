"""``actdb merge OUT STORE...``: combine stores made with identical manifests.

Workers ingest disjoint ``--shard K/N`` slices into stores of their own; merging them gives
one store with every image exactly once. An image already in OUT (same root and path) is
skipped; an image id already taken gets a fresh one.

>>> merge_stores("all", ["s1", "s2", "s3"])                 # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from actdb.errors import UsageError
from actdb.store import catalog
from actdb.store.manifest import read_manifest
from actdb.store.store import Store
from actdb.store.writer import FAILURE_COLUMNS, IMAGE_COLUMNS, StoreWriter


@dataclass
class MergeResult:
    out: str
    sources: list[str]
    added: int
    skipped: int
    renumbered: int
    failures: int


def merge_stores(out: str | Path, sources: list[str | Path],
                 rows_per_shard: int = 65536) -> MergeResult:
    """Merge ``sources`` into ``out`` (created when missing)."""
    if not sources:
        raise UsageError("name at least one store to merge")
    out = Path(out)
    srcs = [Path(s) for s in sources]
    if any(s.resolve() == out.resolve() for s in srcs):
        raise UsageError("OUT must not also be one of the stores to merge")
    manifests = [read_manifest(s) for s in srcs]
    first = manifests[0]
    for s, m in zip(srcs[1:], manifests[1:], strict=True):
        first.ensure_compatible(m, what=f"store {s}")
    img_cols = IMAGE_COLUMNS[:-2]
    added = skipped = renumbered = n_fail = 0
    with StoreWriter(out, first) as w:
        w.start_run("", "merge", {"sources": [str(s.resolve()) for s in srcs]})
        with w.connect() as con:
            used = {r[0] for r in con.execute("SELECT image_id FROM images").fetchall()}
            have = set(con.execute("SELECT root, path FROM images").fetchall())
        next_id = max(used, default=-1) + 1
        for src in srcs:
            store = Store(src)
            with catalog.connect(src, read_only=True, views=False) as con:
                rows = con.execute(
                    f"SELECT {', '.join(img_cols)} FROM images ORDER BY image_id").fetchall()
                fails = con.execute(
                    f"SELECT {', '.join(FAILURE_COLUMNS[:-1])} FROM failures").fetchall()
            before = len(rows)
            rows = [r for r in rows if (r[1], r[2]) not in have]
            skipped += before - len(rows)
            for start in range(0, len(rows), rows_per_shard):
                chunk = rows[start : start + rows_per_shard]
                old_ids, vecs = store.vectors([r[0] for r in chunk])
                new_rows = []
                for r in chunk:
                    new_id = r[0]
                    if new_id in used:
                        new_id, next_id = next_id, next_id + 1
                        renumbered += 1
                    used.add(new_id)
                    next_id = max(next_id, new_id + 1)
                    have.add((r[1], r[2]))
                    new_rows.append((new_id, *r[1:]))
                ids = [r[0] for r in new_rows]
                w.commit(ids, vecs, new_rows, [])
                added += len(new_rows)
            fails = [f for f in fails if (f[0], f[1]) not in have]
            if fails:
                w.commit([], [], [], fails)
                n_fail += len(fails)
        w.finish_run("done", added, skipped, n_fail)
    return MergeResult(str(out), [str(s) for s in srcs], added, skipped, renumbered, n_fail)
