"""``actdb centroids``: rank classes by the query's distance to their centroid.

Each row also shows the class's own spread (mean and 95th percentile member-to-centroid
distance), so one sees whether the query falls inside a class (``inside``: distance <= p95)
or is just nearest to it from far away (``ratio_to_p95`` >> 1).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from actdb.errors import QueryError
from actdb.query.filters import resolve_classes
from actdb.query.vectors import QueryVector


def load_centroids(con, classes=None) -> pd.DataFrame:
    try:
        df = con.execute(
            "SELECT class_key, class_name, synset, n, centroid, mean_dist, p95_dist "
            "FROM centroids ORDER BY class_key").df()
    except Exception:  # noqa: BLE001 - table missing
        raise QueryError("no class statistics in this store; run `actdb stats`") from None
    if classes:
        df = df[df.class_key.isin(resolve_classes(con, classes))]
    return df


def centroids(db, queries: list[QueryVector], k: int = 10, classes=None) -> pd.DataFrame:
    """Per query, the k nearest class centroids (L2), with each class's spread."""
    with db.store.connect() as con:
        cent = load_centroids(con, classes)
    if cent.empty:
        return pd.DataFrame(columns=["query", "rank", "class_name", "synset", "distance"])
    c = np.stack(cent.centroid.to_numpy()).astype(np.float64)
    out = []
    for q in queries:
        d = np.sqrt(((c - q.vec.astype(np.float64)) ** 2).sum(axis=1))
        top = np.argsort(d, kind="stable")[:k]
        for rank, i in enumerate(top, 1):
            row = cent.iloc[i]
            out.append({"query": q.name, "rank": rank, "class_name": row.class_name,
                        "synset": row.synset, "distance": float(d[i]), "n": int(row.n),
                        "class_mean_dist": float(row.mean_dist),
                        "class_p95_dist": float(row.p95_dist),
                        "inside": bool(d[i] <= row.p95_dist),
                        "ratio_to_p95": float(d[i] / row.p95_dist) if row.p95_dist else None})
    return pd.DataFrame(out)
