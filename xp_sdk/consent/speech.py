"""What a consent video says, read offline by PocketSphinx constrained to the challenge grammar.

PocketSphinx's PyPI wheel ships its US English model; every file the decoder reads is pinned by SHA-256 here, as
the engine pins its own models (``xp_sdk.engine.models``): a swapped acoustic model or dictionary is refused.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from xp_sdk.consent.challenge import grid_grammar
from xp_sdk.engine.models import sha256_file
from xp_sdk.engine.paths import as_file_path
from xp_sdk.engine.video import INPUT_OPTIONS
from xp_sdk.errors import ModelHashMismatchError, ModelNotFoundError, UnreadableVideoError

SAMPLE_RATE = 16_000
MAX_SPEECH_SECONDS = 120
# pocketsphinx 5.1.1's model/en-us: the files the decoder opens with hmm= and dict=.
PINNED_SPEECH_FILES = {
    "en-us/cmudict-en-us.dict": "20b5c293e1f311fb375fe067e500ec5636f4fc7af5594967263696def9b23bfe",
    "en-us/en-us/feat.params": "c982c5f75e2a30c34d2c9ef1f6b129a5a00e67e3e927565076b58664cc2404c9",
    "en-us/en-us/mdef": "2360f9a86889c1cfee8bd618a0269387911e5fb2920a594f506b18b8c79683b0",
    "en-us/en-us/means": "832019e32cac12eb318964f96f469034acb12d0348eeddc3831831a100cb4dd4",
    "en-us/en-us/noisedict": "7295b07df2c204c4f87c6782b6be1a3859d7006d4e3864181c955d6dab105a33",
    "en-us/en-us/sendump": "8c9564c0d5bef69ca9d9bf1014abe162f071644cf02cf1fa8a483c3dc165a7a8",
    "en-us/en-us/transition_matrices": "c1f7f28ea43177be734be1f88bd7f1b9a853d0e660f8599c67c6eaeca8bb539a",
    "en-us/en-us/variances": "b00d696f85e96834fc10f8e5f06428d8c4db6bffdbe5845b6f69bf6efbc48fa5",
}
_verified: dict[tuple[str, int, int], str] = {}


@dataclass(frozen=True)
class Transcript:
    words: tuple[str, ...]
    seconds: float
    starts_at: float | None = None
    """When the first word begins, in seconds of the video."""

    @property
    def text(self) -> str:
        return " ".join(self.words)


def speech_model_dir() -> Path:
    """pocketsphinx's model folder, after checking each file the decoder reads against its pin."""
    spec = importlib.util.find_spec("pocketsphinx")
    if spec is None or spec.origin is None:
        raise ModelNotFoundError("the speech model needs pocketsphinx (pip install 'pocketsphinx>=5.1.1')")
    folder = Path(spec.origin).parent / "model"
    for relative, pinned in PINNED_SPEECH_FILES.items():
        _check_pinned(folder / relative, pinned)
    return folder


def _check_pinned(file: Path, pinned: str) -> None:
    if not file.is_file():
        raise ModelNotFoundError(f"speech model file {file} does not exist; reinstall pocketsphinx 5.1.1")
    stat = file.stat()
    key = (str(file.resolve()), stat.st_size, stat.st_mtime_ns)
    actual = _verified.get(key) or sha256_file(file)
    if actual != pinned:
        raise ModelHashMismatchError(
            f"speech model file {file} has sha256 {actual}, but it is pinned to {pinned}; "
            "refusing to load a file that is not the pinned model"
        )
    _verified[key] = actual


def read_speech(path: str | os.PathLike[str]) -> tuple[np.ndarray, float]:
    """The video's first audio track as 16 kHz mono signed 16-bit samples (empty when it has none), and the
    second of the video at which they begin (a sound track may start after the pictures)."""
    file = as_file_path(path, "consent video")
    try:
        container = av.open(str(file), options=dict(INPUT_OPTIONS))
    except (av.error.FFmpegError, OSError) as exc:
        raise UnreadableVideoError(f"consent video {file} cannot be read: {exc}") from exc
    with container:
        if not container.streams.audio:
            return np.zeros(0, dtype=np.int16), 0.0
        resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
        chunks: list[np.ndarray] = []
        total = 0
        begins: float | None = None
        try:
            for frame in container.decode(container.streams.audio[0]):
                if begins is None and frame.time is not None:
                    begins = max(0.0, float(frame.time))
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray().reshape(-1))
                    total += chunks[-1].size
                if total > MAX_SPEECH_SECONDS * SAMPLE_RATE:
                    raise UnreadableVideoError(f"consent video {file} speaks for over {MAX_SPEECH_SECONDS} s")
            for out in resampler.resample(None):  # the resampler holds the last samples until flushed
                chunks.append(out.to_ndarray().reshape(-1))
        except av.error.FFmpegError as exc:
            raise UnreadableVideoError(f"consent video {file}: its sound cannot be decoded: {exc}") from exc
    samples = np.concatenate(chunks).astype(np.int16) if chunks else np.zeros(0, dtype=np.int16)
    return samples, begins or 0.0


def transcribe(path: str | os.PathLike[str]) -> Transcript:
    """The GRID sentence the video's speaker says, as PocketSphinx reads it under the challenge grammar; no words
    when there is no sound or no sentence fits it."""
    from pocketsphinx import Config, Decoder  # imported on use: `import xp_sdk` stays light

    samples, begins = read_speech(path)
    seconds = samples.size / SAMPLE_RATE
    if samples.size < SAMPLE_RATE // 4:
        return Transcript(words=(), seconds=seconds)
    folder = speech_model_dir()
    config = Config(
        hmm=str(folder / "en-us" / "en-us"), dict=str(folder / "en-us" / "cmudict-en-us.dict"), lm=None,
        logfn=os.devnull,
    )  # fmt: skip
    decoder = Decoder(config)
    decoder.add_jsgf_string("consent", grid_grammar())
    decoder.activate_search("consent")
    decoder.start_utt()
    decoder.process_raw(samples.tobytes(), full_utt=True)
    decoder.end_utt()
    if decoder.hyp() is None:
        return Transcript(words=(), seconds=seconds)
    spoken = [segment for segment in decoder.seg() if not segment.word.startswith(("<", "["))]
    words = tuple(segment.word.split("(")[0] for segment in spoken)
    # PocketSphinx counts 100 feature frames a second.
    starts = begins + spoken[0].start_frame / 100 if spoken else None
    return Transcript(words=words, seconds=seconds, starts_at=starts)
