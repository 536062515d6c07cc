"""One module per resource; ``api`` gathers them under ``/v1``."""

from fastapi import APIRouter

from xp_sdk.server.routes import animations, audit, consents, keys, subjects, verifications

api = APIRouter(prefix="/v1")
for module in (animations, verifications, audit, subjects, consents, keys):
    api.include_router(module.router)

__all__ = ["api"]
