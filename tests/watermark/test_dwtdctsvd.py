"""The dwtdctsvd method on real frames: faithful to invisible-watermark, keyed, soft, and robust to H.264."""

from __future__ import annotations

import io
import itertools
import time
from pathlib import Path
from typing import Any, cast

import numpy as np
import pytest

from tests.conftest import first_frames
from watermark.methods.base import EmbeddingMethod, Frame
from watermark.methods.dwtdctsvd import (
    DwtDctSvdMethod,
    block_soft,
    blocks_per_frame,
    haar_approximation,
    position_evidence,
)
from watermark.payload import CODEWORD_BITS, Payload, WatermarkKey

KEY = WatermarkKey(bytes(range(32)))
OTHER_KEY = WatermarkKey(bytes(range(1, 33)))
CODEWORD = Payload(0x0123456789ABCDEF).codeword(KEY)
CLIP_FRAMES = 30


def _method() -> EmbeddingMethod:
    return DwtDctSvdMethod()


def _library(wm_len: int) -> Any:
    from imwatermark.dwtDctSvd import EmbedDwtDctSvd  # type: ignore[import-untyped]

    return EmbedDwtDctSvd(watermarks=[], wmLen=wm_len, scales=[0, 36, 0], block=4)


def _library_bits(frame: Frame, wm_len: int) -> np.ndarray:
    """The library's own hard decode of an RGB frame."""
    return np.asarray(_library(wm_len).decode(np.ascontiguousarray(frame[:, :, ::-1])), dtype=bool)


def _embed_all(frames: list[Frame], key: WatermarkKey = KEY) -> list[Frame]:
    height, width = frames[0].shape[:2]
    embedder = _method().embedder(key, CODEWORD, width=width, height=height)
    return [embedder.embed(frame) for frame in frames]


def _read(frames: list[Frame], key: WatermarkKey = KEY) -> np.ndarray:
    accumulator = _method().accumulator(key, CODEWORD_BITS)
    for frame in frames:
        accumulator.add(frame)
    (candidate,) = accumulator.candidates()
    return candidate.soft_bits


def _agreement(soft: np.ndarray) -> float:
    return float(np.mean((soft > 0) == CODEWORD.astype(bool)))


def _h264_round_trip(frames: list[Frame], crf: int) -> list[Frame]:
    import av

    height, width = frames[0].shape[:2]
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=25, options={"crf": str(crf), "preset": "veryfast"})
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode(None))
    buffer.seek(0)
    with av.open(buffer, mode="r") as reader:
        return [np.asarray(decoded.to_ndarray(format="rgb24"), dtype=np.uint8) for decoded in reader.decode(video=0)]


@pytest.fixture(scope="module")
def clip(driving_videos: list[Path]) -> list[Frame]:
    """~30 real frames from the largest driving video that has them (generated portraits are ~512×512)."""
    best: list[Frame] = []
    for path in driving_videos:
        frames = first_frames(path, CLIP_FRAMES)
        if len(frames) == CLIP_FRAMES and (not best or frames[0].size > best[0].size):
            best = frames
    if not best or best[0].shape[0] * best[0].shape[1] < 256 * 256:
        pytest.skip(f"no driving video with {CLIP_FRAMES} frames of at least 256×256")
    height, width = best[0].shape[:2]
    return [np.ascontiguousarray(frame[: height - height % 2, : width - width % 2]) for frame in best]


@pytest.fixture(scope="module")
def marked_clip(clip: list[Frame]) -> list[Frame]:
    return _embed_all(clip)


def test_embedded_bits_read_back_exactly_in_memory(clip: list[Frame], marked_clip: list[Frame]) -> None:
    for original, marked in zip(clip[:5], marked_clip[:5], strict=True):
        assert marked.shape == original.shape and marked.dtype == np.uint8
        assert np.array_equal((_read([marked]) > 0).astype(np.uint8), CODEWORD)
    assert np.array_equal((_read(marked_clip) > 0).astype(np.uint8), CODEWORD)


def test_embed_does_not_modify_its_input(clip: list[Frame]) -> None:
    frame = clip[0].copy()
    height, width = frame.shape[:2]
    marked = _method().embedder(KEY, CODEWORD, width=width, height=height).embed(frame)
    assert np.array_equal(frame, clip[0])
    assert not np.shares_memory(marked, frame)
    assert not np.array_equal(marked, frame)


def test_soft_signs_agree_with_the_library_decoder(clip: list[Frame], marked_clip: list[Frame]) -> None:
    marked = marked_clip[0]
    library = _library_bits(marked, CODEWORD_BITS)
    assert np.array_equal(position_evidence(marked, CODEWORD_BITS) > 0, library)
    # The library reads the keyed layout: position j carries codeword bit permutation[j], not bit j.
    assert not np.array_equal(library, CODEWORD.astype(bool))
    # Block by block (one "bit" per block), on marked and on never-marked frames alike.
    height, width = marked.shape[:2]
    n_blocks = blocks_per_frame(width, height)
    for frame in (marked, clip[0], clip[-1]):
        soft = block_soft(frame)
        assert soft.size == n_blocks
        assert np.all((soft >= -1) & (soft <= 1))
        decided = np.abs(soft) > 1e-9
        assert np.array_equal((soft > 0)[decided], _library_bits(frame, n_blocks)[decided])


