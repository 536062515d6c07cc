"""Embedding methods behind one interface, by name. The default is chosen by bench/watermark_robustness.py."""

from __future__ import annotations

from watermark.methods.base import EmbeddingMethod
from watermark.methods.tiled import TiledMethod

DEFAULT_METHOD = "tiled"
METHOD_NAMES = ("tiled", "dwtdctsvd")


def get_method(name: str = DEFAULT_METHOD) -> EmbeddingMethod:
    if name == "tiled":
        return TiledMethod()
    if name == "dwtdctsvd":
        from watermark.methods.dwtdctsvd import DwtDctSvdMethod

        return DwtDctSvdMethod()
    raise ValueError(f"unknown watermark method {name!r}; choose one of {', '.join(METHOD_NAMES)}")
