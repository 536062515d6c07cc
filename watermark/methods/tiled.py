"""The project's own method: keyed spread spectrum on a tile of luma chips, repeated in space and time.

Why a tile: every frame carries the same keyed 32×32-chip tile, repeated across the picture. Cropping then only
shifts the tile (found again by correlating with a keyed pilot), resizing only scales it (the period is measured
from the autocorrelation of the residual), and because the pattern does not change over time, dropping,
trimming or resampling frames loses nothing. Detection sums the luma of all frames first, so the moving picture
averages out while the mark adds up: evidence grows with every frame, softly, before any bit is decided.

Embedding adds the pattern to R, G and B alike (so only luma changes), scaled by a texture mask: stronger in
hair and skin texture, weaker on flat areas where it would show. Each frame then keeps within an energy budget
(``TiledConfig.max_rms``, PSNR ≥ 38 dB): a busy frame gives up energy first where the picture's detail is
strongest, because that is where the mark costs the most error and, after whitening, adds the least evidence.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import cv2
import numpy as np
import numpy.typing as npt

from watermark.errors import UnreadableVideoError
from watermark.methods.base import Candidate, Frame, SoftBits
from watermark.payload import Bits, WatermarkKey

CHIPS = 32
"""The tile is CHIPS × CHIPS chips."""
CANONICAL_CHIP = 4
"""Detection resamples the picture so that a chip is this many pixels (a 128-pixel tile)."""
PILOT_EVERY = 4
"""One chip in this many is a pilot chip (keyed, payload-independent) used to find the tile's offset and scale."""

Float = npt.NDArray[np.float32]


@dataclass(frozen=True)
class TiledConfig:
    strength: float = 3.2
    """RMS amplitude of the pattern in 8-bit luma levels where the texture mask is 1."""
    chip_divisor: int = 120
    """A chip is about 1/chip_divisor of the picture's shorter side ..."""
    min_chip: int = 4
    """... but never smaller than this many pixels (smaller chips do not survive H.264)."""
    mask_floor: float = 0.365
    """Flat areas get strength × floor ≈ 1.17 levels (RMS)."""
    mask_ceiling: float = 1.4
    """Texture gets at most strength × ceiling ≈ 4.5 levels (RMS), before the energy budget."""
    mask_reference: float = 2.5
    """Local detail (mean absolute high-pass, in levels) at which the mask is 1."""
    max_rms: float | None = 3.1
    """Energy budget: the pattern's RMS in one frame, in levels (3.1 ≈ PSNR 38.3 dB; None: no budget). A frame
    over it is brought down to it, taking energy first where local detail is highest (see ``budget_offset``);
    frames within it are left alone. Without it the busiest engine outputs were marked at 37.4 dB; scaling such
    frames down evenly cost them detection margin, which cutting strong edges first and a higher strength on
    texture (3.2, was 2.6, with ceiling 1.4, was 1.6) win back (bench/watermark_robustness.py, 3 seeds)."""
    budget_offset: float = 1.0
    """Over budget, a pixel's mask is cut to at most μ / (activity + budget_offset), one μ per frame: the
    evidence a level of the pattern adds after compression and whitening falls roughly like that with local
    detail (activity = detail / mask_reference), so strong edges give up their energy first."""
    mask_gamma: float = 1.0
    """Above 1, smooth skin gets less and texture more of the pattern than detail alone would give."""
    candidates: int = 3
    """Synchronisation hypotheses decoded per clip (the p-value is multiplied by this)."""

    def scaled(self, factor: float) -> TiledConfig:
        """The same pattern at ``factor`` times the energy, budget included."""
        if factor == 1.0:
            return self
        budget = None if self.max_rms is None else self.max_rms * factor
        return replace(self, strength=self.strength * factor, max_rms=budget)


def chip_size(width: int, height: int, config: TiledConfig) -> int:
    return max(config.min_chip, round(min(width, height) / config.chip_divisor))


