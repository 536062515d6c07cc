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

import hashlib
import hmac
from dataclasses import dataclass, replace

import cv2
import numpy as np
import numpy.typing as npt

from watermark.errors import UnreadableVideoError
from watermark.methods.base import Candidate, Frame, SoftBits
from watermark.payload import CODEWORD_BITS, Bits, Payload, WatermarkKey

CHIPS = 32
"""The tile is CHIPS × CHIPS chips."""
CANONICAL_CHIP = 4
"""Detection resamples the picture so that a chip is this many pixels (a 128-pixel tile)."""
PILOT_EVERY = 4
"""One chip in this many is a pilot chip (keyed, payload-independent) used to find the tile's offset and scale."""
TILE_SIGN_GRID = 8
"""Data chips carry a keyed ±1 sign per tile position (grid position modulo this), so no two tiles of a frame
(up to 8 × 8 tiles, about 2 × 2 times the shorter side) carry the same data pattern, and folding the picture by
the tile period averages the data away."""
SIGN_FAMILIES = 1
"""Version 2 gave each output one of 16 keyed families of tile signs so that averaging many outputs of one
deployment found no shared pattern; the data's sign changing from frame to frame (``FRAME_RUNS``) already
leaves nothing in such an average, and searching 16 families per frame would cost more than the whole read."""
FRAME_RUNS = (6, 12)
"""The data chips' sign (the pilot's stays) flips from frame to frame in runs of 6 to 12 frames, their lengths
drawn from a keyed stream of the codeword: any clip of more than 12 frames holds both signs, so averaging it
over time cannot take the data away with the picture (subtracting a static estimate leaves the data of one sign
or the other in every frame), while the reader, which finds each frame's sign from the frames themselves, needs
no frame index: trimming, dropping or resampling frames changes nothing for it. Runs this long keep what an
inter-coded video carries over from frame to frame: with runs of 1-3 frames H.264 at CRF 35 kept 1 clip of 5
marked (bit accuracy 0.76; version 2: 4 of 5, 0.94), with 6-12 two such clips read at 0.94 and 0.95.
Marking the same frames twice with one key and payload flips alike (the stream restarts with the marker), so the
marks add up."""
MIN_FRAMES_TO_CENTRE = FRAME_RUNS[1] + 1
"""From this many frames (both signs surely present) the reader removes what all frames share before reading:
the picture's static detail and the pilot. Shorter clips, which may hold one sign only, are read as they are."""
READ_GROUP = 1
"""The reader could sum this many consecutive frames before reading them as one (a run of signs is 6-12 frames
long), dividing the per-frame work. Measured on lp_d5 (H.264 CRF 35): bit accuracy 0.939 frame by frame, 0.934
in pairs, 0.918 in threes (a group across a sign change loses its data), and in pairs the evidence under fresh
noise grew less with frames (tests/watermark/test_tiled.py): robustness first, so frame by frame."""
SHIFT_SEARCH_FRAMES = 48
SYNC_SCORE_SHARE = 0.5
SYNC_MIN_SCORE = 5.0
"""Scale hypotheses whose pilot correlates less than ``SYNC_SCORE_SHARE`` of the best one's, or under this peak
(in standard deviations of the correlation over a 128² tile: noise peaks near 4.5 there, where the offset it
gives is a guess), are not read; the native scale and the frame's origin always are."""
"""The tile-index shift is chosen on at most this many frames spread over the clip; the bits on all of them."""
TILE_INDEX_SHIFTS = range(-1, 4)
"""Tile-index shifts tried per axis: crops that remove up to three whole tiles from the top and left, and -1 for
a tile offset found a pixel or two past the frame's origin (so that the partial tile before it is tile -1)."""

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
    """Flat areas get strength × floor ≈ 1.17 levels (RMS) ..."""
    flat_floor: float = 0.2
    """... and strength × flat_floor ≈ 0.64 levels where the picture is smooth, without even fine grain (a flat
    cartoon, a painted or retouched face): at the mask floor those showed the pattern as mottling at 2×
    (bench/watermark_smooth.py). Real footage carries sensor grain nearly everywhere and keeps the mask it had."""
    texture_window: int = 15
    """Odd, in 1/4-size pixels: grain is the local median of the finest detail (Gaussian σ 0.8 high-pass) over
    this window, so a lone edge (an outline, a jaw against a plain backdrop) does not count as grain and the
    smooth picture beside it is treated as smooth. 0: no smoothness test (the mask before it)."""
    smooth_below: float = 0.25
    """Median fine detail (levels) under which a pixel is smooth and gets ``flat_floor`` ..."""
    grain_above: float = 0.75
    """... and over which it keeps the texture mask; in between, a linear blend."""
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
    """Synchronisation hypotheses decoded per clip, besides the frame's own origin (the p-value is multiplied by
    twice their number)."""
    kept_pixels: int = 64_000_000
    """The reader keeps at most this many bytes of luma (sums of ``READ_GROUP`` frames, two bytes a pixel) to
    read the data group by group after synchronising; a longer clip keeps an evenly spread subset of its groups
    (the sum still takes every frame)."""

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
    tile_signs: Float
    """(SIGN_FAMILIES, TILE_SIGN_GRID, TILE_SIGN_GRID, CHIPS, CHIPS): the keyed sign of every chip in each tile
    position, per family; +1 on pilot chips, which stay the same everywhere so the period and offset can be found."""

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
        # A separate stream, so the pilot and bit layout above stay what they were.
        tile_rng = key.rng(b"tiled-tile-signs-v3")
        shape = (SIGN_FAMILIES, TILE_SIGN_GRID, TILE_SIGN_GRID, CHIPS, CHIPS)
        tile_signs = tile_rng.integers(0, 2, shape).astype(np.float32) * 2 - 1
        tile_signs[:, :, :, pilot.reshape(CHIPS, CHIPS)] = 1.0
        return cls(pilot.reshape(CHIPS, CHIPS), pilot_sign, data_positions, data_bit, signs[data_positions], tile_signs)

    def chips(self, codeword: Bits) -> Float:
        values = self.pilot_sign.ravel().copy()
        values[self.data_positions] = self.data_sign * (codeword[self.data_bit].astype(np.float32) * 2 - 1)
        return values.reshape(CHIPS, CHIPS)

    def chip_grid(self, codeword: Bits, family: int, rows: int, cols: int) -> Float:
        """The chips of ``rows`` × ``cols`` tiles from the frame's top-left, each tile with its own data signs."""
        base = self.chips(codeword)
        row_index = np.arange(rows) % TILE_SIGN_GRID
        col_index = np.arange(cols) % TILE_SIGN_GRID
        tiles = self.tile_signs[family][row_index][:, col_index] * base  # (rows, cols, CHIPS, CHIPS)
        return np.ascontiguousarray(tiles.transpose(0, 2, 1, 3).reshape(rows * CHIPS, cols * CHIPS))


