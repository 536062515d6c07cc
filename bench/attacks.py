"""What a clip goes through in the wild, to measure how well a watermark survives it; and unmarked clips, to
measure how often a watermark is claimed where there is none.

An ``Attack`` is a sequence of transforms followed by one or more encoding passes. Frame transforms change pixels
(scale, crop, brightness, contrast, grey); time transforms only choose which frames are shown when (trim, frame
rate). Time transforms never blend frames, so they commute with frame transforms and run first (frames they drop
are never transformed). Every pass writes an H.264 (or H.265) yuv420p MP4; the output keeps the source's frame
rate unless a time transform changes it, and odd sizes lose their last row/column. Attacks that change no pixels
hand the decoded YUV pictures straight to the encoder, as ``ffmpeg -i in.mp4 -crf N out.mp4`` would, so a pure
re-encode adds no RGB round trip of its own.

Pure PyAV + numpy + OpenCV: no ffmpeg command line, and nothing from the engine. The encoding passes are
``watermark.transcode``'s (the product re-encodes a fresh mark the same way before publishing it); everything
here is for measuring and testing, so it lives beside the benches rather than in the installed package
(``tests/watermark`` imports it as ``bench.attacks``).
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import av
import cv2
import numpy as np
import numpy.typing as npt

from watermark.transcode import Encoding, Frame, TimedPictures, VideoEncoder
from watermark.transcode import transcode as watermark_transcode

_T = TypeVar("_T")
_EPS = 1e-6
H265_AVAILABLE = "libx265" in av.codecs_available


def _even(x: float) -> int:
    return max(2, 2 * round(x / 2))


# ------------------------------------------------------------------------------------------------ transforms


class FrameTransform:
    """Changes the pixels of each frame independently of the others."""

    def __call__(self, frame: Frame) -> Frame:
        raise NotImplementedError


class TimeTransform:
    """Chooses which decoded frames are shown at which times; never looks at pixels."""

    def fps(self, fps: float) -> float:
        """The output frame rate for an input at ``fps``."""
        return fps

    def select(self, frames: Iterator[tuple[float, _T]], fps: float) -> Iterator[tuple[float, _T]]:
        """``(seconds, frame)`` pairs in, ``(seconds, frame)`` pairs out, both starting at 0."""
        raise NotImplementedError


Transform = FrameTransform | TimeTransform


@dataclass(frozen=True)
class Resize(FrameTransform):
    """Scale both sides by ``scale`` (rounded to even sizes)."""

    scale: float

    def __call__(self, frame: Frame) -> Frame:
        h, w = frame.shape[:2]
        size = (_even(w * self.scale), _even(h * self.scale))
        # Area averaging is what a proper downscaler does (no aliasing); cubic for the rare upscale.
        interp = cv2.INTER_AREA if self.scale < 1 else cv2.INTER_CUBIC
        return np.ascontiguousarray(cv2.resize(frame, size, interpolation=interp))


@dataclass(frozen=True)
class Crop(FrameTransform):
    """Keep a window of ``area`` of the frame's area (each side × √area), not scaled back.

    The window is the centred one moved by ``shift`` pixels (x, y), then nudged one more pixel wherever its
    corner would still land on a multiple of 8: a crop aligned to the codec's 8/16-pixel blocks would be easier
    on a block-based mark than real crops are.
    """

    area: float
    shift: tuple[int, int] = (5, 3)

    def window(self, width: int, height: int) -> tuple[int, int, int, int]:
        """``(x0, y0, w, h)`` of the kept window in a ``width``×``height`` frame."""
        side = math.sqrt(self.area)
        cw, ch = min(_even(width * side), width), min(_even(height * side), height)
        return _offset(width, cw, self.shift[0]), _offset(height, ch, self.shift[1]), cw, ch

    def __call__(self, frame: Frame) -> Frame:
        h, w = frame.shape[:2]
        x0, y0, cw, ch = self.window(w, h)
        return np.ascontiguousarray(frame[y0 : y0 + ch, x0 : x0 + cw])


def _offset(full: int, kept: int, shift: int) -> int:
    room = full - kept
    x = min(max((room // 2) + shift, 0), room)
    if x % 8 == 0 and room > 0:
        x = x + 1 if x < room else x - 1
    return x


@dataclass(frozen=True)
class Brightness(FrameTransform):
    """Multiply R, G and B by ``factor``, saturating at 0 and 255."""

    factor: float

    def __call__(self, frame: Frame) -> Frame:
        return _affine(frame, self.factor, 0.0)


@dataclass(frozen=True)
class Contrast(FrameTransform):
    """Scale each frame's distance from its own mean grey (BT.601 luma, as PIL's ``ImageEnhance.Contrast``).

    Around the frame's mean rather than a fixed 128, so the attack changes contrast only and leaves the average
    brightness where it was (brightness has attacks of its own).
    """

    factor: float

    def __call__(self, frame: Frame) -> Frame:
        mean = float(cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY).mean())
        return _affine(frame, self.factor, mean * (1 - self.factor))


@dataclass(frozen=True)
class Grayscale(FrameTransform):
    """BT.601 luma in all three channels."""

    def __call__(self, frame: Frame) -> Frame:
        return np.ascontiguousarray(cv2.cvtColor(cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB))


def _affine(frame: Frame, gain: float, offset: float) -> Frame:
    # addWeighted rounds and saturates to uint8 in one pass, without a float copy of the frame.
    return np.asarray(cv2.addWeighted(frame, gain, frame, 0.0, offset), dtype=np.uint8)


@dataclass(frozen=True)
class Trim(TimeTransform):
    """Keep the frames that start within the first ``seconds``."""

    seconds: float

    def select(self, frames: Iterator[tuple[float, _T]], fps: float) -> Iterator[tuple[float, _T]]:
        for t, frame in frames:
            if t + _EPS >= self.seconds:
                return
            yield t, frame


@dataclass(frozen=True)
class Resample(TimeTransform):
    """Constant ``target`` fps by timestamp: each output time shows the latest source frame at or before it.

    Going down (30 → 24) drops frames (every fifth one), going up repeats them; nothing is blended.
    """

    target: float

    def fps(self, fps: float) -> float:
        return self.target

    def select(self, frames: Iterator[tuple[float, _T]], fps: float) -> Iterator[tuple[float, _T]]:
        k = 0
        previous: tuple[float, _T] | None = None
        for t, frame in frames:
            if previous is not None:
                while k / self.target < t - _EPS:
                    yield k / self.target, previous[1]
                    k += 1
            previous = (t, frame)
        if previous is None:
            return
        # The last source frame lasts one source frame duration.
        end = previous[0] + 1 / fps
        while k / self.target < end - _EPS:
            yield k / self.target, previous[1]
            k += 1


# ------------------------------------------------------------------------------------------------- encoding


def transcode(src: Path, dst: Path, transforms: Sequence[Transform], encoding: Encoding, *, threads: int = 0) -> int:
    """Decode ``src``, apply ``transforms``, encode ``dst`` in one pass; returns the frames written."""
    time_ops = [t for t in transforms if isinstance(t, TimeTransform)]
    frame_ops = [t for t in transforms if isinstance(t, FrameTransform)]

    def retime(timed: TimedPictures, fps: float) -> tuple[TimedPictures, float]:
        for time_op in time_ops:
            timed = time_op.select(timed, fps)
            fps = time_op.fps(fps)
        return timed, fps

    def transform(rgb: Frame) -> Frame:
        for op in frame_ops:
            rgb = op(rgb)
        return rgb

    return watermark_transcode(
        src, dst, encoding, retime=retime if time_ops else None, transform=transform if frame_ops else None,
        threads=threads,
    )  # fmt: skip


@dataclass(frozen=True)
class Attack:
    """Transforms, then encoding passes: the first pass encodes the transformed frames, each further pass
    decodes the previous one and encodes it again unchanged."""

    name: str
    transforms: tuple[Transform, ...] = ()
    encodings: tuple[Encoding, ...] = (Encoding(),)

    def __post_init__(self) -> None:
        if not self.encodings:
            raise ValueError(f"attack {self.name!r} needs at least one encoding pass")

    def describe(self) -> str:
        steps = [_describe(t) for t in self.transforms] + [str(e) for e in self.encodings]
        return " → ".join(steps)

    def then(self, *transforms: Transform, name: str | None = None) -> Attack:
        """This attack with ``transforms`` added after its own (same encodings)."""
        return replace(self, name=name or self.name, transforms=self.transforms + transforms)

    def apply(self, src: Path, dst: Path, *, threads: int = 0) -> None:
        """Write the attacked ``src`` to ``dst`` (MP4), atomically; ``threads`` for each encoder (0: auto)."""
        dst = Path(dst)
        with tempfile.TemporaryDirectory(prefix=".attack-", dir=dst.parent) as tmp:
            current = Path(src)
            for i, encoding in enumerate(self.encodings):
                out = Path(tmp) / f"pass{i}.mp4"
                transcode(current, out, self.transforms if i == 0 else (), encoding, threads=threads)
                current = out
            os.replace(current, dst)


def _describe(t: Transform) -> str:
    match t:
        case Resize(scale=s):
            return f"resize ×{s:g}"
        case Crop(area=a, shift=(dx, dy)):
            return f"crop {a:g} of area (side ×{math.sqrt(a):.3f}), centre {dx:+d},{dy:+d} px, off the 8-px grid"
        case Brightness(factor=f):
            return f"RGB ×{f:g}"
        case Contrast(factor=f):
            return f"contrast ×{f:g} around the frame's mean grey"
        case Grayscale():
            return "grey (BT.601)"
        case Trim(seconds=s):
            return f"first {s:g} s"
        case Resample(target=f):
            return f"resample to {f:g} fps (latest frame at or before each time)"
    return repr(t)


CROP_AREA = 0.71


def standard_attacks() -> list[Attack]:
    """``identity`` (the baseline) then the standard set; ``h265_crf28`` only where PyAV has libx265."""
    crop = Crop(CROP_AREA)
    attacks = [Attack("identity")]
    attacks += [Attack(f"h264_crf{crf}", encodings=(Encoding(crf),)) for crf in (18, 23, 28, 35, 40)]
    if H265_AVAILABLE:
        attacks.append(Attack("h265_crf28", encodings=(Encoding(28, "libx265", "veryfast"),)))
    attacks += [
        Attack("resize_0.5", (Resize(0.5),)),
        Attack("resize_0.71", (Resize(0.71),)),
        Attack("crop_0.71", (crop,)),
        Attack("brightness_0.5", (Brightness(0.5),)),
        Attack("brightness_1.5", (Brightness(1.5),)),
        Attack("contrast_0.5", (Contrast(0.5),)),
        Attack("contrast_1.5", (Contrast(1.5),)),
        Attack("reencode_twice", encodings=(Encoding(23), Encoding(23))),
        Attack("trim_1s", (Trim(1.0),)),
        Attack("fps_30_to_24", (Resample(24.0),)),
        Attack("grayscale", (Grayscale(),)),
        Attack("combo_crf30_crop_brightness", (crop, Brightness(0.5)), (Encoding(30),)),
    ]
    return attacks


def get_attack(name: str) -> Attack:
    for attack in standard_attacks():
        if attack.name == name:
            return attack
    raise KeyError(f"no attack named {name!r}; known: {', '.join(a.name for a in standard_attacks())}")


# ------------------------------------------------------------------------------------ unmarked test material


@dataclass(frozen=True)
class UnmarkedVariant:
    """An unmarked clip, described; ``write(path)`` makes it (picklable, so a process pool can)."""

    name: str
    """``category/subject/variant``, e.g. ``clip/lp_d5_hist/h264_crf35`` or ``noise/s16_480x480_dynamic``."""
    category: str
    write: Callable[[Path], None]

    @property
    def filename(self) -> str:
        return self.name.replace("/", "__") + ".mp4"


SYNTHETIC_FPS = 30.0


def unmarked_variant_specs(
    faces: Path | None = None, *, seed: int = 0, clip_seconds: float = 3.0, threads: int = 0
) -> list[UnmarkedVariant]:
    """Every unmarked variant, in a fixed order: real clips first (when ``faces`` has them), then synthetic.

    - ``clip``: each driving clip of the shared faces set as it is (a byte copy), and its first
      ``clip_seconds`` under every standard attack;
    - ``photo``: each source photo (longer side capped at 512) held still, slowly zoomed, slowly panned, and in
      grey, 30 frames each;
    - synthetic, ≤ 48 frames at 30 fps: gaussian noise, flat colours, static and moving gradients, checkerboards,
      sinusoidal gratings, moving shapes.

    Synthetic content is seeded from ``seed`` and the variant's name, so a variant is the same whatever subset
    is written; every pass is encoded with ``Encoding.reproducible()``, so the same variant decodes to the same
    pixels on every run.
    """
    specs: list[UnmarkedVariant] = []
    if faces is not None:
        driving = sorted(p for p in (faces / "driving").glob("*") if p.is_file())
        for clip in driving:
            specs.append(UnmarkedVariant(f"clip/{clip.stem}/original", "clip", partial(_copy, clip)))
            for attack in standard_attacks():
                trimmed = replace(
                    attack,
                    transforms=(Trim(clip_seconds), *attack.transforms),
                    encodings=tuple(e.reproducible() for e in attack.encodings),
                )
                write = partial(_apply, trimmed, clip, threads)
                specs.append(UnmarkedVariant(f"clip/{clip.stem}/{attack.name}", "clip", write))
        photos = sorted(p for p in (faces / "source").glob("*") if p.suffix.lower() in {".jpg", ".jpeg", ".png"})
        for photo in photos:
            for motion in ("still", "zoom", "pan", "grey"):
                write = partial(_write_photo, photo, motion, threads)
                specs.append(UnmarkedVariant(f"photo/{photo.stem}/{motion}", "photo", write))
    specs += _synthetic_specs(seed, threads)
    return specs


def select_evenly(items: Sequence[_T], n: int | None) -> list[_T]:
    """``n`` items spread evenly over ``items`` (all of them when ``n`` is None or not smaller)."""
    if n is None or n >= len(items):
        return list(items)
    if n <= 0:
        return []
    picks = np.unique(np.linspace(0, len(items) - 1, n).round().astype(int))
    return [items[int(i)] for i in picks]


def unmarked_variants(
    workdir: Path | None = None,
    faces: Path | None = None,
    *,
    limit: int | None = None,
    seed: int = 0,
    keep: bool = False,
    threads: int = 0,
) -> Iterator[tuple[UnmarkedVariant, Path]]:
    """Write the unmarked variants one at a time, each just before it is yielded.

    ``limit`` keeps that many, spread evenly over the list so every category stays represented. Files go to
    ``workdir`` (a temporary folder, removed at the end, when None); unless ``keep``, each file is deleted when
    the next one is asked for, so the disk holds one at a time.
    """
    specs = select_evenly(unmarked_variant_specs(faces, seed=seed, threads=threads), limit)
    with tempfile.TemporaryDirectory(prefix="unmarked-") as tmp:
        folder = Path(workdir) if workdir is not None else Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        for spec in specs:
            path = folder / spec.filename
            spec.write(path)
            try:
                yield spec, path
            finally:
                if not keep:
                    path.unlink(missing_ok=True)


def _copy(src: Path, dst: Path) -> None:
    shutil.copyfile(src, dst)


def _apply(attack: Attack, src: Path, threads: int, dst: Path) -> None:
    attack.apply(src, dst, threads=threads)


def _write_frames(dst: Path, frames: Iterator[Frame], *, threads: int = 0) -> None:
    encoder = VideoEncoder(dst, Encoding().reproducible(), SYNTHETIC_FPS, threads)
    try:
        for frame in frames:
            encoder.write_rgb(frame)
        encoder.close()
    except BaseException:
        encoder.abort()
        dst.unlink(missing_ok=True)
        raise


def _load_photo(path: Path, max_side: int = 512) -> Frame:
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ValueError(f"cannot read photo {path}")
    scale = max_side / max(bgr.shape[:2])
    if scale < 1:
        bgr = cv2.resize(bgr, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    h, w = bgr.shape[:2]
    return np.ascontiguousarray(cv2.cvtColor(bgr[: h - h % 2, : w - w % 2], cv2.COLOR_BGR2RGB))


def _write_photo(photo: Path, motion: str, threads: int, dst: Path, frames: int = 30) -> None:
    image = _load_photo(photo)
    h, w = image.shape[:2]

    def frame(i: int) -> Frame:
        u = i / max(frames - 1, 1)
        if motion == "zoom":  # 1.0 → 1.15, about the centre
            z = 1 + 0.15 * u
            cw, ch = w / z, h / z
            x0, y0 = (w - cw) / 2, (h - ch) / 2
        elif motion == "pan":  # an 85 % window sliding from left to right
            cw, ch = 0.85 * w, 0.85 * h
            x0, y0 = u * (w - cw), (h - ch) / 2
        elif motion == "grey":
            return Grayscale()(image)
        else:
            return image
        m = np.array([[cw / w, 0, x0], [0, ch / h, y0]], dtype=np.float64)
        warped = cv2.warpAffine(image, m, (w, h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP)
        return np.asarray(warped, dtype=np.uint8)

    _write_frames(dst, (frame(i) for i in range(frames)), threads=threads)


# Synthetic generators: (width, height, frames, rng, params) → frames.
_Generator = Callable[[int, int, int, np.random.Generator, dict[str, Any]], Iterator[Frame]]


def _u8(x: npt.NDArray[Any]) -> Frame:
    return np.ascontiguousarray(np.clip(np.rint(x), 0, 255).astype(np.uint8))


def _grid(w: int, h: int) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    return xs, ys


def _gen_noise(w: int, h: int, n: int, rng: np.random.Generator, p: dict[str, Any]) -> Iterator[Frame]:
    sigma, dynamic = float(p["sigma"]), bool(p["dynamic"])
    channels = 3 if dynamic else 1  # dynamic noise is coloured, static noise is grey
    frame = _u8(128 + sigma * rng.standard_normal((h, w, channels))).repeat(3 // channels, axis=2)
    for _ in range(n):
        yield frame
        if dynamic:
            frame = _u8(128 + sigma * rng.standard_normal((h, w, 3)))


def _gen_flat(w: int, h: int, n: int, rng: np.random.Generator, p: dict[str, Any]) -> Iterator[Frame]:
    frame = np.empty((h, w, 3), np.uint8)
    frame[:] = p["rgb"]
    for _ in range(n):
        yield frame


def _ramp(kind: str, w: int, h: int, angle: float = 0.0) -> npt.NDArray[np.float64]:
    """A 0..1 ramp over the frame."""
    xs, ys = _grid(w, h)
    if kind == "radial":
        r = np.hypot(xs - w / 2, ys - h / 2)
        return np.asarray(r / r.max())
    a = math.radians({"horizontal": 0.0, "vertical": 90.0, "diagonal": 45.0}.get(kind, angle))
    proj = xs * math.cos(a) + ys * math.sin(a)
    return np.asarray((proj - proj.min()) / max(float(np.ptp(proj)), 1.0))


def _gen_gradient(w: int, h: int, n: int, rng: np.random.Generator, p: dict[str, Any]) -> Iterator[Frame]:
    ramp = _ramp(str(p["kind"]), w, h)[..., None]
    a, b = np.array(p["from"], np.float64), np.array(p["to"], np.float64)
    frame = _u8(a + (b - a) * ramp)
    for _ in range(n):
        yield frame


def _gen_moving_gradient(w: int, h: int, n: int, rng: np.random.Generator, p: dict[str, Any]) -> Iterator[Frame]:
    kind, speed = str(p["kind"]), float(p["speed"])
    xs, ys = _grid(w, h)
    for i in range(n):
        t = i * speed
        if kind == "scroll_h":  # a smooth band pattern sliding right
            v = 0.5 + 0.5 * np.cos(2 * math.pi * (xs - 8 * t) / w)
            frame = _u8(255 * np.stack([v, 0.6 * v + 0.2, 1 - v], axis=2))
        elif kind == "scroll_diag":
            v = 0.5 + 0.5 * np.cos(2 * math.pi * (xs + ys - 8 * t) / (w + h))
            frame = _u8(255 * v[..., None].repeat(3, axis=2))
        elif kind == "rotate":
            v = _ramp("angle", w, h, angle=3 * t)
            frame = _u8(np.stack([255 * v, 255 * (1 - v), 128 + 0 * v], axis=2))
        else:  # pulse: a radial gradient whose brightness breathes
            v = 1 - _ramp("radial", w, h)
            level = 0.55 + 0.4 * math.sin(2 * math.pi * t / 30)
            frame = _u8(255 * level * v[..., None].repeat(3, axis=2))
        yield frame


def _gen_checkerboard(w: int, h: int, n: int, rng: np.random.Generator, p: dict[str, Any]) -> Iterator[Frame]:
    cell, moving = int(p["cell"]), bool(p["moving"])
    xs, ys = _grid(w, h)
    for i in range(n):
        shift = i if moving else 0
        board = ((xs.astype(np.int64) + shift) // cell + ys.astype(np.int64) // cell) % 2
        yield _u8(np.repeat((32 + 191 * board)[..., None], 3, axis=2))


def _gen_grating(w: int, h: int, n: int, rng: np.random.Generator, p: dict[str, Any]) -> Iterator[Frame]:
    period, angle = float(p["period"]), math.radians(float(p["angle"]))
    xs, ys = _grid(w, h)
    proj = xs * math.cos(angle) + ys * math.sin(angle)
    for i in range(n):  # drifting a quarter pixel a frame
        v = 128 + 100 * np.sin(2 * math.pi * (proj - 0.25 * i) / period)
        yield _u8(np.repeat(v[..., None], 3, axis=2))


def _gen_shapes(w: int, h: int, n: int, rng: np.random.Generator, p: dict[str, Any]) -> Iterator[Frame]:
    count, moving = int(p["count"]), bool(p["moving"])
    background = rng.integers(0, 256, 3)
    shapes = [
        (rng.integers(0, 2), rng.uniform(0, w), rng.uniform(0, h), rng.uniform(8, w / 4),
         rng.uniform(-3, 3), rng.uniform(-3, 3), tuple(int(c) for c in rng.integers(0, 256, 3)))
        for _ in range(count)
    ]  # fmt: skip
    for i in range(n):
        frame = np.empty((h, w, 3), np.uint8)
        frame[:] = background
        for kind, x, y, size, vx, vy, colour in shapes:
            cx, cy = round(x + (vx * i if moving else 0)), round(y + (vy * i if moving else 0))
            r = round(size / 2)
            if kind == 0:
                cv2.rectangle(frame, (cx - r, cy - r), (cx + r, cy + r), colour, -1)
            else:
                cv2.circle(frame, (cx, cy), r, colour, -1, lineType=cv2.LINE_AA)
        yield frame


_GENERATORS: dict[str, _Generator] = {
    "noise": _gen_noise,
    "flat": _gen_flat,
    "gradient": _gen_gradient,
    "moving_gradient": _gen_moving_gradient,
    "checkerboard": _gen_checkerboard,
    "grating": _gen_grating,
    "shapes": _gen_shapes,
}


def _write_synthetic(
    category: str, width: int, height: int, frames: int, params: dict[str, Any], seed: int, name: str,
    threads: int, dst: Path,
) -> None:  # fmt: skip
    rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
    _write_frames(dst, _GENERATORS[category](width, height, frames, rng, params), threads=threads)


def _synthetic_specs(seed: int, threads: int) -> list[UnmarkedVariant]:
    out: list[UnmarkedVariant] = []

    def add(category: str, label: str, size: tuple[int, int], params: dict[str, Any]) -> None:
        w, h = size
        name = f"{category}/{label}_{w}x{h}"
        frames = 24 if w * h > 640 * 480 else 48
        write = partial(_write_synthetic, category, w, h, frames, params, seed, name, threads)
        out.append(UnmarkedVariant(name, category, write))

    sizes = [(128, 128), (256, 256), (480, 480), (640, 360), (1280, 720)]
    for sigma in (1, 4, 16, 48):
        for size in sizes:
            for dynamic in (True, False):
                label = f"s{sigma}_{'dynamic' if dynamic else 'static'}"
                add("noise", label, size, {"sigma": sigma, "dynamic": dynamic})
    colours = {
        "black": (0, 0, 0), "white": (255, 255, 255), "grey": (128, 128, 128), "dark": (16, 16, 16),
        "light": (235, 235, 235), "red": (255, 0, 0), "green": (0, 255, 0), "blue": (0, 0, 255),
        "cyan": (0, 255, 255), "magenta": (255, 0, 255), "yellow": (255, 255, 0), "skin": (224, 172, 140),
    }  # fmt: skip
    for label, rgb in colours.items():
        for size in ((256, 256), (480, 480)):
            add("flat", label, size, {"rgb": rgb})
    for kind, a, b in (
        ("horizontal", (0, 0, 0), (255, 255, 255)),
        ("vertical", (255, 0, 0), (0, 0, 255)),
        ("diagonal", (20, 60, 20), (240, 220, 180)),
        ("radial", (255, 255, 255), (30, 30, 60)),
    ):
        for size in ((256, 256), (480, 480), (640, 360)):
            add("gradient", kind, size, {"kind": kind, "from": a, "to": b})
    for kind in ("scroll_h", "scroll_diag", "rotate", "pulse"):
        for size in ((256, 256), (480, 480)):
            for speed in (0.5, 2.0):
                add("moving_gradient", f"{kind}_v{speed:g}", size, {"kind": kind, "speed": speed})
    for cell in (1, 2, 3, 4, 8, 16, 32, 64):
        for moving in (False, True):
            label = f"c{cell}_{'moving' if moving else 'static'}"
            add("checkerboard", label, (480, 480), {"cell": cell, "moving": moving})
    for period in (2.5, 4, 8, 16, 32):
        for angle in (0, 45, 90):
            add("grating", f"p{period:g}_a{angle}", (480, 480), {"period": period, "angle": angle})
    for count in (3, 12, 40, 100):
        for moving in (False, True):
            label = f"n{count}_{'moving' if moving else 'static'}"
            add("shapes", label, (480, 480), {"count": count, "moving": moving})
    return out
