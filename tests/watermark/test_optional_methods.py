"""An optional watermark method whose library is missing says which extra to install, as a typed error."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from watermark.errors import MethodUnavailableError, ProvenanceError
from watermark.methods import get_method
from watermark.payload import CODEWORD_BITS, WatermarkKey


def test_dwtdctsvd_without_invisible_watermark_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    # None in sys.modules makes `import imwatermark...` fail as it does where the package is not installed.
    for name in [m for m in sys.modules if m == "imwatermark" or m.startswith("imwatermark.")] + ["imwatermark"]:
        monkeypatch.setitem(sys.modules, name, None)
    method = get_method("dwtdctsvd")
    codeword = np.zeros(CODEWORD_BITS, dtype=np.uint8)
    with pytest.raises(MethodUnavailableError, match=r"pip install 'xp-sdk\[dwtdctsvd\]'") as raised:
        method.embedder(WatermarkKey.generate(), codeword, width=256, height=256)
    assert isinstance(raised.value, ProvenanceError) and raised.value.code == "watermark_method_unavailable"


def test_dwtdctsvd_detection_needs_no_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    """Reading a dwtdctsvd mark is our own numpy decoder: it works without invisible-watermark."""
    for name in [m for m in sys.modules if m == "imwatermark" or m.startswith("imwatermark.")] + ["imwatermark"]:
        monkeypatch.setitem(sys.modules, name, None)
    accumulator = get_method("dwtdctsvd").accumulator(WatermarkKey.generate(), CODEWORD_BITS)
    accumulator.add(np.full((256, 256, 3), 128, dtype=np.uint8))
    assert accumulator.frames == 1 and len(accumulator.candidates()) == 1
