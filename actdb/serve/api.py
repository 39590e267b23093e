"""The JSON API: each route parses, calls one Database method in a worker thread (never on the
event loop, so a slow request holds up nobody), and renders."""

from __future__ import annotations

import json
from pathlib import Path

from fastapi import APIRouter, File, Form, HTTPException, Query, Request, UploadFile
from fastapi.responses import FileResponse, Response
from starlette.concurrency import run_in_threadpool

from actdb import render
from actdb.errors import QueryError, WeightsUnavailable
from actdb.query.resolve import Upload
from actdb.viz.plot import KINDS

router = APIRouter(prefix="/api")


async def query_of(request: Request, image: UploadFile | None, image_id: int | None,
                 vector: str | None):
    """Exactly one of an uploaded image, a stored image's id, or a JSON vector."""
    given = [x is not None for x in (image, image_id, vector)]
    if sum(given) != 1:
        raise HTTPException(400, "send exactly one of: image (file), image_id, vector")
    if image is not None:
        limit = request.app.state.cfg.max_upload_bytes
        data = await image.read(limit + 1)
        if len(data) > limit:
            raise HTTPException(413, f"upload larger than {limit} bytes")
        if not data:
            raise HTTPException(400, "empty upload")
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
def health(request: Request):
    return {"status": "ok", "model_ready": not request.app.state.startup_error,
            "images": request.app.state.db.count()}


@router.get("/info")
def info(request: Request):
    """The store's info, without the server's absolute paths."""
    d = request.app.state.db.info()
    d.pop("store", None)
    d["roots"] = len(d["roots"])
    return render.plain(d)


@router.get("/channels")
def channels(request: Request):
    """The atlas's channels table (``actdb atlas``); empty before it runs."""
    return render.records(request.app.state.db.channels())


@router.get("/classes")
def classes(request: Request):
    return render.records(request.app.state.db.classes())


@router.post("/nearest")
async def nearest(request: Request, image: UploadFile | None = File(None),
                  image_id: int | None = Form(None), vector: str | None = Form(None),
                  k: int = Query(10, ge=1, le=1000), classes: str | None = Query(None),
                  split: str | None = Query(None), where: str | None = Query(None),
                  include_self: bool = Query(False),
                  recall: float | None = Query(None, gt=0, le=1)):
    q = await query_of(request, image, image_id, vector)
    res = await run_in_threadpool(request.app.state.db.nearest, q, k=k, classes=classes,
                                  split=split, where=where, include_self=include_self,
                                  recall=recall)
    return render.plain(res.to_dict(root=False))


@router.post("/centroids")
async def centroids(request: Request, image: UploadFile | None = File(None),
                    image_id: int | None = Form(None), vector: str | None = Form(None),
                    k: int = Query(10, ge=1, le=1000), classes: str | None = Query(None)):
    q = await query_of(request, image, image_id, vector)
    df = await run_in_threadpool(request.app.state.db.centroids, q, k=k, classes=classes)
    return render.records(df)


@router.get("/images/{image_id}")
def image_file(request: Request, image_id: int):
    return FileResponse(_stored_file(request, image_id))


@router.get("/images/{image_id}/thumb")
def image_thumb(request: Request, image_id: int, size: int = Query(128, ge=16, le=512)):
    from actdb.viz.report import thumbnail

    return Response(thumbnail(_stored_file(request, image_id), size), media_type="image/jpeg")


def _stored_file(request: Request, image_id: int) -> Path:
    try:
        root, path = request.app.state.db.image_path(image_id)
    except QueryError as exc:
        raise HTTPException(404, str(exc)) from None
    root, full = root.resolve(), path.resolve()
    if not full.is_relative_to(root):  # never serve outside the dataset root
        raise HTTPException(403, "path outside the dataset root")
    if not full.is_file():
        raise HTTPException(404, f"the file of image {image_id} is gone")
    return full


@router.post("/sql")
def sql(request: Request, body: dict):
    cfg = request.app.state.cfg
    text = body.get("sql")
    if not isinstance(text, str) or not text.strip():
        raise HTTPException(400, 'send {"sql": "SELECT ..."}')
    try:
        limit = min(int(body.get("max_rows", cfg.sql_max_rows)), cfg.sql_max_rows)
    except (TypeError, ValueError):
        raise HTTPException(400, "max_rows must be an integer") from None
    if limit < 1:
        raise HTTPException(400, "max_rows must be at least 1")
    table = request.app.state.db.sql(text, max_rows=limit + 1, timeout=cfg.sql_timeout_s)
    rows = [list(r.values()) for r in table.slice(0, limit).to_pylist()]
    return {"columns": table.column_names, "truncated": table.num_rows > limit,
            "rows": render.plain(rows)}


@router.post("/plot/{kind}")
async def plot(request: Request, kind: str, image: UploadFile | None = File(None),
               image_id: int | None = Form(None), vector: str | None = Form(None),
               classes: str | None = Query(None), random_classes: int = Query(0, ge=0),
               per_class: int = Query(100, ge=1, le=2000), log: bool = Query(False)):
    from actdb.viz.figures import png_bytes

    if kind not in KINDS:
        raise HTTPException(404, f"unknown plot {kind!r}; one of {', '.join(KINDS)}")
    q = await query_of(request, image, image_id, vector)
    fig = await run_in_threadpool(request.app.state.db.plot, kind, [q], classes=classes,
                                  random_classes=random_classes, per_class=per_class, log=log)
    return Response(png_bytes(fig), media_type="image/png")