@dataclass(frozen=True)
class _Layout:
    """Which chips are pilots, and which codeword bit (with which keyed sign) each data chip carries."""

    pilot: npt.NDArray[np.bool_]
    pilot_sign: Float
    data_positions: npt.NDArray[np.intp]
    data_bit: npt.NDArray[np.intp]
    data_sign: Float

    @classmethod
    def for_key(cls, key: WatermarkKey, n_bits: int) -> _Layout:
        rng = key.rng(b"tiled-layout-v1")
        order = rng.permutation(CHIPS * CHIPS)
        n_pilot = CHIPS * CHIPS // PILOT_EVERY
        pilot = np.zeros(CHIPS * CHIPS, dtype=bool)
        pilot[order[:n_pilot]] = True
        data_positions = np.sort(order[n_pilot:])
        if data_positions.size < n_bits:
            raise ValueError(f"a tile carries at most {data_positions.size} bits, asked for {n_bits}")
        data_bit = rng.permutation(data_positions.size) % n_bits
        signs = rng.integers(0, 2, CHIPS * CHIPS).astype(np.float32) * 2 - 1
        pilot_sign = np.where(pilot, signs, 0).astype(np.float32).reshape(CHIPS, CHIPS)
        return cls(pilot.reshape(CHIPS, CHIPS), pilot_sign, data_positions, data_bit, signs[data_positions])

    def chips(self, codeword: Bits) -> Float:
        values = self.pilot_sign.ravel().copy()
        values[self.data_positions] = self.data_sign * (codeword[self.data_bit].astype(np.float32) * 2 - 1)
        return values.reshape(CHIPS, CHIPS)


def _render(chips: Float, chip: int) -> Float:
    """A tile of chips as pixels, edges softened so the pattern has no hard blocks."""
    tile = np.kron(chips, np.ones((chip, chip), dtype=np.float32))
    # Smooth with wrap-around so the tile stays seamless when repeated.
    pad = 2 * chip
    padded = np.pad(tile, pad, mode="wrap")
    blurred = cv2.GaussianBlur(padded, (0, 0), sigmaX=0.35 * chip)
    return np.ascontiguousarray(blurred[pad:-pad, pad:-pad])


