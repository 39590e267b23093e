"""``actdb serve``: the library over HTTP, with the model kept warm, and a web page.

Every endpoint calls one method of the store's :class:`~actdb.database.Database` or of one
of its :class:`~actdb.space.Space` objects (so ``nearest --json`` and ``POST /api/nearest``
return the same content, less the server's absolute paths) and renders it. Errors have one
shape everywhere: ``{"error": "one line", "type": "ErrorClass"}``. The app owns one
Database: built at start-up (model warm, uploads batched, query-cache writes deferred, user
SQL on a bounded share of the cores) and closed at shutdown.

>>> app = create_app(ServeConfig(store=store, warm_model=False))
>>> "/api/nearest" in app.openapi()["paths"]
True
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

from actdb.errors import (
    ActdbError,
    ImageError,
    NotFound,
    QueryError,
    Refused,
    SqlTimeout,
    StatsMissing,
    StoreError,
    WeightsUnavailable,
)


@dataclass(frozen=True, kw_only=True)
class ServeConfig:
    """How the service runs."""

    store: str | Path | None = None
    max_upload_bytes: int = 8 * 1024 * 1024
    token: str | None = None
    sql_max_rows: int = 1000
    sql_timeout_s: float = 10.0
    sql_threads: int = max(1, (os.cpu_count() or 2) // 2)
    warm_model: bool = True
    #: The map made in the background at start-up when missing or stale (None: none).
    map_method: str | None = "auto"
    #: What embeds uploaded images (actdb.runtime; None: the store's default route, as for
    #: every other caller)
    runtime: str | None = None


STATUS = ((SqlTimeout, 504), (Refused, 403), (NotFound, 404), (WeightsUnavailable, 503),
          (StatsMissing, 409), (ImageError, 400), (QueryError, 400), (StoreError, 500))


def status_of(exc: ActdbError) -> int:
    return next((code for cls, code in STATUS if isinstance(exc, cls)), 400)


def error_body(message: str, kind: str) -> dict:
    return {"error": " ".join(str(message).split()), "type": kind}


def create_app(cfg: ServeConfig):
    """Build the FastAPI application for one store."""
    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
    from starlette.exceptions import HTTPException

    import actdb
    from actdb.serve import api, maps, page
    from actdb.serve.schemas import declare_error_body

    options = {"sql_threads": cfg.sql_threads, "linger": 5.0, "defer_cache_writes": True,
               "batch_uploads": True, "cache_metadata": True}
    db = actdb.open(cfg.store, **options, runtime=cfg.runtime)
    default = db.space()  # a missing store is an error now, not at the first request
    startup_error: list[str] = []
    if cfg.warm_model:
        try:  # build the model once, now
            default.warm()
        except ActdbError as exc:
            startup_error.append(str(exc))

    default_map = maps.DefaultMap(default, cfg.map_method)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        default_map.start()
        yield
        default_map.stop()
        db.close()

    app = FastAPI(title="actdb", version=actdb.__version__, lifespan=lifespan,
                  description="Activation database queries over one store.",
                  generate_unique_id_function=lambda route: route.name)
    app.state.db, app.state.cfg, app.state.startup_error = db, cfg, startup_error
    app.state.default_map = default_map

    @app.exception_handler(ActdbError)
    async def actdb_error(request, exc: ActdbError):
        return JSONResponse(error_body(str(exc), type(exc).__name__),
                            status_code=status_of(exc))

    @app.exception_handler(HTTPException)
    async def http_error(request, exc: HTTPException):
        return JSONResponse(error_body(exc.detail, "HTTPException"),
                            status_code=exc.status_code, headers=exc.headers)  # 405: Allow

    @app.exception_handler(RequestValidationError)
    async def validation_error(request, exc: RequestValidationError):
        parts = [f"{'.'.join(str(x) for x in e.get('loc', ())[1:]) or 'request'}: "
                 f"{e.get('msg', 'invalid')}" for e in exc.errors()]
        return JSONResponse(error_body("; ".join(parts), "ValidationError"), status_code=422)

    @app.exception_handler(Exception)
    async def unexpected(request, exc: Exception):  # a bug: still the declared error shape
        return JSONResponse(error_body(f"internal error ({type(exc).__name__}); please report "
                                       "it with the request that caused it", "InternalError"),
                            status_code=500)

    @app.middleware("http")
    async def guard(request: Request, call_next):
        if request.url.path.startswith(("/api/", "/atlas")):
            if cfg.token and _token(request) != cfg.token:
                if request.url.path.startswith("/atlas") and \
                        "text/html" in request.headers.get("accept", ""):
                    return page.ask_for_token()  # a browser following a link
                return JSONResponse(error_body("missing or wrong token", "Unauthorized"),
                                    status_code=401)
            length = request.headers.get("content-length")
            if length and length.isdigit() and int(length) > cfg.max_upload_bytes + 65536:
                return JSONResponse(error_body(f"upload larger than {cfg.max_upload_bytes} "
                                               "bytes", "TooLarge"), status_code=413)
        return await call_next(request)

    app.include_router(page.router)
    app.include_router(api.router)
    app.include_router(maps.router)
    app.mount("/atlas", page.AtlasFiles(db.atlas_site), name="atlas")
    declare_error_body(app)
    return app


def _token(request) -> str:
    """The token a request carries: a header, or for reading the atlas's pages (which a
    browser fetches by following links, without headers) the page's cookie."""
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:]
    if "x-actdb-token" in request.headers:
        return request.headers["x-actdb-token"]
    if request.method == "GET" and request.url.path.startswith("/atlas"):
        return request.cookies.get("actdb-token", "")
    return ""


def serve(cfg: ServeConfig, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Run the app with uvicorn until interrupted."""
    import uvicorn

    uvicorn.run(create_app(cfg), host=host, port=port, log_level="info")
