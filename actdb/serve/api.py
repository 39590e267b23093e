"""The JSON API: each route parses, calls one Database or Space method in a worker thread
(never on the event loop, so a slow request holds up nobody), and renders."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fastapi import APIRouter, HTTPException, Query, Request, UploadFile
from fastapi import Path as PathParam
from fastapi.responses import FileResponse
from starlette.concurrency import run_in_threadpool

from actdb import render
from actdb.database import Upload
from actdb.errors import WeightsUnavailable
from actdb.serve.schemas import (
    ERRORS,
    MAX_ID,
    AcrossRow,
    Health,
    ImageIdPart,
    ImagePart,
    JPEGResponse,
    PNGResponse,
    SpaceInfo,
    SqlRequest,
    SqlResult,
    VectorPart,
    binary,
)

router = APIRouter(prefix="/api", responses=ERRORS)

#: The space a query route asks (a name or unique short form; left out: the default).
SpaceParam = Query(None, description="The space to ask: MODEL/LAYER or a unique short form "
                   "(GET /api/spaces lists them); left out: the store's default.")
#: ... and where every space can be asked at once.
SpaceOrAll = Query(None, description="The space to ask: MODEL/LAYER, a unique short form "
                   "(GET /api/spaces lists them), or all (a row per space, as POST "
                   "/api/across); left out: the store's default.")
#: A stored image's id in a path (images.image_id is a BIGINT).
ImageIdPath = PathParam(ge=0, le=MAX_ID, description="The id of a stored image.")


def space_of(request: Request, space: str | None):
    """The space asked of the served store (its default when None; 404 for a space it
    lacks)."""
    return request.app.state.db.space(space)


async def query_of(request: Request, image: UploadFile | None, image_id: int | None,
                 vector: str | None):
    """Exactly one of an uploaded image, a stored image's id, or a JSON vector (an empty part
    is one left out)."""
    data = b""
    if image is not None:
        limit = request.app.state.cfg.max_upload_bytes
        data = await image.read(limit + 1)
        if len(data) > limit:
            raise HTTPException(413, f"upload larger than {limit} bytes")
    given = [bool(data), image_id is not None, bool(vector)]
    if sum(given) != 1:
        raise HTTPException(400, "send exactly one of: image (a file), image_id, vector")
    if data:
        if request.app.state.startup_error:
            raise WeightsUnavailable(request.app.state.startup_error[0])
        return Upload(Path(image.filename or "upload").stem or "upload", data,
                      image.filename or "upload")
    if image_id is not None:
        return f"id:{image_id}"
    try:
        import numpy as np

        return np.asarray(json.loads(vector), dtype=np.float32)
    except (ValueError, TypeError):
        raise HTTPException(400, "vector must be a JSON list of numbers") from None


@router.get("/health")
def health(request: Request) -> Health:
    return Health(status="ok", model_ready=not request.app.state.startup_error,
                  images=request.app.state.db.count())


@router.get("/info")
def info(request: Request, space: str | None = SpaceParam) -> dict[str, Any]:
    """The store's info in the space asked, without the server's absolute paths."""
    d = space_of(request, space).info()
    d.pop("store", None)
    d["roots"] = len(d["roots"])
    return render.plain(d)


@router.get("/channels")
def channels(request: Request) -> list[dict[str, Any]]:
    """The atlas's channels table (``actdb atlas``); empty before it runs."""
    return render.records(request.app.state.db.channels())


@router.get("/classes")
def classes(request: Request) -> list[dict[str, Any]]:
    return render.records(request.app.state.db.classes())


@router.get("/spaces")
def spaces(request: Request) -> list[SpaceInfo]:
    """The store's spaces, the default first."""
    return render.records(request.app.state.db.spaces())


@router.post("/across")
async def across(request: Request, image: ImagePart = None, image_id: ImageIdPart = None,
                 k: int = Query(50, ge=1, le=1000), classes: str | None = Query(None),
                 split: str | None = Query(None), where: str | None = Query(None),
                 include_self: bool = Query(False),
                 recall: float | None = Query(None, gt=0, le=1),
                 space: str | None = Query(None, description="Only all (or left out): this "
                                           "route asks every space.")) -> list[AcrossRow]:
    """Where the query lands in every space: a row per space, each space answering as
    ``/api/nearest`` does with the same options."""
    if space not in (None, "all"):
        raise HTTPException(400, f"across asks every space; ask the space {space} alone with "
                            "POST /api/nearest?space=...")
    q = await query_of(request, image, image_id, None)
    return await _across(request, q, k=k, classes=classes, split=split, where=where,
                         include_self=include_self, recall=recall)


