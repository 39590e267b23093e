"""The map endpoints, and the default map made in the background at start-up.

Points travel as one binary payload (``GET /api/maps/{id}/points``: image ids as float64,
then x, y as float32, then class codes as int32; offsets in ``GET /api/maps/{id}``), about
20 bytes a point; thumbnails are fetched by reference on hover (``/api/images/{id}/thumb``).
"""

from __future__ import annotations

import base64
import threading
from typing import Any

import numpy as np
from fastapi import APIRouter, HTTPException, Query, Request
from starlette.concurrency import run_in_threadpool

from actdb import render
from actdb.errors import ActdbError
from actdb.serve.api import SpaceParam, query_of, space_of
from actdb.serve.schemas import ERRORS, BytesResponse, ImageIdPart, ImagePart, VectorPart, binary

router = APIRouter(prefix="/api/maps", responses=ERRORS)


class _Stopped(Exception):
    pass


class DefaultMap:
    """Makes the store's default map in a background thread when it is missing or stale
    (the page shows "building" meanwhile), then places one vector so that the first query's
    placement is warm. ``stop()`` makes it give up at its next stage (before storing)."""

    def __init__(self, space, method: str | None):
        self.space, self.method = space, method
        self.state = "off" if method is None else "not started"
        self.map_id: str | None = None
        self.error: str | None = None
        self._stop = threading.Event()
        self._thread = None

    def start(self) -> None:
        """Begin in a background thread (when the server starts)."""
        if self.method is not None and self._thread is None:
            self.state = "building"
            self._thread = threading.Thread(target=self._run, name="actdb-default-map",
                                            daemon=True)
            self._thread.start()

    def _stage(self, _: str) -> None:
        if self._stop.is_set():
            raise _Stopped

    def _run(self) -> None:
        try:
            m = self.space.map(self.method, progress=self._stage)
            self._stage("warm")
            if len(m.points):
                m.place(self.space.vectors(m.points.image_id.to_numpy()[:1])[1])
            self.map_id, self.state = m.map_id, "ready"
        except _Stopped:
            self.state = "stopped"
        except ActdbError as exc:
            self.error, self.state = str(exc), "failed"

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def status(self) -> dict:
        return {"state": self.state, "method": self.method, "map_id": self.map_id,
                "error": self.error}


def points_payload(m) -> tuple[bytes, dict]:
    """The binary points of a map and the JSON that describes them."""
    data, meta = m.payload()
    return data, {**render.plain(m.describe()), **meta}


#: Seconds a client waits before asking again for a map being built.
RETRY_AFTER_S = 5


def _map(request: Request, map_id: str, space: str | None = None):
    """A stored map of the space asked (an unknown space or map: 404); ``default``: the
    server's default map, made in the background (503 with Retry-After while it is)."""
    sp = space_of(request, space)
    if map_id == "default":
        if not sp.store.space.is_default:
            return sp.stored_map(None)  # another space's default map, made by actdb map
        job = request.app.state.default_map
        if job.map_id is None:
            building = job.state in ("building", "not started")
            raise HTTPException(503 if building else 404, f"the default map is {job.state}"
                                + (f": {job.error}" if job.error else ""),
                                headers={"Retry-After": str(RETRY_AFTER_S)} if building
                                else None)
        map_id = job.map_id
    return sp.stored_map(map_id)


@router.get("")
def maps(request: Request, space: str | None = Query(
        None, description="Only the maps of this space (MODEL/LAYER or a unique short form); "
        "left out: every space's, each naming its space.")) -> dict[str, Any]:
    """The stored maps (each with the ``space`` it maps) and the default map's state."""
    df = request.app.state.db.maps().drop(columns=["settings"])
    if space is not None:
        df = df[df.space == space_of(request, space).name]
    return {"default": request.app.state.default_map.status(),
            "maps": render.records(df)}


@router.get("/{map_id}")
def map_meta(request: Request, map_id: str, space: str | None = SpaceParam
             ) -> dict[str, Any]:
    """What a map's points payload holds; for the server's default map while it is made,
    ``{"default": its state}`` (what the page polls)."""
    job = request.app.state.default_map
    if map_id == "default" and job.map_id is None and \
            space_of(request, space).store.space.is_default:
        return {"default": job.status()}
    _, meta = points_payload(_map(request, map_id, space))
    return meta


@router.get("/{map_id}/points", response_class=BytesResponse,
            responses=binary("application/octet-stream", "The points (module docstring)."))
def map_points(request: Request, map_id: str, space: str | None = SpaceParam):
    data, _ = points_payload(_map(request, map_id, space))
    return BytesResponse(data)


@router.post("/{map_id}/place")
async def place(request: Request, map_id: str, image: ImagePart = None,
                image_id: ImageIdPart = None, vector: VectorPart = None,
                distances: bool = Query(False),
                space: str | None = SpaceParam) -> dict[str, Any]:
    """The query placed into the map (of the space asked); with ``distances``, base64
    float32 L2 distances from it to every point of the map (in the points' order)."""
    q = await query_of(request, image, image_id, vector)
    m = await run_in_threadpool(_map, request, map_id, space)
    sp = await run_in_threadpool(space_of, request, space)
    res = await run_in_threadpool(sp.place, q, m.map_id, distances=distances)
    out = {"map_id": m.map_id, "queries": render.records(res.coords)}
    if distances:
        out["distances"] = base64.b64encode(res.distances[0].astype(np.float32)).decode()
    return out
