"""``centroids``: rank classes by the query's distance to their centroid.

Each row also shows the class's own spread (mean and 95th percentile member-to-centroid
distance), so one sees whether the query falls inside a class (``inside``: distance <= p95)
or is just nearest to it from far away (``ratio_to_p95`` >> 1).
"""

from __future__ import annotations

import numpy as np

from actdb.query.resolve import QueryVector

COLUMNS = ["query", "rank", "class_name", "synset", "distance", "n", "class_mean_dist",
           "class_p95_dist", "inside", "ratio_to_p95"]


def centroids(queries: list[QueryVector], cent, k: int = 10):
    """Per query, the k nearest class centroids (L2), with each class's spread.

    ``cent``: the catalog's centroids (DataFrame), already restricted to the classes wanted.
    """
    from actdb.viz.notebook import Centroids

    if cent.empty:
        return Centroids(columns=COLUMNS)
    c = np.stack(cent.centroid.to_numpy()).astype(np.float64)
    out = []
    for q in queries:
        d = np.sqrt(((c - q.vec.astype(np.float64)) ** 2).sum(axis=1))
        for rank, i in enumerate(np.argsort(d, kind="stable")[:k], 1):
            row = cent.iloc[i]
            out.append({"query": q.name, "rank": rank, "class_name": row.class_name,
                        "synset": row.synset, "distance": float(d[i]), "n": int(row.n),
                        "class_mean_dist": float(row.mean_dist),
                        "class_p95_dist": float(row.p95_dist),
                        "inside": bool(d[i] <= row.p95_dist),
                        "ratio_to_p95": float(d[i] / row.p95_dist) if row.p95_dist else None})
    return Centroids(out, columns=COLUMNS)
