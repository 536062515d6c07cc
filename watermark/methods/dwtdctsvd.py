"""invisible-watermark's dwtDctSvd algorithm behind the method protocol, with a soft decoder of our own.

Embedding is the library's (``imwatermark.dwtDctSvd.EmbedDwtDctSvd``): the U channel of OpenCV's YUV is split by
a one-level Haar DWT, its approximation band is cut into 4×4 blocks in raster order, and block ``i`` carries bit
``i mod n`` by quantising the largest singular value of the block's DCT: ``s0 = (s0 // 36 + 0.25 + 0.5 * bit) * 36``.
The library decodes a block as ``s0 % 36 > 18`` and takes a majority over the blocks of each bit. We re-implement
that read-out in vectorised numpy, keeping the phase of ``s0`` within its quantisation cell as a soft value: +1 at
the centre of a 1-cell, −1 at the centre of a 0-cell, 0 on the decision boundaries. Those are averaged over the
blocks of each bit and summed over frames, so weak frames add weak evidence instead of a full vote.

The codeword bits are placed in a keyed order (on top of the payload's own keyed scrambling), so the layout is
different for every deployment key. The method has no synchronisation search: cropping or resizing the video
moves the block grid and destroys the mark; H.264 re-encoding, which keeps the grid, it survives well.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from watermark.errors import MethodUnavailableError
from watermark.methods.base import Candidate, Frame, SoftBits
from watermark.payload import Bits, WatermarkKey

NAME = "dwtdctsvd"
SCALE = 36.0
"""Quantisation step of the largest singular value (the library's default for U)."""
BLOCK = 4
"""Side of the blocks in the DWT approximation band (the library's default)."""
_SCALES = [0, int(SCALE), 0]
"""Per-YUV-channel steps passed to the library: only U is marked, as by default."""
_CHANNEL = 1
_PERMUTATION_LABEL = b"dwtdctsvd-permutation"

Floats = npt.NDArray[np.float64]


def blocks_per_frame(width: int, height: int) -> int:
    """How many blocks a frame of this size has (the library crops to multiples of 4, then halves, then blocks)."""
    return (2 * (height // 4) // BLOCK) * (2 * (width // 4) // BLOCK)


def bit_permutation(key: WatermarkKey, n_bits: int) -> npt.NDArray[np.intp]:
    """Embedding position ``j`` carries codeword bit ``permutation[j]``."""
    return key.rng(_PERMUTATION_LABEL).permutation(n_bits).astype(np.intp)


def _check_frame(frame: Frame) -> None:
    if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
        raise ValueError(f"expected an RGB uint8 frame (H×W×3), got {frame.shape} {frame.dtype}")


def haar_approximation(channel: npt.NDArray[np.number[Any]]) -> Floats:
    """The approximation band of ``pywt.dwt2(channel, "haar")`` for even-sized input, ~30× faster."""
    x = channel.astype(np.float64)
    return (x[0::2, 0::2] + x[0::2, 1::2] + x[1::2, 0::2] + x[1::2, 1::2]) * 0.5


def block_soft(frame: Frame) -> Floats:
    """Soft value of every block in the library's raster order: the sign is the library's hard bit for the block."""
    _check_frame(frame)
    height, width = frame.shape[:2]
    # RGB→YUV here equals the library's BGR→YUV on the channel-swapped frame (same uint8 rounding).
    chroma = cv2.cvtColor(frame, cv2.COLOR_RGB2YUV)[: height // 4 * 4, : width // 4 * 4, _CHANNEL]
    approx = haar_approximation(chroma)
    rows, cols = approx.shape[0] // BLOCK, approx.shape[1] // BLOCK
    if rows == 0 or cols == 0:
        return np.zeros(0, dtype=np.float64)
    grid = approx[: rows * BLOCK, : cols * BLOCK].reshape(rows, BLOCK, cols, BLOCK).swapaxes(1, 2)
    blocks = grid.reshape(-1, BLOCK, BLOCK)
    # The library takes the SVD of cv2.dct(block); that DCT is orthonormal, so the singular values are the block's
    # own. The largest is the root of the Gram matrix's largest eigenvalue, which is cheaper than a batched SVD.
    gram = np.matmul(blocks.swapaxes(1, 2), blocks)
    s0 = np.sqrt(np.maximum(np.linalg.eigvalsh(gram)[:, -1], 0.0))
    phase = np.mod(s0, SCALE) / SCALE
    # Signed distance from the nearest decision boundary (0 or 0.5), scaled so the embedding targets are ±1.
    soft = np.where(phase > 0.5, 1.0 - 4.0 * np.abs(phase - 0.75), 4.0 * np.abs(phase - 0.25) - 1.0)
    return np.asarray(soft, dtype=np.float64)


def position_evidence(frame: Frame, n_bits: int) -> Floats:
    """Soft value per embedding position (block ``i`` → position ``i mod n_bits``), averaged over its blocks.

    Positions no block reaches (frames too small) get 0: no evidence either way.
    """
    soft = block_soft(frame)
    positions = np.arange(soft.size) % n_bits
    sums = np.bincount(positions, weights=soft, minlength=n_bits)
    counts = np.bincount(positions, minlength=n_bits)
    return np.divide(sums, counts, out=np.zeros(n_bits, dtype=np.float64), where=counts > 0)


class DwtDctSvdEmbedder:
    def __init__(self, key: WatermarkKey, codeword: Bits, *, width: int, height: int) -> None:
        if codeword.ndim != 1 or codeword.size == 0 or not np.isin(codeword, (0, 1)).all():
            raise ValueError("the codeword must be a non-empty 1-D array of 0/1 bits")
        capacity = blocks_per_frame(width, height)
        if capacity < codeword.size:
            raise ValueError(
                f"a {width}×{height} frame has {capacity} blocks, too few to carry {codeword.size} bits with dwtdctsvd"
            )
        # Imported here, and only to embed: importing imwatermark imports torch (for its RivaGAN method), which
        # takes seconds and gigabytes, so invisible-watermark is an extra. Reading a mark is our own code.
        try:
            from imwatermark.dwtDctSvd import EmbedDwtDctSvd
        except ImportError as exc:
            raise MethodUnavailableError(
                "the dwtdctsvd watermark method embeds with invisible-watermark (and torch), which is not "
                f"installed ({exc}): pip install 'xp-sdk[dwtdctsvd]', or use the default method, tiled"
            ) from exc

        sent = codeword[bit_permutation(key, codeword.size)]
        self._library: Any = EmbedDwtDctSvd(
            watermarks=[int(bit) for bit in sent], wmLen=int(sent.size), scales=list(_SCALES), block=BLOCK
        )
        self._width = width
        self._height = height

    def embed(self, frame: Frame) -> Frame:
        _check_frame(frame)
        if frame.shape[:2] != (self._height, self._width):
            raise ValueError(f"expected a {self._width}×{self._height} frame, got {frame.shape[1]}×{frame.shape[0]}")
        bgr = np.ascontiguousarray(frame[:, :, ::-1])
        marked = self._library.encode(bgr)
        return np.ascontiguousarray(np.asarray(marked, dtype=np.uint8)[:, :, ::-1])


class DwtDctSvdAccumulator:
    """Sums per-frame soft bits; needs RGB frames, since the mark lives in chroma."""

    def __init__(self, key: WatermarkKey, n_bits: int) -> None:
        if n_bits <= 0:
            raise ValueError(f"n_bits must be positive, got {n_bits}")
        self._permutation = bit_permutation(key, n_bits)
        self._n_bits = n_bits
        self._sum = np.zeros(n_bits, dtype=np.float64)
        self.frames = 0

    @property
    def hypotheses(self) -> int:
        return 1

    def add(self, frame: Frame) -> None:
        evidence = position_evidence(frame, self._n_bits)
        self._sum[self._permutation] += evidence
        self.frames += 1

    def candidates(self) -> list[Candidate]:
        soft = self._sum.copy()
        # Mean per-frame confidence: near 1 for a clean mark, falling towards 0 as frames disagree.
        score = float(np.mean(np.abs(soft)) / self.frames) if self.frames else 0.0
        return [Candidate(soft, score, f"{self.frames} frames, no synchronisation search")]


class DwtDctSvdMethod:
    name: str = NAME

    def embedder(self, key: WatermarkKey, codeword: Bits, *, width: int, height: int) -> DwtDctSvdEmbedder:
        return DwtDctSvdEmbedder(key, codeword, width=width, height=height)

    def accumulator(self, key: WatermarkKey, n_bits: int) -> DwtDctSvdAccumulator:
        return DwtDctSvdAccumulator(key, n_bits)


__all__ = [
    "DwtDctSvdAccumulator",
    "DwtDctSvdEmbedder",
    "DwtDctSvdMethod",
    "SoftBits",
    "block_soft",
    "blocks_per_frame",
    "haar_approximation",
    "position_evidence",
]