class TiledEmbedder:
    def __init__(self, key: WatermarkKey, codeword: Bits, *, width: int, height: int, config: TiledConfig) -> None:
        layout = _Layout.for_key(key, codeword.size)
        chip = chip_size(width, height, config)
        tile = _render(layout.chips(codeword), chip)
        reps_y = -(-height // tile.shape[0])
        reps_x = -(-width // tile.shape[1])
        pattern = np.tile(tile, (reps_y, reps_x))[:height, :width]
        # Unit RMS times the strength, so embedding is one multiply by the mask.
        self._pattern = (config.strength * pattern / float(np.sqrt(np.mean(pattern**2)))).astype(np.float32)
        self._width = width
        self._height = height
        self._config = config

    def embed(self, frame: Frame) -> Frame:
        if frame.shape != (self._height, self._width, 3) or frame.dtype != np.uint8:
            raise ValueError(
                f"expected a {self._width}×{self._height} RGB uint8 frame, got {frame.shape} {frame.dtype}"
            )
        config = self._config
        small, activity = _mask_and_activity(frame, config)
        near_budget = False
        if config.max_rms is not None:
            target = config.max_rms / config.strength
            small = _within_budget(small, activity + config.budget_offset, target)
            near_budget = _mean_square(small) > (0.95 * target) ** 2
        shaped = _full_size(small, frame) * self._pattern
        if near_budget and config.max_rms is not None:
            # The budget was met at 1/4 size; the full-size product can differ a little, so hold it exactly.
            rms = float(np.sqrt(_mean_square(shaped)))
            if rms > config.max_rms:
                shaped *= config.max_rms / rms
        delta = np.rint(shaped).astype(np.int16)
        # OpenCV on contiguous planes rather than NumPy on strided channels: a third of the time.
        red, green, blue = cv2.split(frame)
        lowest = cv2.min(cv2.min(red, green), blue).astype(np.int16)
        highest = cv2.max(cv2.max(red, green), blue).astype(np.int16)
        # Clamp the shared delta, not each channel, so saturated pixels keep their colour (luma-only change).
        delta = cv2.min(cv2.max(delta, -lowest), 255 - highest)
        # Within those bounds no channel leaves 0-255, so unsigned adds and subtracts are exact.
        up = np.maximum(delta, 0).astype(np.uint8)
        down = np.maximum(-delta, 0).astype(np.uint8)
        return np.asarray(cv2.merge([cv2.subtract(cv2.add(plane, up), down) for plane in (red, green, blue)]))


def texture_mask(frame: Frame, config: TiledConfig) -> Float:
    """Where the eye tolerates the pattern: ~1 on skin and hair texture, lower on flat areas, computed at 1/4 size.

    The mask alone, before the per-frame energy budget (``TiledConfig.max_rms``) that ``TiledEmbedder`` applies.
    """
    return _full_size(_mask_and_activity(frame, config)[0], frame)


def _full_size(small: Float, frame: Frame) -> Float:
    height, width = frame.shape[:2]
    return np.asarray(cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR), dtype=np.float32)


def _mask_and_activity(frame: Frame, config: TiledConfig) -> tuple[Float, Float]:
    """The texture mask and the local activity it was made from, both at 1/4 size."""
    height, width = frame.shape[:2]
    small_w, small_h = max(8, width // 4), max(8, height // 4)
    small = cv2.resize(cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY), (small_w, small_h), interpolation=cv2.INTER_AREA)
    small_f = small.astype(np.float32)
    detail = np.abs(small_f - cv2.GaussianBlur(small_f, (0, 0), 1.5))
    activity = (cv2.GaussianBlur(detail, (0, 0), 2.0) / config.mask_reference) ** config.mask_gamma
    # Very dark and very bright pixels clip the pattern anyway and show it more: ease off there.
    tone = np.clip(np.minimum(small_f, 255 - small_f) / 40.0, 0.3, 1.0)
    mask = np.clip(activity, config.mask_floor, config.mask_ceiling) * tone
    return mask.astype(np.float32), activity.astype(np.float32)


def _within_budget(mask: Float, cost: Float, target_rms: float) -> Float:
    """``mask`` if its RMS is within ``target_rms``, else ``min(mask, μ / cost)`` with the largest μ that meets it.

    Water-filling: where ``mask × cost`` is highest the mask is cut first, down to a common level μ; the rest
    keep their mask. μ is found by bisection (the RMS grows monotonically with it): 16 halvings pin it to
    1/65536 of its range, far below what rounding to whole levels changes; ~0.3 ms on a 512² frame.
    """
    if _mean_square(mask) <= target_rms**2:
        return mask
    share = (1.0 / cost).astype(np.float32)
    trial = np.empty_like(mask)
    low, high = 0.0, float(np.max(mask * cost))
    for _ in range(16):
        mu = 0.5 * (low + high)
        np.multiply(share, np.float32(mu), out=trial)
        np.minimum(mask, trial, out=trial)
        if _mean_square(trial) > target_rms**2:
            high = mu
        else:
            low = mu
    return np.asarray(np.minimum(mask, np.float32(low) * share), dtype=np.float32)


def _mean_square(values: Float) -> float:
    # einsum rather than vdot/dot: BLAS may wake its thread pool, which costs CPU time on every call.
    return float(np.einsum("ij,ij->", values, values)) / values.size


class TiledAccumulator:
    """Sums luma over frames; all synchronisation and reading happens once, in ``candidates``."""

    wants_luma = True

    def __init__(self, key: WatermarkKey, n_bits: int, config: TiledConfig) -> None:
        self._layout = _Layout.for_key(key, n_bits)
        self._n_bits = n_bits
        self._config = config
        self._sum: npt.NDArray[np.float64] | None = None
        self.frames = 0
        tile = _render(self._layout.pilot_sign, CANONICAL_CHIP)
        self._pilot_spectrum = np.conj(np.fft.rfft2(tile - tile.mean()))

    @property
    def hypotheses(self) -> int:
        return self._config.candidates

    def add(self, frame: Frame) -> None:
        luma = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY) if frame.ndim == 3 else frame
        if self._sum is None:
            self._sum = np.zeros(luma.shape, dtype=np.float64)
        elif luma.shape != self._sum.shape:
            raise UnreadableVideoError(f"frame size changed mid-video ({self._sum.shape} → {luma.shape})")
        self._sum += luma
        self.frames += 1

    def candidates(self) -> list[Candidate]:
        if self._sum is None:
            raise UnreadableVideoError("no frames to read a watermark from")
        residual = _whiten(self._sum.astype(np.float32))
        height, width = residual.shape
        # Most handling keeps the picture's scale (re-encoding, brightness, trimming, frame rate): then the
        # period is exactly what the embedder chose for these dimensions, and needs no estimate.
        native_period = float(CHIPS * chip_size(width, height, self._config))
        native = self._read(residual, native_period, native_period, steps=(0,))
        scored: list[Candidate] = []
        seen = {(round(native_period), round(native_period))}
        for period_x, period_y in _period_candidates(residual):
            key = (round(period_x), round(period_y))
            if key in seen:
                continue
            seen.add(key)
            candidate = self._read(residual, period_x, period_y, steps=(-4, -3, -2, -1, 0, 1, 2, 3, 4))
            if candidate is not None:
                scored.append(candidate)
        scored.sort(key=lambda candidate: -candidate.score)
        chosen = ([native] if native is not None else []) + scored
        if not chosen:
            return [Candidate(np.zeros(self._n_bits), 0.0, "smaller than one tile")]
        return chosen[: self._config.candidates]

    def _read(self, residual: Float, period_x: float, period_y: float, steps: tuple[int, ...]) -> Candidate | None:
        best: tuple[float, Float, tuple[int, int], float, float] | None = None
        for step in steps:
            factor = 1 + 0.0012 * step
            px, py = period_x * factor, period_y * factor
            folded = _fold(residual, px, py)
            if folded is None:
                continue
            correlation = np.fft.irfft2(np.fft.rfft2(folded) * self._pilot_spectrum, s=folded.shape)
            peak = np.unravel_index(int(np.argmax(correlation)), correlation.shape)
            score = float((correlation[peak] - correlation.mean()) / (correlation.std() + 1e-12))
            if best is None or score > best[0]:
                best = (score, folded, (int(peak[0]), int(peak[1])), px, py)
        if best is None:
            return None
        score, folded, (dy, dx), px, py = best
        aligned = np.roll(folded, (-dy, -dx), axis=(0, 1))
        side = CANONICAL_CHIP
        chips = aligned.reshape(CHIPS, side, CHIPS, side).sum(axis=(1, 3))
        chips /= float(np.std(chips)) + 1e-12
        values = chips.ravel()[self._layout.data_positions] * self._layout.data_sign
        soft = np.bincount(self._layout.data_bit, weights=values, minlength=self._n_bits)
        return Candidate(soft.astype(np.float64), score, f"period {px:.2f}×{py:.2f} px, offset ({dx}, {dy})")


