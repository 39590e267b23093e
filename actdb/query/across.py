"""One query asked of every space of a store: where it lands in each network and layer
(``nearest --space all``, ``centroids --space all``).

An image query is decoded and embedded once per network: the spaces of one model (its
layers) come from one forward pass; ``id:N`` queries read each space's own stored vector.
Each row says, for one query in one space, the class its ``k`` nearest images vote for
(and the next ones, with their shares, in ``top_classes``), the nearest class centroid and
whether the query lies inside that class's p95 radius, and its nearest-neighbour distance
against the store's (the original study's question, asked of every space at once).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from actdb.errors import QueryError, StoreMismatch, UsageError
from actdb.query.resolve import QueryVector, Upload

COLUMNS = ["query", "space", "default", "top_class", "vote_share", "top_classes",
           "nearest_centroid", "centroid_distance", "inside_p95", "ratio_to_p95", "nn_distance",
           "nn_percentile"]
#: Classes of the vote named in ``top_classes``.
TOP = 3


def askable(spec) -> bool:
    """Whether a query can be asked of every space: an image or ``id:N``; a vector belongs to
    the one space whose dimension it has."""
    if isinstance(spec, Upload):
        return True
    return isinstance(spec, str | Path) and not str(spec).lower().endswith(".npy")


def _image(spec) -> tuple[str, str, bytes] | None:
    """(name, source, bytes) of an image query, None for any other kind."""
    if isinstance(spec, Upload):
        return spec.name, spec.source or spec.name, spec.data
    if isinstance(spec, str | Path) and not str(spec).startswith("id:") \
            and not str(spec).lower().endswith(".npy"):
        p = Path(spec)
        if not p.is_file():
            raise QueryError(f"query {spec} is not a file, an id:<image_id> or a .npy")
        return p.stem, str(p), p.read_bytes()
    return None


def _embedded(manifests: list, images: list[tuple[str, str, bytes]]) -> list[np.ndarray]:
    """The images' vectors in each of these spaces of one network (one forward pass),
    refused when the weights are not the ones the spaces were made with."""
    from actdb.images import decode_named
    from actdb.models.embed import layers_embedder, manifest_config

    m = manifests[0]
    emb = layers_embedder(manifest_config(m), [x.layer for x in manifests])
    for member, x in zip(emb.members, manifests, strict=True):
        if member.weights_sha256 != x.weights_sha256:
            raise StoreMismatch(f"the weights of {x.space_name} are not the ones it was built "
                                "with; restore the original weights file")
    batch = np.stack([decode_named(data, m.image_size, m.resize, name)
                      for name, _, data in images])
    return emb.embed(batch)


def across_spaces(db, queries: list, k: int = 50):
    """One row per query and space (DataFrame, :data:`COLUMNS`): each query's rows
    together, its spaces in the store's order. ``db`` is the
    :class:`~actdb.database.Database`; each space is asked through ``db.in_space``."""
    import pandas as pd

    vectors = [str(s) if isinstance(s, str | Path) else type(s).__name__
               for s in queries if not askable(s)]
    if vectors:
        raise UsageError(f"{vectors[0]} is a vector of one space; ask every space with images "
                         "or id:N")
    rows = db.store.spaces()
    images = {i: got for i, spec in enumerate(queries) if (got := _image(spec)) is not None}
    per_space = {r.name: list(queries) for r in rows}
    if images:
        nets: dict[tuple, list] = {}
        for r in rows:
            m = db.store.in_space(r.name).manifest
            key = (m.model, m.pool, m.weights_sha256, m.image_size, m.resize, m.precision,
                   m.preprocess)
            nets.setdefault(key, []).append(m)
        for manifests in nets.values():
            vecs = _embedded(manifests, list(images.values()))
            for m, v in zip(manifests, vecs, strict=True):
                for row, (i, (name, source, _)) in zip(v, images.items(), strict=True):
                    per_space[m.space_name][i] = QueryVector(name, source, row)
    out = []
    for r in rows:
        sub = db.in_space(r.name)
        near = sub.nearest(per_space[r.name], k=k)
        cents = sub.centroids(per_space[r.name], k=1).set_index("query")
        context = near.context.set_index("query")
        for query, votes in near.classes.groupby("query", sort=False):
            top = votes.iloc[0]
            c = cents.loc[query] if query in cents.index else None
            ctx = context.loc[query]
            out.append({"query": query, "space": r.name, "default": r.is_default,
                        "top_class": top.class_name, "vote_share": float(top.share),
                        "top_classes": ", ".join(f"{v.class_name} {v.share:.0%}" for v in
                                                 votes.head(TOP).itertuples()),
                        "nearest_centroid": None if c is None else c.class_name,
                        "centroid_distance": None if c is None else float(c.distance),
                        "inside_p95": None if c is None else bool(c.inside),
                        "ratio_to_p95": None if c is None else c.ratio_to_p95,
                        "nn_distance": ctx.get("nn_distance"),
                        "nn_percentile": ctx.get("nn_percentile")})
    order = {q: i for i, q in enumerate(dict.fromkeys(r["query"] for r in out))}
    place = {r.name: i for i, r in enumerate(rows)}
    out.sort(key=lambda r: (order[r["query"]], place[r["space"]]))  # each query's spaces
    return pd.DataFrame(out, columns=COLUMNS)
