"""The web page (one HTML file that calls the JSON API), the scripts it loads (the map's
``map.js`` and plotly.js, served from the installed packages, never from the network), and
the atlas's static site at ``/atlas``."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse

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


@router.get("/atlas", include_in_schema=False)
def atlas_root():
    return RedirectResponse("/atlas/")  # the site's links are relative to its folder


@router.get("/atlas/{path:path}", include_in_schema=False)
def atlas_page(request: Request, path: str):
    """The atlas's static site as ``actdb atlas`` wrote it into the store."""
    from actdb.store.catalog.files import atlas_site

    site = atlas_site(request.app.state.db.path).resolve()
    target = (site / path).resolve()
    if not target.is_relative_to(site):
        raise HTTPException(403, "path outside the atlas")
    if target.is_dir():
        target = target / "index.html"
    if not target.is_file():
        raise HTTPException(404, "no such atlas page" if site.is_dir() else
                            "this store has no atlas yet; make it with actdb atlas")
    return FileResponse(target)
