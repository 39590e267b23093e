"""One query asked of every space of a store: where it lands in each network and layer
(``nearest --space all``, ``centroids --space all``).

Each space answers exactly as it does alone (``Database.in_space(...).nearest``, with every
option of ``nearest``: its runtime, its query cache, filters, ``include_self``, ``recall``);
this module only puts the answers side by side. Each row says, for one query in one space,
the class its ``k`` nearest images vote for (and the next ones, with their shares, in
``top_classes``), the nearest class centroid and whether the query lies inside that class's
p95 radius, and its nearest-neighbour distance against the store's (the original study's
question, asked of every space at once).
"""

from __future__ import annotations

from pathlib import Path

from actdb.errors import UsageError
from actdb.query.resolve import Upload

COLUMNS = ["query", "space", "default", "top_class", "vote_share", "top_classes",
           "nearest_centroid", "centroid_distance", "inside_p95", "ratio_to_p95", "nn_distance",
           "nn_percentile", "route"]
#: Classes of the vote named in ``top_classes``.
TOP = 3


def askable(spec) -> bool:
    """Whether a query can be asked of every space: an image or ``id:N``; a vector belongs to
    the one space whose dimension it has."""
    if isinstance(spec, Upload):
        return True
    return isinstance(spec, str | Path) and not str(spec).lower().endswith(".npy")


def require_askable(queries: list) -> None:
    """UsageError unless every query can be asked of every space."""
    vectors = [str(s) if isinstance(s, str | Path) else type(s).__name__
               for s in queries if not askable(s)]
    if vectors:
        raise UsageError(f"{vectors[0]} is a vector of one space; ask every space with images "
                         "or id:N")


def space_rows(space, near, cents) -> list[dict]:
    """The rows of one space (a SpaceRow): its NearestResult ``near`` and the nearest
    centroid of each query (``cents``: the space's ``centroids`` DataFrame, k=1)."""
    first = {r.query: r for r in cents.itertuples()}
    out = []
    for a in near.answers:
        votes, c, ctx = a.vote(), first.get(a.query.name), a.context
        top = votes[0] if votes else {"class_name": None, "share": 0.0}
        out.append({"query": a.query.name, "space": space.name, "default": space.is_default,
                    "top_class": top["class_name"], "vote_share": float(top["share"]),
                    "top_classes": ", ".join(f"{v['class_name']} {v['share']:.0%}"
                                             for v in votes[:TOP]),
                    "nearest_centroid": None if c is None else c.class_name,
                    "centroid_distance": None if c is None else float(c.distance),
                    "inside_p95": None if c is None else bool(c.inside),
                    "ratio_to_p95": None if c is None else c.ratio_to_p95,
                    "nn_distance": ctx.get("nn_distance"),
                    "nn_percentile": ctx.get("nn_percentile"), "route": ctx.get("route")})
    return out


def side_by_side(rows: list[dict], spaces: list, columns: list[str] = COLUMNS):
    """The rows (DataFrame) of each query together, its spaces in the store's order."""
    import pandas as pd

    order = {q: i for i, q in enumerate(dict.fromkeys(r["query"] for r in rows))}
    place = {s.name: i for i, s in enumerate(spaces)}
    rows = sorted(rows, key=lambda r: (order[r["query"]], place[r["space"]]))
    return pd.DataFrame(rows, columns=columns)