async def _across(request: Request, q, **options) -> list[dict[str, Any]]:
    """The rows of every space (``Database.across_spaces``)."""
    df = await run_in_threadpool(request.app.state.db.across_spaces, q, **options)
    return render.records(df)


@router.post("/nearest")
async def nearest(request: Request, image: ImagePart = None,
                  image_id: ImageIdPart = None, vector: VectorPart = None,
                  k: int = Query(10, ge=1, le=1000), classes: str | None = Query(None),
                  split: str | None = Query(None), where: str | None = Query(None),
                  include_self: bool = Query(False),
                  recall: float | None = Query(None, gt=0, le=1),
                  space: str | None = SpaceOrAll) -> dict[str, Any]:
    """The k nearest stored images of the query in the space asked; ``space=all``:
    ``{"k": k, "across": [rows as POST /api/across answers]}``."""
    q = await query_of(request, image, image_id, vector)
    if space == "all":
        return {"k": k, "across": await _across(request, q, k=k, classes=classes, split=split,
                                                where=where, include_self=include_self,
                                                recall=recall)}
    sp = await run_in_threadpool(space_of, request, space)
    res = await run_in_threadpool(sp.nearest, q, k=k, classes=classes,
                                  split=split, where=where, include_self=include_self,
                                  recall=recall)
    return render.plain(res.to_dict(root=False))


@router.post("/centroids")
async def centroids(request: Request, image: ImagePart = None,
                    image_id: ImageIdPart = None, vector: VectorPart = None,
                    k: int = Query(10, ge=1, le=1000), classes: str | None = Query(None),
                    space: str | None = SpaceOrAll) -> list[dict[str, Any]]:
    """Classes ranked by the query's distance to their centroid; ``space=all``: in every
    space, each row naming its ``space``."""
    q = await query_of(request, image, image_id, vector)
    if space == "all":
        df = await run_in_threadpool(request.app.state.db.centroids_across_spaces, q, k=k,
                                     classes=classes)
        return render.records(df)
    sp = await run_in_threadpool(space_of, request, space)
    df = await run_in_threadpool(sp.centroids, q, k=k, classes=classes)
    return render.records(df)


@router.get("/images/{image_id}", response_class=FileResponse,
            responses=binary("image/*", "The image file as stored."))
def image_file(request: Request, image_id: int = ImageIdPath):
    return FileResponse(request.app.state.db.image_file(image_id))


@router.get("/images/{image_id}/thumb", response_class=JPEGResponse,
            responses=binary("image/jpeg", "A JPEG thumbnail, at most size px a side."))
def image_thumb(request: Request, image_id: int = ImageIdPath,
                size: int = Query(128, ge=16, le=512)):
    return JPEGResponse(request.app.state.db.thumbnail(image_id, size))


@router.post("/sql")
def sql(request: Request, body: SqlRequest) -> SqlResult:
    cfg = request.app.state.cfg
    if not body.sql.strip():
        raise HTTPException(400, 'send {"sql": "SELECT ..."}')
    limit = min(body.max_rows or cfg.sql_max_rows, cfg.sql_max_rows)
    table = request.app.state.db.sql(body.sql, max_rows=limit + 1, timeout=cfg.sql_timeout_s)
    rows = [list(r.values()) for r in table.slice(0, limit).to_pylist()]
    return SqlResult(columns=table.column_names, truncated=table.num_rows > limit,
                     rows=render.plain(rows))


@router.post("/plot/{kind}", response_class=PNGResponse,
             responses=binary("image/png", "The figure as a PNG."))
async def plot(request: Request, kind: str, image: ImagePart = None,
               image_id: ImageIdPart = None, vector: VectorPart = None,
               classes: str | None = Query(None),
               random_classes: int = Query(0, ge=0, le=10_000),
               per_class: int = Query(100, ge=1, le=2000), log: bool = Query(False),
               space: str | None = SpaceParam):
    q = await query_of(request, image, image_id, vector)
    sp = await run_in_threadpool(space_of, request, space)
    png = await run_in_threadpool(sp.plot_png, kind, [q], classes=classes,
                                  random_classes=random_classes, per_class=per_class, log=log)
    return PNGResponse(png)
