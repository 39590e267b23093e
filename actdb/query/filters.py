"""Class names and image filters shared by the query commands.

Classes are named by Keras-style short name (``sea_cucumber``), wnid (``n02321529``) or, for
non-ImageNet trees, folder name. Unknown names get an error suggesting the closest ones.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

import numpy as np

from actdb.errors import QueryError


@dataclass(frozen=True)
class ImageFilter:
    """Which stored images a query may return."""

    classes: tuple[str, ...] | None = None
    split: str | None = None
    where: str | None = None

    @property
    def active(self) -> bool:
        return bool(self.classes or self.split or self.where)


def parse_classes(text: str | None) -> tuple[str, ...] | None:
    """``"a,b"`` -> ("a", "b")."""
    if not text:
        return None
    return tuple(c.strip() for c in text.split(",") if c.strip())


def resolve_classes(con, names) -> list[str]:
    """Map names to class keys (synset, else class name), or raise with suggestions."""
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
            close = difflib.get_close_matches(n, [r[2] for r in rows if r[2]], n=3, cutoff=0.5)
            hint = f"; did you mean {', '.join(close)}?" if close else \
                "; `actdb sql \"SELECT class_name FROM classes\"` lists them"
            raise QueryError(f"unknown class {n!r} in this store{hint}")
        keys.append(key)
    return keys


def allowed_ids(con, flt: ImageFilter) -> np.ndarray | None:
    """Image ids passing the filter (None when there is no filter)."""
    if not flt.active:
        return None
    clauses, params = [], []
    if flt.classes:
        keys = resolve_classes(con, flt.classes)
        clauses.append(f"coalesce(synset, class_name) IN ({', '.join('?' * len(keys))})")
        params.extend(keys)
    if flt.split:
        clauses.append("split = ?")
        params.append(flt.split)
    if flt.where:
        clauses.append(f"({flt.where})")
    sql = "SELECT image_id FROM images WHERE " + " AND ".join(clauses)
    try:
        rows = con.execute(sql, params).fetchall()
    except Exception as exc:  # noqa: BLE001 - duckdb errors for a bad --where
        raise QueryError(f"bad --where: {str(exc).splitlines()[0]}") from None
    return np.array([r[0] for r in rows], dtype=np.int64)
