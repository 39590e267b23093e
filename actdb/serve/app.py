"""``actdb serve``: the query library over HTTP, with the model kept warm, and a web page.

Every endpoint calls the same library functions as the CLI (``nearest --json`` and
``POST /api/nearest`` return the same content). The store's model is built once at start-up;
the FAISS index and metadata are shared read-only; catalog connections are per request.

>>> app = create_app(ServeConfig(store="actdb-store"))        # doctest: +SKIP
"""


import io
import json
import os
from dataclasses import dataclass
from pathlib import Path

from actdb.errors import (
    ActdbError,
    ImageError,
    QueryError,
    SqlRefused,
    StoreError,
    WeightsUnavailable,
)

STATIC = Path(__file__).parent / "static"
PLOTS = ("tsne", "umap", "distances", "profile")  # the API's subset of actdb.viz.plot.KINDS


@dataclass(frozen=True)
class ServeConfig:
    """How the service runs."""

    store: str | Path | None = None
    max_upload_bytes: int = 8 * 1024 * 1024
    token: str | None = None
    sql_max_rows: int = 1000
    sql_timeout_s: float = 10.0
    warm_model: bool = True


def _status(exc: ActdbError) -> int:
    if isinstance(exc, SqlRefused):
        return 403
    if isinstance(exc, WeightsUnavailable):
        return 503
    if isinstance(exc, ImageError | QueryError):
        return 400
    if isinstance(exc, StoreError):
        return 500
    return 400


