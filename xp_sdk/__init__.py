"""xp-sdk: provenance-gated portrait animation.

``Client`` is the product: every ``animate`` is authenticated (API key), gated (consent, face match, Cedar
policy), audited (tamper-evident log), watermarked and C2PA-signed; ``verify`` reads all of that back.
``AsyncClient`` is the same, awaited. Every error class of ``xp_sdk.errors`` is exported here. The engine
(``xp_sdk.engine``) makes the pixels and knows nothing of the rest.

The names below are imported when first used (PEP 562), so ``import xp_sdk`` stays cheap and a client of a remote
server never loads the engine, the database or the provenance libraries.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from xp_sdk.version import __version__

if TYPE_CHECKING:
    from xp_sdk.async_client import AsyncClient
    from xp_sdk.client import Client
    from xp_sdk.deployment import Initialized, init_deployment
    from xp_sdk.errors import (
        AccessDeniedError,
        AlreadyInitializedError,
        APIConnectionError,
        APIResponseError,
        APITimeoutError,
        AuditIntegrityError,
        AuditStoreError,
        AuthenticationError,
        ConflictError,
        ConsentRequiredError,
        ConsentVideoRejectedError,
        DeviceUnavailableError,
        DiffusionWeightsMissingError,
        EngineError,
        FaceError,
        FaceMismatchError,
        FaceTooSmallError,
        ForgedMarkError,
        HomeError,
        ImageTooLargeError,
        ImageTooSmallError,
        InvalidInputError,
        ModelError,
        ModelHashMismatchError,
        ModelNotFoundError,
        MultipleFacesError,
        NoFaceError,
        NotFoundError,
        NotInitializedError,
        PermissionDeniedError,
        PolicyDeniedError,
        ProvenanceFailedError,
        RateLimitedError,
        TemplateError,
        UnreadableImageError,
        UnreadableVideoError,
        UnsupportedFormatError,
        UntrustedMediaError,
        VideoTooLongError,
        XPError,
    )
    from xp_sdk.pages import AsyncEventPages, EventPages
    from xp_sdk.results import AnimationResult, GenerationAudit
    from xp_sdk.verification import GenerationRecord, PublicVerification, Verification

from xp_sdk import errors as _errors  # stdlib only: light enough for every import

_EXPORTS: dict[str, str] = {
    "AsyncClient": "xp_sdk.async_client",
    "Client": "xp_sdk.client",
    "Initialized": "xp_sdk.deployment",
    "init_deployment": "xp_sdk.deployment",
    **{name: "xp_sdk.errors" for name in _errors.__all__},
    "AsyncEventPages": "xp_sdk.pages",
    "EventPages": "xp_sdk.pages",
    "AnimationResult": "xp_sdk.results",
    "GenerationAudit": "xp_sdk.results",
    "GenerationRecord": "xp_sdk.verification",
    "PublicVerification": "xp_sdk.verification",
    "Verification": "xp_sdk.verification",
}
"""Each public name and the module it comes from."""


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))


__all__ = [
    "APIConnectionError",
    "APIResponseError",
    "APITimeoutError",
    "AccessDeniedError",
    "AlreadyInitializedError",
    "AnimationResult",
    "AsyncClient",
    "AsyncEventPages",
    "AuditIntegrityError",
    "AuditStoreError",
    "AuthenticationError",
    "Client",
    "ConflictError",
    "ConsentRequiredError",
    "ConsentVideoRejectedError",
    "DeviceUnavailableError",
    "DiffusionWeightsMissingError",
    "EngineError",
    "EventPages",
    "FaceError",
    "FaceMismatchError",
    "FaceTooSmallError",
    "ForgedMarkError",
    "GenerationAudit",
    "GenerationRecord",
    "HomeError",
    "ImageTooLargeError",
    "ImageTooSmallError",
    "Initialized",
    "InvalidInputError",
    "ModelError",
    "ModelHashMismatchError",
    "ModelNotFoundError",
    "MultipleFacesError",
    "NoFaceError",
    "NotFoundError",
    "NotInitializedError",
    "PermissionDeniedError",
    "PolicyDeniedError",
    "ProvenanceFailedError",
    "PublicVerification",
    "RateLimitedError",
    "TemplateError",
    "UnreadableImageError",
    "UnreadableVideoError",
    "UnsupportedFormatError",
    "UntrustedMediaError",
    "Verification",
    "VideoTooLongError",
    "XPError",
    "__version__",
    "init_deployment",
]
