"""The web page (one HTML file that calls the JSON API), the scripts it loads (the map's
``map.js`` and plotly.js, served from the installed packages, never from the network), and
the atlas's static site at ``/atlas`` (:class:`AtlasFiles`, mounted by the app)."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, HTTPException
from fastapi.responses import FileResponse, HTMLResponse
from starlette.staticfiles import StaticFiles

from actdb.viz.interactive import map_js, plotly_js

STATIC = Path(__file__).parent / "static"
router = APIRouter()
CACHED = {"Cache-Control": "public, max-age=86400"}


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
def page():
    return HTMLResponse((STATIC / "index.html").read_text(encoding="utf-8"))


def ask_for_token() -> HTMLResponse:
    """401 for a browser: a page that asks for the token and keeps it as a cookie."""
    return HTMLResponse((STATIC / "token.html").read_text(encoding="utf-8"), status_code=401)


@router.get("/static/map.js", include_in_schema=False)
def map_script():
    return FileResponse(map_js(), media_type="text/javascript")


@router.get("/static/plotly.min.js", include_in_schema=False)
def plotly_script():
    return FileResponse(plotly_js(), media_type="text/javascript", headers=CACHED)


class AtlasFiles(StaticFiles):
    """The atlas's static site as ``actdb atlas`` wrote it into the store (Starlette serves
    it: index pages, media types, paths kept inside the folder); made later is fine."""

    def __init__(self, site: Path):
        super().__init__(directory=site, html=True, check_dir=False)

    async def check_config(self) -> None:
        if not Path(self.directory).is_dir():
            raise HTTPException(404, "this store has no atlas yet; make it with actdb atlas")
        await super().check_config()
