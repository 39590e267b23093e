"""Turn query specs into vectors, exactly as the store's images were embedded.

A query is an image file, ``id:<image_id>`` of a stored image, a ``.npy`` vector (or a stack of
them) of the store's dim, a numpy array, or raw image bytes (:class:`Upload`). Image queries are
embedded together in one batch by the store's own model and cached by content
(:mod:`actdb.query.cache`).

A query is parsed once (:func:`parse_queries`: a file read, a ``.npy`` loaded) into a
:class:`QuerySpec`, so that asking it of several spaces reads and hashes it once.

>>> [(q.name, q.image_id, q.askable) for q in parse_queries(["id:17"], ["seventeen"])]
[('seventeen', 17, True)]
"""

from __future__ import annotations

import functools
import hashlib
import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from actdb.errors import QueryError

if TYPE_CHECKING:
    from actdb.query.context import QueryContext


@dataclass
class QueryVector:
    """One resolved query."""

    name: str
    source: str
    vec: np.ndarray
    image_id: int | None = None  # set for id: queries
    #: how an image query's vector was computed (runtime and precision: ``onnx-fp32``,
    #: ``keras-bf16``); None for vectors given or stored (``id:``, ``.npy``, arrays)
    route: str | None = None
    cached: bool = False
    rebound: bool = False  # the name denoted other content before this query


@dataclass(frozen=True)
class Upload:
    """Image bytes from somewhere other than a file (an HTTP upload): ``name`` is the query's
    name, ``source`` where the bytes came from (the uploaded file's name)."""

    name: str
    data: bytes
    source: str = ""


@dataclass(frozen=True, eq=False, kw_only=True)
class QuerySpec:
    """One query as given, parsed: an image (its bytes, read once), a stored image
    (``image_id``), vectors of one space (``array``: a .npy file's or an array, one or a
    stack), or an already resolved ``given`` vector. ``named``: its name was given, so a
    vector's name is bound in the query cache as an image's is."""

    name: str
    source: str
    data: bytes | None = None
    image_id: int | None = None
    array: np.ndarray | None = None
    given: QueryVector | None = None
    named: bool = False

    @property
    def askable(self) -> bool:
        """Whether every space can answer it: an image or ``id:N`` (a vector belongs to the
        one space whose dimension it has)."""
        return self.data is not None or self.image_id is not None

    @functools.cached_property
    def sha256(self) -> str:
        """An image's content hash: its key in the query cache."""
        return hashlib.sha256(self.data).hexdigest()


def as_list(queries) -> list:
    """One query or several -> a list."""
    if isinstance(queries, str | Path | np.ndarray | Upload | QueryVector | QuerySpec) or \
            not hasattr(queries, "__iter__"):
        return [queries]
    return list(queries)


def parse_id(spec: str) -> int:
    """``id:17`` -> 17 (QueryError for anything else after ``id:``)."""
    try:
        return int(spec[3:])
    except ValueError:
        raise QueryError(f"bad query {spec!r}: use id:<integer image_id>") from None


def parse_query(spec, name: str | None = None, n: int = 0) -> QuerySpec:
    """One query (a file, ``id:N``, a ``.npy``, an array, an Upload, a QueryVector, or a
    QuerySpec, kept) as a QuerySpec; ``name`` (None: its own) names it; ``n`` is its place
    among the queries (an array's default name)."""
    if isinstance(spec, QuerySpec):
        return replace(spec, name=name, named=spec.named or spec.data is None) if name else spec
    if isinstance(spec, QueryVector):
        return QuerySpec(name=spec.name, source=spec.source, given=spec)
    if isinstance(spec, Upload):
        return QuerySpec(name=name or spec.name, source=spec.source or spec.name, data=spec.data)
    named = name is not None
    if isinstance(spec, np.ndarray):
        return QuerySpec(name=name or f"vector{n}", source="array", array=spec, named=named)
    text = str(spec)
    if text.startswith("id:"):
        image_id = parse_id(text)
        return QuerySpec(name=name or text, source=f"id:{image_id}", image_id=image_id,
                         named=named)
    path = Path(spec)
    if text.lower().endswith(".npy"):
        try:
            arr = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise QueryError(f"cannot read {path}: {exc}") from None
        return QuerySpec(name=name or path.stem, source=text, array=arr, named=named)
    if not path.is_file():
        raise QueryError(f"query {spec} is not a file, an id:<image_id> or a .npy")
    return QuerySpec(name=name or path.stem, source=text, data=path.read_bytes())


def parse_queries(specs, names: list[str] | None = None) -> list[QuerySpec]:
    """Every query parsed once (see :func:`parse_query`); ``names[n]``, where given, names
    the n-th."""
    return [parse_query(spec, names[n] if names and n < len(names) and names[n] else None, n)
            for n, spec in enumerate(as_list(specs))]


