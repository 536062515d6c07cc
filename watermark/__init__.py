"""Provenance for generated video: an invisible keyed watermark and signed C2PA manifests.

Marking: ``FrameMarker(key, payload)`` marks frames as they stream to the encoder; ``mark_video`` marks a file.
Checking: ``detect_watermark(path, key)`` returns a ``WatermarkDetection`` with the payload and a p-value.
This package knows no database and no engine; ``xp_sdk`` composes it with both.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from watermark.detection import DEFAULT_P_THRESHOLD, WatermarkDetection
    from watermark.detection import detect_in_video as detect_in_video
    from watermark.embedding import FrameMarker, MarkReport
    from watermark.embedding import mark_file as mark_file
    from watermark.errors import ProvenanceError, UnreadableVideoError, WatermarkError, WatermarkKeyError
    from watermark.methods import DEFAULT_METHOD, METHOD_NAMES, get_method
    from watermark.payload import CODEWORD_BITS, Payload, WatermarkKey
    from watermark.transcode import reencode
    from watermark.video_marks import detect_watermark, mark_video

_EXPORTS: dict[str, str] = {
    "DEFAULT_P_THRESHOLD": "watermark.detection",
    "WatermarkDetection": "watermark.detection",
    "detect_in_video": "watermark.detection",
    "FrameMarker": "watermark.embedding",
    "MarkReport": "watermark.embedding",
    "mark_file": "watermark.embedding",
    "ProvenanceError": "watermark.errors",
    "UnreadableVideoError": "watermark.errors",
    "WatermarkError": "watermark.errors",
    "WatermarkKeyError": "watermark.errors",
    "DEFAULT_METHOD": "watermark.methods",
    "METHOD_NAMES": "watermark.methods",
    "get_method": "watermark.methods",
    "CODEWORD_BITS": "watermark.payload",
    "Payload": "watermark.payload",
    "WatermarkKey": "watermark.payload",
    "reencode": "watermark.transcode",
    "detect_watermark": "watermark.video_marks",
    "mark_video": "watermark.video_marks",
}
"""Each public name and the module it comes from: imported on first use (PEP 562), so importing one light
module of the package does not load the heavy ones."""


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
    "CODEWORD_BITS",
    "DEFAULT_METHOD",
    "DEFAULT_P_THRESHOLD",
    "METHOD_NAMES",
    "FrameMarker",
    "MarkReport",
    "Payload",
    "ProvenanceError",
    "UnreadableVideoError",
    "WatermarkDetection",
    "WatermarkError",
    "WatermarkKey",
    "WatermarkKeyError",
    "detect_watermark",
    "get_method",
    "mark_video",
    "reencode",
]
