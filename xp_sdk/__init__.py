"""xp-sdk: provenance-gated portrait animation.

``Client`` is the product: every ``animate`` is authenticated (API key), gated (consent, face match, Cedar
policy), audited (tamper-evident log), watermarked and C2PA-signed; ``verify`` reads all of that back. The engine
(``xp_sdk.engine``) makes the pixels and knows nothing of the rest.

The names below are imported when first used (PEP 562), so ``import xp_sdk`` stays cheap and a client of a remote
server never loads the engine, the database or the provenance libraries.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from xp_sdk.version import __version__

if TYPE_CHECKING:
    from xp_sdk.client import Client
    from xp_sdk.deployment import Initialized, init_deployment
    from xp_sdk.errors import (
        AccessDeniedError,
        APIConnectionError,
        APIResponseError,
        APITimeoutError,
        AuthenticationError,
        ConsentRequiredError,
        FaceMismatchError,
        PermissionDeniedError,
        PolicyDeniedError,
        RateLimitedError,
        XPError,
    )
    from xp_sdk.results import AnimationResult, GenerationAudit
    from xp_sdk.verify import Verification

_EXPORTS: dict[str, str] = {
    "Client": "xp_sdk.client",
    "Initialized": "xp_sdk.deployment",
    "init_deployment": "xp_sdk.deployment",
    "APIConnectionError": "xp_sdk.errors",
    "APIResponseError": "xp_sdk.errors",
    "APITimeoutError": "xp_sdk.errors",
    "AccessDeniedError": "xp_sdk.errors",
    "AuthenticationError": "xp_sdk.errors",
    "ConsentRequiredError": "xp_sdk.errors",
    "FaceMismatchError": "xp_sdk.errors",
    "PermissionDeniedError": "xp_sdk.errors",
    "PolicyDeniedError": "xp_sdk.errors",
    "RateLimitedError": "xp_sdk.errors",
    "XPError": "xp_sdk.errors",
    "AnimationResult": "xp_sdk.results",
    "GenerationAudit": "xp_sdk.results",
    "Verification": "xp_sdk.verify",
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
    "AnimationResult",
    "AuthenticationError",
    "Client",
    "ConsentRequiredError",
    "FaceMismatchError",
    "GenerationAudit",
    "Initialized",
    "PermissionDeniedError",
    "PolicyDeniedError",
    "RateLimitedError",
    "Verification",
    "XPError",
    "__version__",
    "init_deployment",
]
