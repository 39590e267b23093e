"""One query asked of every space of a store: where it lands in each network and layer
(``nearest --space all``, ``centroids --space all``).

Each space answers exactly as it does alone (``Database.space(...).nearest``, with every
option of ``nearest``: its runtime, its query cache, filters, ``include_self``, ``recall``);
this module puts the answers side by side, after letting the spaces of one network that
embed with Keras share a forward pass (:func:`share_forward`). Each row says, for one query
in one space, the class its ``k`` nearest images vote for (and the next ones, with their
shares, in ``top_classes``), the nearest class centroid and whether the query lies inside
that class's p95 radius, and its nearest-neighbour distance against the store's (the
original study's question, asked of every space at once).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from actdb.errors import StoreMismatch, UsageError
from actdb.query.resolve import QuerySpec, parse_queries

if TYPE_CHECKING:
    from actdb.query.context import QueryContext

COLUMNS = ["query", "space", "default", "top_class", "vote_share", "top_classes",
           "nearest_centroid", "centroid_distance", "inside_p95", "ratio_to_p95", "nn_distance",
           "nn_percentile", "route"]
#: Classes of the vote named in ``top_classes``.
TOP = 3


def share_forward(contexts: list[QueryContext], queries: list[QuerySpec]) -> None:
    """One forward pass per network for the spaces that embed with their framework (Keras or
    PyTorch): the image queries
    that some of these spaces have not cached yet go once through a model with an output per
    layer (bit-identical to each layer's own model), and each space's query cache receives
    its vector, so each space's ``nearest`` then answers from its cache. Spaces on ONNX
    Runtime keep a model each (one network's layers are separate ONNX models)."""
    from actdb.images import decode_named
    from actdb.models.embed import layers_embedder, manifest_config, network_key

    images = [q for q in queries if q.data is not None]
    if not images:
        return
    shas = [q.sha256 for q in images]
    nets: dict[tuple, list] = {}
    for ctx in contexts:
        if ctx.route.startswith(("keras-", "torch-")):
            nets.setdefault(network_key(ctx.store.manifest), []).append(ctx)
    for members in nets.values():
        if len(members) < 2 or all(len(c.cache.get(shas)) == len(shas) for c in members):
            continue
        manifests = [c.store.manifest for c in members]
        m = manifests[0]
        emb = layers_embedder(manifest_config(m), [x.layer for x in manifests])
        for member, x in zip(emb.members, manifests, strict=True):
            if member.weights_sha256 != x.weights_sha256:
                raise StoreMismatch(f"the weights of {x.space_name} are not the ones it was "
                                    "built with; restore the original weights file")
        batch = np.stack([decode_named(q.data, m.image_size, m.resize, q.name)
                          for q in images])
        for ctx, vecs in zip(members, emb.embed(batch), strict=True):
            ctx.cache.put([(q.sha256, q.name, q.source, vec)
                           for q, vec in zip(images, vecs, strict=True)], computed=set(shas))


def askable_queries(queries, names: list[str] | None = None) -> list[QuerySpec]:
    """The queries parsed once, to be asked of every space; UsageError unless each is an
    image or ``id:N`` (a vector belongs to one space) or when there are none."""
    specs = parse_queries(queries, names)
    if not specs:
        raise UsageError("give at least one query")
    vectors = [q.source for q in specs if not q.askable]
    if vectors:
        raise UsageError(f"{vectors[0]} is a vector of one space; ask every space with images "
                         "or id:N")
    return specs


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