def _whiten(luma_sum: Float) -> Float:
    """Keep the fine structure where the mark lives, flattened so busy picture areas cannot outvote it.

    High-pass, then divide by the local residual energy and clip: measured on compressed and cropped clips,
    this robust correlator reads 5-10 points more bits than a plain high-pass (whose edges dominate the sum).
    """
    high = luma_sum - cv2.GaussianBlur(luma_sum, (0, 0), 2.0)
    local = np.sqrt(cv2.GaussianBlur(high * high, (0, 0), 4.0))
    high /= local + 0.5 * float(np.median(local)) + 1e-6
    scale = float(np.median(np.abs(high))) * 1.4826 + 1e-6
    return np.asarray(np.clip(high / scale, -2.0, 2.0), dtype=np.float32)


def _period_candidates(residual: Float, per_axis: int = 3) -> list[tuple[float, float]]:
    """Tile periods in pixels suggested by peaks of the residual's autocorrelation along x and y."""
    height, width = residual.shape
    centred = residual - residual.mean()
    spectrum = np.fft.rfft2(centred, s=(2 * height, 2 * width))
    auto = np.fft.irfft2(np.abs(spectrum) ** 2, s=(2 * height, 2 * width))
    lo = 40
    peaks_x = _axis_peaks(auto[0, :width] / np.maximum(width - np.arange(width), 1), lo, int(width / 1.8), per_axis)
    peaks_y = _axis_peaks(auto[:height, 0] / np.maximum(height - np.arange(height), 1), lo, int(height / 1.8), per_axis)
    pairs: list[tuple[float, float]] = []
    # Most attacks scale both axes alike: pair each x peak with the y peak nearest to it, then try the rest.
    for px in peaks_x:
        if peaks_y:
            py = min(peaks_y, key=lambda p: abs(p - px))
            if abs(py - px) / px < 0.03:
                pairs.append((px, py))
            pairs.append((px, px))
    for py in peaks_y:
        pairs.append((py, py))
    for px in peaks_x:
        for py in peaks_y:
            pairs.append((px, py))
    return pairs