def check_vector(vec: np.ndarray, dim: int, what: str) -> np.ndarray:
    """``vec`` as float32 (QueryError unless it has the store's dim and finite values, as
    float32: a float64 beyond float32's range would become infinite)."""
    if vec.ndim != 1 or vec.shape[0] != dim:
        raise QueryError(f"{what} has shape {vec.shape}; this store's vectors have dim {dim}")
    if vec.dtype == np.float32:
        out = vec.copy()
    else:
        try:
            with np.errstate(over="ignore"):  # beyond float32's range: infinite, refused below
                out = vec.astype(np.float32)
        except (TypeError, ValueError):
            raise QueryError(f"{what} holds {vec.dtype} values, not numbers") from None
    # one sum in float64 (float32 values cannot overflow it) is finite iff every value is
    if not math.isfinite(np.add.reduce(out, dtype=np.float64)):
        raise QueryError(f"{what} has NaN or infinite values (as float32)")
    return out


def _vectors(q: QuerySpec, dim: int) -> list[QueryVector]:
    arr = np.asarray(q.array)
    if arr.ndim == 2:
        return [QueryVector(f"{q.name}[{i}]", q.source,
                            check_vector(r, dim, f"{q.source} row {i}"))
                for i, r in enumerate(arr)]
    return [QueryVector(q.name, q.source, check_vector(arr, dim, q.source))]


def resolve(specs: list, names: list[str] | None, ctx: QueryContext) -> list[QueryVector]:
    """Resolve every query (parsed, or parsed here) with the store's query context: ``id:``
    queries read stored vectors, images go through the query cache (the model runs on new
    content only), and vectors that were named explicitly (``.npy``, ``id:``, arrays) are
    bound to their names, as image queries are."""
    dim = ctx.store.manifest.dim
    out: list = []
    images: list[tuple[int, QuerySpec]] = []  # (slot, image)
    ids: list[tuple[int, QuerySpec]] = []  # (slot, stored image)
    named: list[int] = []  # slots of explicitly named vectors
    for q in parse_queries(specs, names):
        at = len(out)
        if q.given is not None:
            out.append(q.given)
        elif q.data is not None:
            images.append((at, q))
            out.append(None)
        elif q.image_id is not None:
            ids.append((at, q))
            out.append(None)
        else:
            out.extend(_vectors(q, dim))
        if q.named:
            named.extend(range(at, len(out)))
    if ids:
        vecs = ctx.stored_vectors([q.image_id for _, q in ids])
        for (slot, q), vec in zip(ids, vecs, strict=True):
            out[slot] = QueryVector(q.name, q.source, vec, image_id=q.image_id)
    if images:
        for (slot, _), v in zip(images, embed_cached([q for _, q in images], ctx), strict=True):
            out[slot] = v
    if named:
        bind_cached([out[i] for i in named], ctx.cache)
    return out


def vector_key(vec: np.ndarray) -> str:
    """The cache key of a query given as a vector: a sha256 of its float32 bytes (never equal
    to an image's, which hashes the file)."""
    return hashlib.sha256(b"vector:" + np.ascontiguousarray(vec, np.float32).tobytes()
                          ).hexdigest()


def bind_cached(queries: list[QueryVector], cache) -> None:
    """Bind these vectors' names in the query cache (a name that denoted other content is
    rebound, and the query says so); the same binding again writes nothing."""
    rebound = cache.put([(vector_key(q.vec), q.name, q.source, q.vec) for q in queries],
                        computed=set())
    for q in queries:
        q.rebound = q.name in rebound


def embed_cached(images: list[QuerySpec], ctx: QueryContext) -> list[QueryVector]:
    """Image queries through the cache of the context's route: only content never seen on
    that route runs the model; names are bound to what they show now."""
    shas = [q.sha256 for q in images]
    cache = ctx.cache
    known = cache.get(shas)
    todo = [i for i, s in enumerate(shas) if s not in known]
    if todo:
        vecs = ctx.embed_images([images[i].data for i in todo], [images[i].source for i in todo])
        if ctx.cache is not cache:  # the embedder took another route than planned: all on it
            return embed_cached(images, ctx)
        for i, vec in zip(todo, vecs, strict=True):
            known[shas[i]] = vec
    rebound = cache.put([(s, q.name, q.source, known[s])
                         for s, q in zip(shas, images, strict=True)],
                        computed={shas[i] for i in todo})
    return [QueryVector(q.name, q.source, known[s], route=cache.route, cached=i not in todo,
                        rebound=q.name in rebound)
            for i, (s, q) in enumerate(zip(shas, images, strict=True))]
