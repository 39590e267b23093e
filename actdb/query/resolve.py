"""Turn query specs into vectors, exactly as the store's images were embedded.

A query is an image file, ``id:<image_id>`` of a stored image, a ``.npy`` vector (or a stack of
them) of the store's dim, a numpy array, or raw image bytes (:class:`Upload`). Image queries are
embedded together in one batch by the store's own model and cached by content
(:mod:`actdb.query.cache`).

>>> parse_id("id:17")
17
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
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


def as_list(queries) -> list:
    """One query or several -> a list."""
    if isinstance(queries, str | Path | np.ndarray | Upload | QueryVector) or not hasattr(
            queries, "__iter__"):
        return [queries]
    return list(queries)


def parse_id(spec: str) -> int:
    try:
        return int(spec[3:])
    except ValueError:
        raise QueryError(f"bad query {spec!r}: use id:<integer image_id>") from None


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


def _from_array(arr, name: str, source: str, dim: int) -> list[QueryVector]:
    arr = np.asarray(arr)
    if arr.ndim == 2:
        return [QueryVector(f"{name}[{i}]", source, check_vector(r, dim, f"{source} row {i}"))
                for i, r in enumerate(arr)]
    return [QueryVector(name, source, check_vector(arr, dim, source))]


def _from_npy(path: Path, name: str, dim: int) -> list[QueryVector]:
    try:
        arr = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise QueryError(f"cannot read {path}: {exc}") from None
    return _from_array(arr, name, str(path), dim)


def resolve(specs: list, names: list[str] | None, ctx: QueryContext) -> list[QueryVector]:
    """Resolve every spec with the store's query context: ``id:`` queries read stored
    vectors, images go through the query cache (the model runs on new content only), and
    vectors that were named explicitly (``.npy``, ``id:``, arrays) are bound to their names,
    as image queries are."""
    dim = ctx.store.manifest.dim
    out: list = []
    images: list[tuple[int, str, str, bytes]] = []  # (slot, name, source, bytes)
    ids: list[tuple[int, int, str]] = []  # (slot, image_id, name)
    named: list[int] = []  # slots of explicitly named vectors
    for n, spec in enumerate(specs):
        name = names[n] if names and n < len(names) and names[n] else None
        at = len(out)
        if isinstance(spec, QueryVector):
            out.append(spec)
        elif isinstance(spec, Upload):
            images.append((len(out), name or spec.name, spec.source or spec.name, spec.data))
            out.append(None)
        elif isinstance(spec, np.ndarray):
            out.extend(_from_array(spec, name or f"vector{n}", "array", dim))
        elif str(spec).startswith("id:"):
            ids.append((len(out), parse_id(str(spec)), name or str(spec)))
            out.append(None)
        elif str(spec).lower().endswith(".npy"):
            out.extend(_from_npy(Path(spec), name or Path(spec).stem, dim))
        else:
            p = Path(spec)
            if not p.is_file():
                raise QueryError(f"query {spec} is not a file, an id:<image_id> or a .npy")
            images.append((len(out), name or p.stem, str(p), p.read_bytes()))
            out.append(None)
            continue
        if name and not isinstance(spec, QueryVector | Upload):
            named.extend(range(at, len(out)))
    if ids:
        vecs = ctx.stored_vectors([i for _, i, _ in ids])
        for (slot, image_id, name), vec in zip(ids, vecs, strict=True):
            out[slot] = QueryVector(name, f"id:{image_id}", vec, image_id=image_id)
    if images:
        for (slot, *_), q in zip(images, embed_cached([i[1:] for i in images], ctx),
                                 strict=True):
            out[slot] = q
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


def embed_cached(images: list[tuple[str, str, bytes]], ctx: QueryContext
                 ) -> list[QueryVector]:
    """Image queries (name, source, bytes) through the cache of the context's route: only
    content never seen on that route runs the model; names are bound to what they show now.
    """
    shas = [hashlib.sha256(data).hexdigest() for _, _, data in images]
    cache = ctx.cache
    known = cache.get(shas)
    todo = [i for i, s in enumerate(shas) if s not in known]
    if todo:
        vecs = ctx.embed_images([images[i][2] for i in todo], [images[i][1] for i in todo])
        if ctx.cache is not cache:  # the embedder took another route than planned: all on it
            return embed_cached(images, ctx)
        for i, vec in zip(todo, vecs, strict=True):
            known[shas[i]] = vec
    rebound = cache.put([(s, name, source, known[s])
                         for s, (name, source, _) in zip(shas, images, strict=True)],
                        computed={shas[i] for i in todo})
    return [QueryVector(name, source, known[s], route=cache.route, cached=i not in todo,
                        rebound=name in rebound)
            for i, (s, (name, source, _)) in enumerate(zip(shas, images, strict=True))]
