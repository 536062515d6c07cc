"""Reading a mark: gather soft evidence over frames, decode the BCH codeword, and say how sure we are."""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from watermark.methods.base import EmbeddingMethod, EvidenceAccumulator
from watermark.payload import (
    CODEWORD_BITS,
    CORRECTABLE_BITS,
    Bits,
    DecodedPayload,
    Payload,
    WatermarkKey,
    decode_codeword,
    decode_codewords,
    false_decode_probability,
)
from watermark.video_io import iter_frames

DEFAULT_P_THRESHOLD = 1e-9
CHASE_BITS = 8
"""Chase decoding: also try flipping every subset of the 8 least reliable bits (256 BCH decodes, one batch).

The p-value does not grow with the patterns tried: it bounds the chance that ANY codeword lies as close to the
received bits as the one found, so how the decoder searched for it does not matter."""


@dataclass(frozen=True)
class WatermarkDetection:
    """The outcome of looking for a mark. ``detected`` is True only when the codeword decoded and p < threshold."""

    detected: bool
    payload: Payload | None
    p_value: float
    """Probability that an unmarked video decodes this well by chance (1.0 when nothing decoded)."""
    corrected_bits: int | None
    received_bits: Bits = field(repr=False)
    """The hard codeword bits read under the best hypothesis (still scrambled), for bit-accuracy measurements."""
    frames: int
    seconds: float
    method: str
    sync: str = ""
    """How the method synchronised (offset and scale, for a tiled mark)."""


def detect_in_accumulator(
    accumulator: EvidenceAccumulator,
    key: WatermarkKey,
    *,
    method: str,
    p_threshold: float = DEFAULT_P_THRESHOLD,
    started: float | None = None,
    expected: Payload | None = None,
) -> WatermarkDetection:
    """The best-supported payload among the accumulator's candidates, with its p-value.

    With ``expected`` (a read-back, where the payload is known) only that payload is tried, by plain BCH
    distance instead of the Chase search: it is found when it lies within the code's radius at the p-value
    ``verify`` would give it, so a mark found this way is one a search finds too, at a fraction of the cost."""
    started = time.perf_counter() if started is None else started
    candidates = accumulator.candidates()
    hards = [(candidate.soft_bits > 0).astype(np.uint8) for candidate in candidates]
    if expected is None:
        found = _decode_all(hards, [np.abs(candidate.soft_bits) for candidate in candidates], key)
    else:
        found = [_within_radius(hard, expected, key) for hard in hards]
    best: WatermarkDetection | None = None
    for candidate, hard, decoded in zip(candidates, hards, found, strict=True):
        if decoded is None:
            if best is None:
                best = WatermarkDetection(
                    False, None, 1.0, None, hard, accumulator.frames, 0.0, method, candidate.detail
                )
            continue
        # The union bound covers every codeword (hence every Chase pattern) and every synchronisation hypothesis.
        distance = int(np.count_nonzero(decoded.codeword != hard))
        chance = false_decode_probability(distance) * accumulator.hypotheses
        p_value = min(1.0, chance)
        result = WatermarkDetection(
            p_value < p_threshold,
            decoded.payload,
            p_value,
            distance,
            hard,
            accumulator.frames,
            0.0,
            method,
            candidate.detail,
        )
        if best is None or best.payload is None or p_value < best.p_value:
            best = result
    assert best is not None, "an accumulator returns at least one candidate"
    # A decode that is not significant names no payload: it is as likely to be noise as a mark.
    return replace(best, payload=best.payload if best.detected else None, seconds=time.perf_counter() - started)


def _decode_all(hards: list[Bits], reliabilities: list[np.ndarray], key: WatermarkKey) -> list[DecodedPayload | None]:
    """Each candidate's decode: the plain BCH decode where one succeeds, else the Chase search.

    A plain decode that succeeds lies within t = 16 of the received bits, and every other codeword at least
    2t + 1 - 16 > 16 from them: nothing a Chase search finds for that candidate, or for any other (Chase decodes
    lie beyond t, or no candidate decoded plainly), can be nearer. So when any candidate decodes plainly, the
    256-decode searches are skipped, with the same best result. Candidates with the same bits are decoded once."""
    plain: dict[bytes, DecodedPayload | None] = {}
    for hard in hards:
        if hard.tobytes() not in plain:
            plain[hard.tobytes()] = decode_codeword(hard, key)
    if any(decoded is not None for decoded in plain.values()):
        return [plain[hard.tobytes()] for hard in hards]
    searched: dict[bytes, DecodedPayload | None] = {}
    for hard, reliability in zip(hards, reliabilities, strict=True):
        if hard.tobytes() not in searched:
            searched[hard.tobytes()] = _chase_decode(hard, reliability, key)
    return [searched[hard.tobytes()] for hard in hards]


def _within_radius(hard: Bits, expected: Payload, key: WatermarkKey) -> DecodedPayload | None:
    codeword = expected.codeword(key)
    distance = int(np.count_nonzero(codeword != hard))
    # Within the radius the BCH decode of ``hard`` is ``expected`` itself (codewords are ≥ 2t + 1 apart).
    return DecodedPayload(expected, distance, codeword) if distance <= CORRECTABLE_BITS else None


def _chase_decode(hard: Bits, reliability: np.ndarray, key: WatermarkKey) -> DecodedPayload | None:
    """The decode nearest to the received bits among the BCH decodes of the Chase test patterns."""
    weakest = np.argsort(reliability)[:CHASE_BITS]
    # Row p flips weakest[j] where bit j of p is set.
    patterns = (np.arange(2**CHASE_BITS)[:, None] >> np.arange(CHASE_BITS)) & 1
    trials = np.repeat(hard[None, :], 2**CHASE_BITS, axis=0)
    trials[:, weakest] ^= patterns.astype(np.uint8)
    best: DecodedPayload | None = None
    best_distance = CODEWORD_BITS + 1
    for decoded in decode_codewords(trials, key):
        if decoded is None:
            continue
        distance = int(np.count_nonzero(decoded.codeword != hard))
        if distance < best_distance:
            best, best_distance = decoded, distance
    return best


def detect_in_video(
    path: Path,
    key: WatermarkKey,
    method: EmbeddingMethod,
    *,
    p_threshold: float = DEFAULT_P_THRESHOLD,
    max_frames: int | None = None,
    expected: Payload | None = None,
) -> WatermarkDetection:
    started = time.perf_counter()
    accumulator = method.accumulator(key, CODEWORD_BITS)
    for frame in iter_frames(path, max_frames=max_frames, gray=getattr(accumulator, "wants_luma", False)):
        accumulator.add(frame)
    return detect_in_accumulator(
        accumulator, key, method=method.name, p_threshold=p_threshold, started=started, expected=expected
    )
