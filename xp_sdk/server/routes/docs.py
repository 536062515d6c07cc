"""``/docs`` (Swagger UI) and ``/redoc`` (ReDoc) from files installed with the package, so both work on a machine
with no internet: the ``fastapi-offline`` package ships swagger-ui-dist 5 (Apache-2.0) and ReDoc 2 (MIT) as built
files; ``xp serve`` serves them under ``ASSETS`` itself and the pages name no other host."""

from __future__ import annotations

from pathlib import Path

import fastapi_offline
from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

ASSETS = "/docs-assets"
"""Where the Swagger UI and ReDoc files are served (apart from ``/static``, the verification page's)."""
ASSET_FILES = Path(fastapi_offline.__file__).resolve().parent / "static"

OWN_FILES_ONLY = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; worker-src 'self' blob:; connect-src 'self'; frame-ancestors 'none'"
)
"""The pages' Content-Security-Policy: their own inline start-up script, and nothing from another host (ReDoc's
bundle would otherwise fetch its maker's logo from a CDN)."""

router = APIRouter(include_in_schema=False)


def assets() -> StaticFiles:
    return StaticFiles(directory=ASSET_FILES)


@router.get("/docs")
def swagger_ui(request: Request) -> HTMLResponse:
    root = request.scope.get("root_path", "")
    page = get_swagger_ui_html(
        openapi_url=f"{root}{request.app.openapi_url}",
        title=f"{request.app.title} - Swagger UI",
        swagger_js_url=f"{root}{ASSETS}/swagger-ui-bundle.js",
        swagger_css_url=f"{root}{ASSETS}/swagger-ui.css",
        swagger_favicon_url=f"{root}{ASSETS}/favicon.png",
        swagger_ui_parameters=request.app.swagger_ui_parameters,
    )
    page.headers["Content-Security-Policy"] = OWN_FILES_ONLY
    return page


@router.get("/redoc")
def redoc(request: Request) -> HTMLResponse:
    root = request.scope.get("root_path", "")
    page = get_redoc_html(
        openapi_url=f"{root}{request.app.openapi_url}",
        title=f"{request.app.title} - ReDoc",
        redoc_js_url=f"{root}{ASSETS}/redoc.standalone.js",
        redoc_favicon_url=f"{root}{ASSETS}/favicon.png",
        with_google_fonts=False,
    )
    page.headers["Content-Security-Policy"] = OWN_FILES_ONLY
    return page
