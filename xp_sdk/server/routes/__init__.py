"""One module per resource; ``api`` gathers them under ``/v1``."""

from fastapi import APIRouter

from xp_sdk.server.routes import animations, audit, consents, keys, subjects, verifications
from xp_sdk.server.schemas import ERROR_RESPONSES

api = APIRouter(prefix="/v1", responses=ERROR_RESPONSES)
for module in (animations, verifications, audit, subjects, consents, keys):
    api.include_router(module.router)

__all__ = ["api"]
