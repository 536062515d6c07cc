"""xp-sdk: provenance-gated portrait animation.

``Client`` is the product: every ``animate`` is authenticated (API key), gated (consent, face match, Cedar
policy), audited (tamper-evident log), watermarked and C2PA-signed; ``verify`` reads all of that back. The engine
(``xp_sdk.engine``) makes the pixels and knows nothing of the rest.
"""

from xp_sdk.client import Client
from xp_sdk.deployment import Initialized, init_deployment
from xp_sdk.errors import (
    AccessDeniedError,
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
from xp_sdk.version import __version__

__all__ = [
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