def test_haar_approximation_is_pywts() -> None:
    import pywt  # type: ignore[import-untyped]

    channel = np.random.default_rng(3).integers(0, 256, (48, 64), dtype=np.uint8)
    expected, _ = pywt.dwt2(channel, "haar")
    np.testing.assert_allclose(haar_approximation(channel), expected, rtol=0, atol=1e-9)


def test_soft_decoder_matches_the_library_on_an_odd_sized_synthetic_frame() -> None:
    """Runs without the shared faces: cropping to multiples of 4 and partial blocks must match the library."""
    import cv2

    rng = np.random.default_rng(7)
    noise = rng.normal(128, 60, (301, 397, 3)).astype(np.float32)
    frame = np.clip(cv2.GaussianBlur(noise, (0, 0), 2.0) * 3 - 256, 0, 255).astype(np.uint8)
    n_blocks = blocks_per_frame(397, 301)
    soft = block_soft(frame)
    assert soft.size == n_blocks
    decided = np.abs(soft) > 1e-9
    assert np.array_equal((soft > 0)[decided], _library_bits(frame, n_blocks)[decided])
    marked = _method().embedder(KEY, CODEWORD, width=397, height=301).embed(frame)
    assert np.array_equal((_read([marked]) > 0).astype(np.uint8), CODEWORD)


def test_soft_evidence_grows_with_frames(marked_clip: list[Frame]) -> None:
    signs = CODEWORD.astype(np.float64) * 2 - 1
    accumulator = _method().accumulator(KEY, CODEWORD_BITS)
    support = []
    for frame in marked_clip[:10]:
        accumulator.add(frame)
        support.append(float(np.dot(accumulator.candidates()[0].soft_bits, signs)))
    assert accumulator.frames == 10
    assert all(later > earlier for earlier, later in itertools.pairwise(support))
    assert support[-1] > 8 * support[0]


def test_survives_h264_crf23(clip: list[Frame], marked_clip: list[Frame]) -> None:
    received = _h264_round_trip(marked_clip, crf=23)
    assert len(received) == len(marked_clip)
    summed = _agreement(_read(received))
    per_frame = float(np.mean([_agreement(_read([frame])) for frame in received]))
    print(f"\ndwtdctsvd after H.264 CRF 23: {summed:.3f} summed over {len(received)} frames, {per_frame:.3f} per frame")
    assert summed >= 0.95


def test_unmarked_frames_read_at_chance(clip: list[Frame]) -> None:
    single = _agreement(_read(clip[:1]))
    summed = _agreement(_read(clip))
    print(f"\ndwtdctsvd on unmarked frames: {single:.3f} one frame, {summed:.3f} summed over {len(clip)}")
    # 196 bits: ±0.15 is over four standard deviations from 0.5.
    assert 0.35 < single < 0.65
    assert 0.35 < summed < 0.65


def test_the_wrong_key_reads_nothing(marked_clip: list[Frame]) -> None:
    assert 0.35 < _agreement(_read(marked_clip[:5], key=OTHER_KEY)) < 0.65


def test_accumulator_protocol() -> None:
    accumulator = _method().accumulator(KEY, CODEWORD_BITS)
    assert accumulator.hypotheses == 1
    (empty,) = accumulator.candidates()
    assert empty.soft_bits.shape == (CODEWORD_BITS,) and not empty.soft_bits.any()
    # Too small to reach every position: the bits it cannot reach carry no evidence.
    accumulator.add(np.full((64, 64, 3), 100, dtype=np.uint8))
    assert accumulator.frames == 1
    assert np.count_nonzero(accumulator.candidates()[0].soft_bits) <= blocks_per_frame(64, 64)
    with pytest.raises(ValueError, match="RGB"):
        accumulator.add(np.zeros((64, 64), dtype=np.uint8))


def test_embedder_rejects_what_it_cannot_carry() -> None:
    with pytest.raises(ValueError, match="too few"):
        _method().embedder(KEY, CODEWORD, width=96, height=96)
    embedder = _method().embedder(KEY, CODEWORD, width=320, height=256)
    with pytest.raises(ValueError, match="320×256"):
        embedder.embed(np.zeros((320, 256, 3), dtype=np.uint8))
    with pytest.raises(ValueError, match="RGB"):
        embedder.embed(cast(Frame, np.zeros((256, 320, 3), dtype=np.float32)))


def test_timings_512(clip: list[Frame]) -> None:
    """Measured, not asserted: embed and soft-decode cost per 512×512 frame."""
    import cv2

    frames = [np.asarray(cv2.resize(frame, (512, 512), interpolation=cv2.INTER_AREA), np.uint8) for frame in clip[:10]]
    embedder = _method().embedder(KEY, CODEWORD, width=512, height=512)
    embedder.embed(frames[0])
    start = time.perf_counter()
    marked = [embedder.embed(frame) for frame in frames]
    embed_ms = (time.perf_counter() - start) * 1e3 / len(frames)
    accumulator = _method().accumulator(KEY, CODEWORD_BITS)
    start = time.perf_counter()
    for frame in marked:
        accumulator.add(frame)
    decode_ms = (time.perf_counter() - start) * 1e3 / len(frames)
    print(f"\ndwtdctsvd 512×512: embed {embed_ms:.1f} ms/frame, soft decode {decode_ms:.2f} ms/frame")
    assert np.array_equal((accumulator.candidates()[0].soft_bits > 0).astype(np.uint8), CODEWORD)
