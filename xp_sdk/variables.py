"""The ``XP_*`` environment variables and the settings they give. Standard library only: a remote client reads its
variables here without loading what an embedded deployment needs (the database, the policy engine)."""

from __future__ import annotations

import os

SETTING_VARIABLES = {
    "database_url": "XP_DATABASE_URL",
    "api_key": "XP_API_KEY",
    "face_match_threshold": "XP_FACE_MATCH_THRESHOLD",
    "log_origin": "XP_LOG_ORIGIN",
    "consent_validity_days": "XP_CONSENT_VALIDITY_DAYS",
    "max_driving_seconds": "XP_MAX_DRIVING_SECONDS",
    "max_driving_frames": "XP_MAX_DRIVING_FRAMES",
    "base_url": "XP_BASE_URL",
    "debug": "XP_DEBUG",
    "signing_chain": "XP_SIGNING_CHAIN",
    "signing_key": "XP_SIGNING_KEY",
    "trust_anchors": "XP_TRUST_ANCHORS",
    "models_toml": "XP_MODELS_TOML",
    "face_tracking": "XP_FACE_TRACKING",
    "face_landmarker_model": "XP_FACE_LANDMARKER_MODEL",
    "yunet_model": "XP_YUNET_MODEL",
    "sface_model": "XP_SFACE_MODEL",
    "redis_url": "XP_REDIS_URL",
    "redis_prefix": "XP_REDIS_PREFIX",
}
ENVIRONMENT_ONLY = frozenset(
    {"base_url", "debug", "signing_chain", "signing_key", "trust_anchors", "models_toml", "face_tracking"}
    | {"face_landmarker_model", "yunet_model", "sface_model"}
)
"""Settings only their variable gives, because their readers look nowhere else: the engine (tracking, model files,
models.toml), which may not import these settings; code that runs before or without a deployment (a remote client,
the CLI's error handling, the offline verifier). A ``config.json`` value would be shown and not used."""
VARIABLES: dict[str, str] = {"home": "XP_HOME", **SETTING_VARIABLES}
"""Every ``XP_*`` variable, by the ``Settings`` field it gives (``XP_HOME`` through ``Home.resolve``)."""


def environment(setting: str) -> str | None:
    """``setting``'s ``XP_*`` variable as the environment gives it (None when unset or empty), for code that runs
    before, or without, a deployment's settings; ``Settings.resolve`` reads the same variable."""
    return os.environ.get(VARIABLES[setting]) or None