class FrameSigns:
    """The data's sign frame after frame for one output (see ``FRAME_RUNS``): a keyed stream of the codeword."""

    def __init__(self, key: WatermarkKey, codeword: Bits) -> None:
        digest = hmac.new(key.derive(b"tiled-frame-signs-v3", 32), codeword.tobytes(), hashlib.sha256).digest()
        self._rng = np.random.Generator(np.random.PCG64(int.from_bytes(digest, "big")))
        self._sign = 1.0 if self._rng.integers(0, 2) else -1.0
        self._left = 0

    def next(self) -> float:
        if self._left == 0:
            self._sign = -self._sign
            self._left = int(self._rng.integers(FRAME_RUNS[0], FRAME_RUNS[1] + 1))
        self._left -= 1
        return self._sign


def _render(chips: Float, chip: int) -> Float:
    """A tile of chips as pixels, edges softened so the pattern has no hard blocks."""
    tile = np.kron(chips, np.ones((chip, chip), dtype=np.float32))
    # Smooth with wrap-around so the tile stays seamless when repeated.
    pad = 2 * chip
    padded = np.pad(tile, pad, mode="wrap")
    blurred = cv2.GaussianBlur(padded, (0, 0), sigmaX=0.35 * chip)
    return np.ascontiguousarray(blurred[pad:-pad, pad:-pad])


