"""The UI's own scripts and styles, and plotly's JavaScript from the installed plotly package."""

from __future__ import annotations

import importlib.util
from functools import cache
from pathlib import Path

from fastapi import APIRouter
from starlette.responses import Response

from tenantgate.errors import NotFound

router = APIRouter(include_in_schema=False)
STATIC = Path(__file__).parent / "static"
TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}


@cache
def plotly_js() -> bytes:
    spec = importlib.util.find_spec("plotly")  # located, not imported: importing plotly takes a second
    if spec is None or not spec.submodule_search_locations:
        raise NotFound("plotly is not installed; charts are unavailable.")
    return (Path(next(iter(spec.submodule_search_locations))) / "package_data" / "plotly.min.js").read_bytes()


FILES = {path.name: path.read_bytes() for path in STATIC.iterdir() if path.suffix in TYPES}


@router.get("/ui/assets/plotly.min.js")
async def plotly() -> Response:
    return Response(plotly_js(), media_type=TYPES[".js"], headers={"Cache-Control": "public, max-age=86400"})


@router.get("/ui/assets/{name}")
async def asset(name: str) -> Response:
    body = FILES.get(name)
    if body is None:
        raise NotFound(f"No UI asset named '{name[:80]}'.")
    return Response(body, media_type=TYPES[Path(name).suffix], headers={"Cache-Control": "no-cache"})