def create_app(cfg: ServeConfig):
    """Build the FastAPI application for one store."""
    from fastapi import FastAPI, File, Form, HTTPException, Query, Request, UploadFile
    from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response

    from actdb.query.db import Database
    from actdb.query.vectors import Upload

    db = Database.open(cfg.store)
    startup_error: list[str] = []
    if cfg.warm_model:
        from actdb.serve.batching import BatchingEmbedder

        try:  # build the model once, now; concurrent uploads share its forward passes
            db.resolver.use_embedder(BatchingEmbedder(db.resolver.embedder))
        except ActdbError as exc:
            startup_error.append(str(exc))
    db.resolver.defer_cache_writes()
    db.metadata()
    app = FastAPI(title="actdb", version=_version(),
                  description="Activation database queries over one store.")
    app.state.db = db

    @app.exception_handler(ActdbError)
    async def actdb_error(request, exc: ActdbError):
        return JSONResponse({"error": str(exc), "type": type(exc).__name__},
                            status_code=_status(exc))

    @app.middleware("http")
    async def guard(request: Request, call_next):
        if request.url.path.startswith("/api/"):
            if cfg.token:
                auth = request.headers.get("authorization", "")
                given = auth[7:] if auth.lower().startswith("bearer ") else \
                    request.headers.get("x-actdb-token", "")
                if given != cfg.token:
                    return JSONResponse({"error": "missing or wrong token"}, status_code=401)
            length = request.headers.get("content-length")
            if length and length.isdigit() and int(length) > cfg.max_upload_bytes + 65536:
                return JSONResponse({"error": f"upload larger than {cfg.max_upload_bytes} "
                                     "bytes"}, status_code=413)
        return await call_next(request)

    async def read_upload(image: UploadFile) -> Upload:
        data = await image.read(cfg.max_upload_bytes + 1)
        if len(data) > cfg.max_upload_bytes:
            raise HTTPException(413, f"upload larger than {cfg.max_upload_bytes} bytes")
        if not data:
            raise HTTPException(400, "empty upload")
        if startup_error:
            raise WeightsUnavailable(startup_error[0])
        return Upload(Path(image.filename or "upload").stem or "upload", data)

    async def query_of(image: UploadFile | None, image_id: int | None, vector: str | None):
        given = [x is not None for x in (image, image_id, vector)]
        if sum(given) != 1:
            raise HTTPException(400, "send exactly one of: image (file), image_id, vector")
        if image is not None:
            return await read_upload(image)
        if image_id is not None:
            return f"id:{image_id}"
        try:
            import numpy as np

            return np.asarray(json.loads(vector), dtype=np.float32)
        except (ValueError, TypeError):
            raise HTTPException(400, "vector must be a JSON list of numbers") from None

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page():
        return HTMLResponse((STATIC / "index.html").read_text(encoding="utf-8"))

    @app.get("/api/health")
    def health():
        return {"status": "ok", "model_ready": not startup_error,
                "images": int(len(db.metadata()[0]["image_id"]))}

    @app.get("/api/info")
    def info():
        return db.store.info()

    @app.get("/api/classes")
    def classes():
        with db.store.connect() as con:
            rows = con.execute("SELECT * FROM classes ORDER BY class_name").df()
        return json.loads(rows.to_json(orient="records"))

    @app.post("/api/nearest")
    async def nearest(image: UploadFile | None = File(None), image_id: int | None = Form(None),
                      vector: str | None = Form(None), k: int = Query(10, ge=1, le=1000),
                      classes: str | None = Query(None), split: str | None = Query(None)):
        q = await query_of(image, image_id, vector)
        return db.nearest(q, k=k, classes=classes, split=split).to_dict()

    @app.post("/api/centroids")
    async def centroids(image: UploadFile | None = File(None),
                        image_id: int | None = Form(None), vector: str | None = Form(None),
                        k: int = Query(10, ge=1, le=1000), classes: str | None = Query(None)):
        q = await query_of(image, image_id, vector)
        return json.loads(db.centroids(q, k=k, classes=classes).to_json(orient="records"))

    def stored_file(image_id: int) -> Path:
        meta = db.metadata()[0]
        import numpy as np

        pos = int(np.searchsorted(meta["image_id"], image_id))
        if pos >= len(meta["image_id"]) or meta["image_id"][pos] != image_id:
            raise HTTPException(404, f"no image {image_id}")
        root = Path(meta["root"][pos]).resolve()
        path = (root / meta["path"][pos]).resolve()
        if not path.is_relative_to(root):  # never serve outside the dataset root
            raise HTTPException(403, "path outside the dataset root")
        if not path.is_file():
            raise HTTPException(404, f"image file {meta['path'][pos]} is gone")
        return path

    @app.get("/api/images/{image_id}")
    def image_file(image_id: int):
        return FileResponse(stored_file(image_id))

    @app.get("/api/images/{image_id}/thumb")
    def image_thumb(image_id: int, size: int = Query(128, ge=16, le=512)):
        from PIL import Image

        im = Image.open(stored_file(image_id))
        im.draft("RGB", (size * 2, size * 2))
        im = im.convert("RGB")
        im.thumbnail((size, size))
        buf = io.BytesIO()
        im.save(buf, "JPEG", quality=85)
        return Response(buf.getvalue(), media_type="image/jpeg")

    @app.post("/api/sql")
    def sql(body: dict):
        from actdb.serve.sandbox import run_sandboxed

        text = body.get("sql") if isinstance(body, dict) else None
        if not isinstance(text, str) or not text.strip():
            raise HTTPException(400, 'send {"sql": "SELECT ..."}')
        limit = min(int(body.get("max_rows", cfg.sql_max_rows)), cfg.sql_max_rows)
        table, truncated = run_sandboxed(db.store.path, text, limit, cfg.sql_timeout_s)
        df = table.to_pandas()
        return {"columns": list(df.columns), "truncated": truncated,
                "rows": json.loads(df.to_json(orient="values", default_handler=str))}

    @app.post("/api/plot/{kind}")
    async def plot(kind: str, image: UploadFile | None = File(None),
                   image_id: int | None = Form(None), vector: str | None = Form(None),
                   classes: str | None = Query(None), random_classes: int = Query(0, ge=0),
                   per_class: int = Query(100, ge=1, le=2000), log: bool = Query(False)):
        if kind not in PLOTS:
            raise HTTPException(404, f"unknown plot {kind!r}; one of {', '.join(PLOTS)}")
        q = await query_of(image, image_id, vector)
        return Response(render_plot(db, kind, q, classes, random_classes, per_class, log),
                        media_type="image/png")

    return app


def render_plot(db, kind: str, query, classes, random_classes: int, per_class: int,
                log: bool) -> bytes:
    """PNG bytes of one plot for one query (the same library call as ``actdb plot``)."""
    import tempfile

    from actdb.query.filters import parse_classes
    from actdb.viz.plot import PlotConfig, plot

    cfg = PlotConfig(parse_classes(classes), random_classes, per_class, log=log)
    with tempfile.TemporaryDirectory() as tmp:
        return plot(db, kind, db.resolve(query), Path(tmp) / "plot.png", cfg).output.read_bytes()


def _version() -> str:
    from actdb import __version__

    return __version__


def serve(cfg: ServeConfig, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Run the app with uvicorn until interrupted."""
    import uvicorn

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    uvicorn.run(create_app(cfg), host=host, port=port, log_level="info")
