"""The verification page: ``/`` (one HTML file; its script and style under ``/static``, nothing from a CDN)."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

STATIC = Path(__file__).resolve().parent.parent / "static"

router = APIRouter(tags=["page"], include_in_schema=False)


@router.get("/")
def verification_page() -> FileResponse:
    # The page holds an API key typed by the user: it must not be framed by another site or cached.
    return FileResponse(
        STATIC / "index.html",
        media_type="text/html",
        headers={
            "Cache-Control": "no-store",
            "X-Frame-Options": "DENY",
            "Content-Security-Policy": (
                "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
                "connect-src 'self'; frame-ancestors 'none'"
            ),
        },
    )