def _axis_peaks(profile: npt.NDArray[np.float64], lo: int, hi: int, count: int) -> list[float]:
    if hi <= lo + 2:
        return []
    segment = profile[lo:hi]
    # Prominence over a running median removes the slowly varying correlation of the picture itself.
    width = 9
    padded = np.pad(segment, width // 2, mode="edge")
    windows = np.lib.stride_tricks.sliding_window_view(padded, width)
    prominence = segment - np.median(windows, axis=1)
    is_peak = np.zeros(segment.size, dtype=bool)
    is_peak[1:-1] = (prominence[1:-1] > prominence[:-2]) & (prominence[1:-1] >= prominence[2:])
    indices = np.flatnonzero(is_peak)
    indices = indices[np.argsort(-prominence[indices])][:count]
    peaks = []
    for i in indices:
        left, mid, right = segment[i - 1], segment[i], segment[i + 1]
        denominator = left - 2 * mid + right
        shift = 0.5 * (left - right) / denominator if denominator < 0 else 0.0
        peaks.append(lo + float(i) + float(np.clip(shift, -0.5, 0.5)))
    return peaks


def _fold(residual: Float, period_x: float, period_y: float) -> Float | None:
    """Resample so one tile is 128 px, then sum all tiles into one (partial tiles included, wrapped)."""
    tile = CHIPS * CANONICAL_CHIP
    height, width = residual.shape
    new_w, new_h = round(width * tile / period_x), round(height * tile / period_y)
    if new_w < tile or new_h < tile:
        return None
    interpolation = cv2.INTER_AREA if new_w < width else cv2.INTER_LINEAR
    scaled = cv2.resize(residual, (new_w, new_h), interpolation=interpolation)
    pad_h, pad_w = -new_h % tile, -new_w % tile
    padded = np.pad(scaled, ((0, pad_h), (0, pad_w)))
    folded = padded.reshape(padded.shape[0] // tile, tile, padded.shape[1] // tile, tile).sum(axis=(0, 2))
    return np.asarray(folded, dtype=np.float32)


@dataclass(frozen=True)
class TiledMethod:
    config: TiledConfig = TiledConfig()
    name: str = "tiled"

    def embedder(self, key: WatermarkKey, codeword: Bits, *, width: int, height: int) -> TiledEmbedder:
        return TiledEmbedder(key, codeword, width=width, height=height, config=self.config)

    def accumulator(self, key: WatermarkKey, n_bits: int) -> TiledAccumulator:
        return TiledAccumulator(key, n_bits, self.config)


__all__ = ["SoftBits", "TiledConfig", "TiledMethod"]
