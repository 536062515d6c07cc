"""xp-sdk: provenance-gated portrait animation.

The engine (``xp_sdk.engine``) animates a portrait photo with a driving video or a motion template. The gate
(policy, consent, API keys), provenance (watermark, C2PA) and the audit log join it in the SDK's ``Client``;
see the README for what is built today.
"""

from xp_sdk.errors import XPError

__version__ = "0.1.0"
__all__ = ["XPError", "__version__"]
