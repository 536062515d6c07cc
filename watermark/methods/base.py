"""What an embedding method is: a way to carry codeword bits in frames, and to gather soft evidence back.

Methods know nothing of payloads, ECC or p-values (``watermark.detection`` does that); they only place bits and
measure them. Every method must be keyed: without the deployment's key its pattern cannot be found.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

from watermark.payload import Bits, WatermarkKey

Frame = npt.NDArray[np.uint8]
"""An RGB frame, H×W×3 uint8."""
SoftBits = npt.NDArray[np.float64]
"""Soft evidence per codeword bit: positive says 1, negative says 0, magnitude says how sure."""


@dataclass(frozen=True)
class Candidate:
    """One hypothesis about where the mark sits (an offset and scale, say) and the bits read under it."""

    soft_bits: SoftBits
    score: float
    """Method-specific strength of the synchronisation evidence (for reports; not a p-value)."""
    detail: str = ""


class FrameEmbedder(Protocol):
    def embed(self, frame: Frame) -> Frame:
        """The frame with the mark added; same shape and dtype; never modifies the input in place."""
        ...


class EvidenceAccumulator(Protocol):
    @property
    def frames(self) -> int:
        """Frames added so far."""
        ...

    def add(self, frame: Frame) -> None:
        """Gather evidence from one more frame (soft, summed over frames; never a vote of per-frame bits)."""
        ...

    def candidates(self) -> list[Candidate]:
        """Bits read under each synchronisation hypothesis worth decoding, best first (at least one)."""
        ...

    @property
    def hypotheses(self) -> int:
        """How many candidates ``candidates`` may return: the multiple-testing factor of the p-value."""
        ...


class EmbeddingMethod(Protocol):
    @property
    def name(self) -> str: ...

    def embedder(self, key: WatermarkKey, codeword: Bits, *, width: int, height: int) -> FrameEmbedder: ...

    def accumulator(self, key: WatermarkKey, n_bits: int) -> EvidenceAccumulator: ...
