"""The web page (one HTML file that calls the JSON API) and the scripts it loads: the map
(``map.js``) and plotly.js, served from the installed packages, never from the network."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse, HTMLResponse

from actdb.viz.interactive import map_js, plotly_js

STATIC = Path(__file__).parent / "static"
router = APIRouter()
CACHED = {"Cache-Control": "public, max-age=86400"}


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
def page():
    return HTMLResponse((STATIC / "index.html").read_text(encoding="utf-8"))


@router.get("/static/map.js", include_in_schema=False)
def map_script():
    return FileResponse(map_js(), media_type="text/javascript")


@router.get("/static/plotly.min.js", include_in_schema=False)
def plotly_script():
    return FileResponse(plotly_js(), media_type="text/javascript", headers=CACHED)
