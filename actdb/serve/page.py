"""The web page (one self-contained HTML file; it calls the JSON API)."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

STATIC = Path(__file__).parent / "static"
router = APIRouter()


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
def page():
    return HTMLResponse((STATIC / "index.html").read_text(encoding="utf-8"))