def _render_grid(chips: Float, chip: int) -> Float:
    """A grid of chips (several different tiles) as pixels, softened like ``_render`` (no wrap: it does not repeat)."""
    pixels = np.kron(chips, np.ones((chip, chip), dtype=np.float32))
    return np.asarray(
        cv2.GaussianBlur(pixels, (0, 0), sigmaX=0.35 * chip, borderType=cv2.BORDER_REFLECT), dtype=np.float32
    )


class TiledEmbedder:
    def __init__(self, key: WatermarkKey, codeword: Bits, *, width: int, height: int, config: TiledConfig) -> None:
        layout = _Layout.for_key(key, codeword.size)
        chip = chip_size(width, height, config)
        rows = -(-height // (CHIPS * chip))
        cols = -(-width // (CHIPS * chip))
        grid = layout.chip_grid(codeword, 0, rows, cols)
        pilot = np.tile(layout.pilot_sign, (rows, cols))
        # Rendering is linear and the pilot and data chips are disjoint: render each once, add or subtract.
        pilot_px = _render_grid(pilot, chip)[:height, :width]
        data_px = _render_grid(grid - pilot, chip)[:height, :width]
        # Unit RMS times the strength, so embedding is one multiply by the mask.
        scale = config.strength / float(np.sqrt(np.mean((pilot_px + data_px) ** 2)))
        self._patterns = {sign: (scale * (pilot_px + sign * data_px)).astype(np.float32) for sign in (1.0, -1.0)}
        self._signs = FrameSigns(key, codeword)
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
        shaped = _full_size(small, frame) * self._patterns[self._signs.next()]
        delta = np.rint(shaped).astype(np.int16)
        if near_budget and config.max_rms is not None:
            # The budget was met at 1/4 size; the full-size product, rounded to whole levels, can differ a
            # little, so hold it exactly on what is added (a few tries: rounding moves with the scale).
            for _ in range(4):
                rms = float(np.sqrt(_mean_square(delta.astype(np.float32))))
                if rms <= config.max_rms:
                    break
                shaped *= config.max_rms / rms * 0.998
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
    mask = np.clip(activity, config.mask_floor, config.mask_ceiling)
    if config.texture_window:
        # Median fine detail in 1/16-level steps (medianBlur wants uint8 beyond a 5-px window).
        fine = np.abs(small_f - cv2.GaussianBlur(small_f, (0, 0), 0.8))
        steps = np.clip(fine * 16.0, 0, 255).astype(np.uint8)
        grain = cv2.GaussianBlur(cv2.medianBlur(steps, config.texture_window).astype(np.float32) / 16.0, (0, 0), 2.0)
        textured = np.clip((grain - config.smooth_below) / (config.grain_above - config.smooth_below), 0, 1)
        mask = config.flat_floor + (mask - config.flat_floor) * textured
    mask = mask * tone
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
    """Sums luma over frames to synchronise on the static pilot, and keeps the frames to read the data, whose
    sign changes from frame to frame, once the tiles are found (in ``candidates``)."""

    wants_luma = True

    def __init__(self, key: WatermarkKey, n_bits: int, config: TiledConfig) -> None:
        self._layout = _Layout.for_key(key, n_bits)
        self._n_bits = n_bits
        self._config = config
        self._sum: npt.NDArray[np.float64] | None = None
        self._kept: list[npt.NDArray[np.uint16]] = []
        self._group: npt.NDArray[np.uint16] | None = None
        self._grouped = 0
        self._stride = 1
        self.frames = 0
        data = self._layout.data_positions
        grid = self._layout.tile_signs[0].reshape(TILE_SIGN_GRID**2, CHIPS * CHIPS)[:, data]
        # Per tile cell, the sign that takes a data chip back to its codeword bit (tile sign × keyed chip sign).
        self._cell_signs = np.ascontiguousarray(grid * self._layout.data_sign, dtype=np.float32)
        self._known = _known_signs(key, n_bits)
        tile = _render(self._layout.pilot_sign, CANONICAL_CHIP)
        self._pilot_spectrum = np.conj(np.fft.rfft2(tile - tile.mean()))

    @property
    def hypotheses(self) -> int:
        # One more than the candidates kept (the frame's own origin), each read in the orientation its version
        # bits point to: choosing between two orientations is bounded by trying both.
        return 2 * (self._config.candidates + 1)

    def add(self, frame: Frame) -> None:
        luma = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY) if frame.ndim == 3 else frame
        if self._sum is None:
            self._sum = np.zeros(luma.shape, dtype=np.float64)
        elif luma.shape != self._sum.shape:
            raise UnreadableVideoError(f"frame size changed mid-video ({self._sum.shape} → {luma.shape})")
        self._sum += luma
        if (self.frames // READ_GROUP) % self._stride == 0:
            if self._group is None:
                self._group = luma.astype(np.uint16)
            else:
                np.add(self._group, luma, out=self._group)
            self._grouped += 1
            if self._grouped == READ_GROUP:
                self._keep_group()
        self.frames += 1

    def _keep_group(self) -> None:
        if self._group is None:
            return
        self._kept.append(self._group)
        self._group, self._grouped = None, 0
        if len(self._kept) * self._kept[0].size * 2 > self._config.kept_pixels:
            # A long clip: keep every other group (evenly spread), and from now on every 2 × stride-th.
            self._kept = self._kept[::2]
            self._stride *= 2

    def candidates(self) -> list[Candidate]:
        if self._sum is None:
            raise UnreadableVideoError("no frames to read a watermark from")
        self._keep_group()
        residual = _whiten(self._sum.astype(np.float32))
        height, width = residual.shape
        # Most handling keeps the picture's scale (re-encoding, brightness, trimming, frame rate): then the
        # period is exactly what the embedder chose for these dimensions, and needs no estimate.
        native_period = float(CHIPS * chip_size(width, height, self._config))
        syncs: list[_Sync] = []
        native = self._sync(residual, native_period, native_period, steps=(0,))
        if native is not None:
            syncs.append(native)
        scored: list[_Sync] = []
        seen = {(round(native_period), round(native_period))}
        for period_x, period_y in _period_candidates(residual):
            key = (round(period_x), round(period_y))
            if key in seen:
                continue
            seen.add(key)
            found = self._sync(residual, period_x, period_y, steps=(-4, -3, -2, -1, 0, 1, 2, 3, 4))
            if found is not None:
                scored.append(found)
        scored.sort(key=lambda sync: -sync.score)
        syncs = (syncs + scored)[: self._config.candidates]
        # Reading a sync costs a resampling of every frame: those whose pilot is far weaker than the best are noise.
        strongest = max((sync.score for sync in syncs), default=0.0)
        syncs = [
            sync for sync in syncs if sync is native or sync.score >= max(SYNC_MIN_SCORE, SYNC_SCORE_SHARE * strongest)
        ]
        if native is not None:
            # The frame's own origin too: a clip that was not cropped needs no pilot to find its tiles, so an
            # attacker who estimates and removes the pilot (the one static part of the mark) still loses.
            syncs.append(replace(native, dy=0, dx=0, origin=True))
        if not syncs:
            return [Candidate(np.zeros(self._n_bits), 0.0, "smaller than one tile")]
        return [self._read(sync, chips) for sync, chips in zip(syncs, self._data_chips(syncs), strict=True)]

    def _sync(self, residual: Float, period_x: float, period_y: float, steps: tuple[int, ...]) -> _Sync | None:
        """The scale trial around the period (``steps``) and tile offset where the static pilot correlates best."""
        best: _Sync | None = None
        for step in steps:
            factor = 1 + 0.0012 * step
            px, py = period_x * factor, period_y * factor
            scaled = _scaled(residual, px, py)
            if scaled is None:
                continue
            folded = _fold_scaled(scaled)
            correlation = np.fft.irfft2(np.fft.rfft2(folded) * self._pilot_spectrum, s=folded.shape)
            centred = correlation - correlation.mean()
            peak = np.unravel_index(int(np.argmax(np.abs(centred))), centred.shape)
            score = float(np.abs(centred[peak]) / (correlation.std() + 1e-12))
            if best is None or score > best.score:
                best = _Sync(px, py, int(peak[0]), int(peak[1]), score)
        return best

    def _data_chips(self, syncs: list[_Sync]) -> list[Float]:
        """Per sync, every kept frame's data chips, (frames, tiles, data chips): each frame whitened on its own."""
        per_sync: list[list[Float]] = [[] for _ in syncs]
        data = self._layout.data_positions
        # One local-energy map for the clip, from up to 8 frames spread over it: a picture's busy and flat areas
        # change slowly, and one map spares two full-size resamplings a frame.
        sampled = np.unique(np.linspace(0, len(self._kept) - 1, min(len(self._kept), 8)).round().astype(np.intp))
        divisor = _local_energy([_highpass(self._kept[int(index)]) for index in sampled])
        for luma in self._kept:
            white = _whiten(luma.astype(np.float32), divisor)
            resampled: dict[tuple[float, float], Float | None] = {}
            for chips, sync in zip(per_sync, syncs, strict=True):
                if (sync.px, sync.py) not in resampled:
                    resampled[sync.px, sync.py] = _scaled(white, sync.px, sync.py)
                scaled = resampled[sync.px, sync.py]
                assert scaled is not None, "a sync is only found where a tile fits"
                tiles = _tile_chips(scaled, sync.dy, sync.dx)
                chips.append(tiles.reshape(tiles.shape[0] * tiles.shape[1], CHIPS * CHIPS)[:, data])
        stacked = []
        for chips in per_sync:
            frames = np.stack(chips)
            per_frame = frames.shape[1] * frames.shape[2]
            means = np.einsum("tgk->t", frames) / per_frame
            spread = np.sqrt(np.maximum(np.einsum("tgk,tgk->t", frames, frames) / per_frame - means**2, 0))
            frames /= (spread + 1e-12)[:, None, None].astype(np.float32)
            if self.frames >= MIN_FRAMES_TO_CENTRE and frames.shape[0] > 1:
                # What stays the same in every frame is the picture (and the pilot), never the data: its sign
                # alternates in runs of a few frames, so the mean over the clip holds little of it.
                frames -= frames.mean(axis=0, keepdims=True)
            stacked.append(frames)
        return stacked

    def _read(self, sync: _Sync, chips: Float) -> Candidate:
        """Soft bits under ``sync``: the tile-index shift whose per-frame bits share one direction best, the frames
        combined along that direction (each frame's sign found by projecting on it), oriented by the version bits."""
        rows, cols = self._grid_shape(sync)
        spread = np.linspace(0, chips.shape[0] - 1, min(chips.shape[0], SHIFT_SEARCH_FRAMES))
        sample = chips[np.unique(spread.round().astype(np.intp))]
        # At the frame's origin the tiles start there (a clip cropped by whole tiles is found through the pilot).
        shift_y, shift_x = 0, 0
        if not sync.origin:
            shares = {
                (y, x): _principal(self._frame_bits(sample, rows, cols, y, x))[2]
                for y in TILE_INDEX_SHIFTS
                for x in TILE_INDEX_SHIFTS
            }
            shift_y, shift_x = max(shares, key=lambda shift: shares[shift])
        direction, share, _ = _principal(self._frame_bits(chips, rows, cols, shift_y, shift_x))
        soft = direction * np.sqrt(share * chips.shape[0])
        if self._known is not None and float(np.dot(soft[: self._known.size], self._known)) < 0:
            soft = -soft
        where = "the frame's origin" if sync.origin else f"offset ({sync.dx}, {sync.dy})"
        return Candidate(
            soft.astype(np.float64),
            sync.score,
            f"period {sync.px:.2f}×{sync.py:.2f} px, {where}, tiles from ({shift_x}, {shift_y}), "
            f"{chips.shape[0]} frames read",
        )

    def _grid_shape(self, sync: _Sync) -> tuple[int, int]:
        assert self._sum is not None
        tile = CHIPS * CANONICAL_CHIP
        height, width = self._sum.shape
        new_w, new_h = round(width * tile / sync.px), round(height * tile / sync.py)
        front_y, front_x = (tile - sync.dy) % tile, (tile - sync.dx) % tile
        return -(-(new_h + front_y) // tile), -(-(new_w + front_x) // tile)

    def _frame_bits(self, chips: Float, rows: int, cols: int, shift_y: int, shift_x: int) -> Float:
        """(frames, n_bits): each frame's soft bits, the tiles taken as starting at tile index (shift_y, shift_x)."""
        row_index = (np.arange(rows) + shift_y) % TILE_SIGN_GRID
        col_index = (np.arange(cols) + shift_x) % TILE_SIGN_GRID
        cells = (row_index[:, None] * TILE_SIGN_GRID + col_index[None, :]).ravel()
        # No BLAS (einsum's optimize=False): its thread pool made such products 50 ms a call on a busy machine.
        values = np.einsum("tgk,gk->tk", chips, self._cell_signs[cells])
        frames = values.shape[0]
        slots = (np.arange(frames)[:, None] * self._n_bits + self._layout.data_bit[None, :]).ravel()
        bits = np.bincount(slots, weights=values.ravel(), minlength=frames * self._n_bits)
        return bits.reshape(frames, self._n_bits).astype(np.float32)


@dataclass(frozen=True)
class _Sync:
    """Where the tiles are: the period (px per tile, after any resize) and the tile offset in 128-px tiles."""

    px: float
    py: float
    dy: int
    dx: int
    score: float
    origin: bool = False


def _principal(bits: Float, iterations: int = 40) -> tuple[Float, float, float]:
    """The unit direction the frames' bit vectors share most (up to sign), the share of their energy along it,
    and that energy.

    Each frame holds ± the same codeword evidence (its sign unknown) plus noise: the leading right singular vector
    of the (frames, bits) matrix, by power iteration without BLAS. The share is about 1/frames + 1/bits for noise
    and grows towards 1 with the mark, whatever the frames' signs. The energy compares tile-index shifts: their
    chips are the same up to sign, so it is the share over a common total; the share alone is 1 for one frame,
    whatever the shift."""
    total = float(np.einsum("tb,tb->", bits, bits)) + 1e-12
    norms = np.einsum("tb,tb->t", bits, bits)
    direction = bits[int(np.argmax(norms))].astype(np.float64)
    direction /= np.sqrt(float(np.dot(direction, direction))) + 1e-12
    along = np.zeros(bits.shape[0])
    for _ in range(iterations):
        along = np.einsum("tb,b->t", bits, direction)
        direction = np.einsum("tb,t->b", bits, along)
        direction /= np.sqrt(float(np.dot(direction, direction))) + 1e-12
    along = np.einsum("tb,b->t", bits, direction)
    energy = float(np.dot(along, along))
    return direction.astype(np.float32), energy / total, energy


def _known_signs(key: WatermarkKey, n_bits: int) -> Float | None:
    """±1 for the codeword bits every payload of this version shares (its version byte, scrambled with the key's
    keystream: the first 8 bits), which tell a read's orientation; None for another codeword length."""
    if n_bits != CODEWORD_BITS:
        return None
    shared = Payload(0).codeword(key)[:8]
    return (shared.astype(np.float32) * 2 - 1).astype(np.float32)


def _whiten(luma: Float, divisor: Float | None = None) -> Float:
    """Keep the fine structure where the mark lives, flattened so busy picture areas cannot outvote it.

    High-pass, then divide by the local residual energy and clip: measured on compressed and cropped clips,
    this robust correlator reads 5-10 points more bits than a plain high-pass (whose edges dominate the sum).
    ``divisor``: that local energy, when it is already known (``_local_energy`` of a few frames of the clip).
    """
    high = luma - cv2.GaussianBlur(luma, (0, 0), 2.0)
    high /= _local_energy([high]) if divisor is None else divisor
    # The median of every 4th pixel each way: the same level to a fraction of a percent, a sixteenth of the time.
    scale = float(np.median(np.abs(high[::4, ::4]))) * 1.4826 + 1e-6
    high *= np.float32(1.0 / scale)
    return np.asarray(np.clip(high, -2.0, 2.0, out=high), dtype=np.float32)


def _highpass(luma: npt.NDArray[np.uint16]) -> Float:
    values = luma.astype(np.float32)
    return np.asarray(values - cv2.GaussianBlur(values, (0, 0), 2.0), dtype=np.float32)


def _local_energy(highs: list[Float]) -> Float:
    """The divisor ``_whiten`` uses: the local RMS of high-passed frames (σ 4 px, taken at 1/4 size: the same
    smooth map at a tenth of the time), plus half its median so flat areas are not blown up."""
    height, width = highs[0].shape
    small_size = (max(1, width // 4), max(1, height // 4))
    small = np.zeros((small_size[1], small_size[0]), dtype=np.float32)
    for high in highs:
        small += cv2.resize(high * high, small_size, interpolation=cv2.INTER_AREA)
    small /= len(highs)
    local = np.sqrt(cv2.resize(cv2.GaussianBlur(small, (0, 0), 1.0), (width, height), interpolation=cv2.INTER_LINEAR))
    return np.asarray(local + 0.5 * float(np.median(local[::4, ::4])) + 1e-6, dtype=np.float32)


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


def _scaled(residual: Float, period_x: float, period_y: float) -> Float | None:
    """The residual resampled so that one tile is 128 px (None when that leaves less than one tile)."""
    tile = CHIPS * CANONICAL_CHIP
    height, width = residual.shape
    new_w, new_h = round(width * tile / period_x), round(height * tile / period_y)
    if new_w < tile or new_h < tile:
        return None
    if (new_w, new_h) == (width, height):
        return residual
    interpolation = cv2.INTER_AREA if new_w < width else cv2.INTER_LINEAR
    return np.asarray(cv2.resize(residual, (new_w, new_h), interpolation=interpolation), dtype=np.float32)


def _fold_scaled(scaled: Float) -> Float:
    """Sum all 128-px tiles into one (partial tiles included, wrapped): the pilot, the same in every tile, adds up."""
    tile = CHIPS * CANONICAL_CHIP
    padded = np.pad(scaled, ((0, -scaled.shape[0] % tile), (0, -scaled.shape[1] % tile)))
    folded = padded.reshape(padded.shape[0] // tile, tile, padded.shape[1] // tile, tile).sum(axis=(0, 2))
    return np.asarray(folded, dtype=np.float32)


def _tile_chips(scaled: Float, dy: int, dx: int) -> Float:
    """Chip sums of every tile (rows, cols, CHIPS, CHIPS), tiles starting at (dy, dx) modulo 128; the partial
    tile before them, if any, is the first row or column. Chips cut by the picture's edges are 0."""
    tile, side = CHIPS * CANONICAL_CHIP, CANONICAL_CHIP
    front_y, front_x = (tile - dy) % tile, (tile - dx) % tile
    height, width = scaled.shape
    rows, cols = -(-(height + front_y) // tile), -(-(width + front_x) // tile)
    # Chip k of the grid starts at picture row side × k - front_y: the first whole one is k = ceil(front / side).
    first_y, first_x = -(-front_y // side), -(-front_x // side)
    top, left = side * first_y - front_y, side * first_x - front_x
    count_y, count_x = (height - top) // side, (width - left) // side
    grid = np.zeros((rows * CHIPS, cols * CHIPS), dtype=np.float32)
    if count_y > 0 and count_x > 0:
        window = scaled[top : top + side * count_y, left : left + side * count_x]
        # Area resampling by a whole factor is the block mean: OpenCV's is ten times numpy's reshape-and-sum.
        means = cv2.resize(window, (count_x, count_y), interpolation=cv2.INTER_AREA)
        grid[first_y : first_y + count_y, first_x : first_x + count_x] = means * np.float32(side * side)
    return np.ascontiguousarray(grid.reshape(rows, CHIPS, cols, CHIPS).transpose(0, 2, 1, 3))


@dataclass(frozen=True)
class TiledMethod:
    config: TiledConfig = TiledConfig()
    name: str = "tiled"

    def embedder(self, key: WatermarkKey, codeword: Bits, *, width: int, height: int) -> TiledEmbedder:
        return TiledEmbedder(key, codeword, width=width, height=height, config=self.config)

    def accumulator(self, key: WatermarkKey, n_bits: int) -> TiledAccumulator:
        return TiledAccumulator(key, n_bits, self.config)


__all__ = ["SoftBits", "TiledConfig", "TiledMethod"]
