"""Embedding methods behind one interface, by name. The default is chosen by bench/watermark_robustness.py."""

from __future__ import annotations

from watermark.methods.base import EmbeddingMethod
from watermark.methods.tiled import TiledConfig, TiledMethod

DEFAULT_METHOD = "tiled"
METHOD_NAMES = ("tiled", "dwtdctsvd")
METHOD_VERSIONS = {"tiled": 3, "dwtdctsvd": 1}
"""What a mark's C2PA soft-binding assertion names (``algorithm_name``): "tiled" is version 3, whose data sign
changes from frame to frame. Version 2 (the same data in every frame, 2026-12-07, never released) is not read:
its marks were the ones an informed attacker could average away (issue 20)."""
ADJUSTABLE_STRENGTH = frozenset({"tiled"})
"""Methods whose embedding strength can be raised without changing their detector."""


def get_method(name: str = DEFAULT_METHOD, *, strength: float = 1.0) -> EmbeddingMethod:
    """The method called ``name``; ``strength`` scales its embedding energy (and its energy budget) for a
    picture that carries the mark too weakly at 1. Detection is the same at any strength."""
    if not strength > 0:
        raise ValueError(f"a watermark strength must be above 0, got {strength}")
    if strength != 1.0 and name not in ADJUSTABLE_STRENGTH:
        raise ValueError(f"the {name!r} method has a fixed strength: its detector depends on it")
    if name == "tiled":
        return TiledMethod(TiledConfig().scaled(strength))
    if name == "dwtdctsvd":
        from watermark.methods.dwtdctsvd import DwtDctSvdMethod

        return DwtDctSvdMethod()
    raise ValueError(f"unknown watermark method {name!r}; choose one of {', '.join(METHOD_NAMES)}")


def algorithm_name(name: str = DEFAULT_METHOD) -> str:
    """The soft-binding algorithm of a method, with its version: ``com.xp-sdk.watermark.tiled.v3``."""
    if name not in METHOD_VERSIONS:
        raise ValueError(f"unknown watermark method {name!r}; choose one of {', '.join(METHOD_NAMES)}")
    return f"com.xp-sdk.watermark.{name}.v{METHOD_VERSIONS[name]}"
