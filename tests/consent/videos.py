"""Consent videos made here, honestly: no person can be filmed in a test, so a registered photo is animated by the
engine with a motion template that performs a challenge's actions, and a real speaker's sentence (a GRID clip) is
muxed in as its sound. Such a clip IS a generated one: made through the product it carries the deployment's
watermark and must be refused; made with the bare engine (``xp_sdk.engine.animate``) it has no mark."""

from __future__ import annotations

import math
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import av

from xp_sdk.consent.challenge import FacialAction
from xp_sdk.engine.templates import Keyframe, MotionTemplate, Pose

GRID_SENTENCE = "bin blue at f two now"
"""What the shared clip driving/grid_bbaf2n.mpg says (its manifest entry, and PocketSphinx reads it so)."""
ACTION_SECONDS = 1.2
_PEAKS: dict[FacialAction, tuple[Pose, dict[str, float]]] = {
    FacialAction.TURN_LEFT: (Pose(yaw=25.0), {}),
    FacialAction.TURN_RIGHT: (Pose(yaw=-25.0), {}),
    FacialAction.LOOK_UP: (Pose(pitch=-18.0, y=-0.05), {}),
    FacialAction.SMILE: (Pose(), {"mouthSmileLeft": 0.9, "mouthSmileRight": 0.9, "cheekSquintLeft": 0.4,
                                  "cheekSquintRight": 0.4}),
    FacialAction.RAISE_BROWS: (Pose(), {"browInnerUp": 1.0, "browOuterUpLeft": 1.0, "browOuterUpRight": 1.0}),
    FacialAction.OPEN_MOUTH: (Pose(), {"jawOpen": 0.8}),
}  # fmt: skip


def _sway(t: float) -> Pose:
    """A living head never holds still: a small slow drift, so no two frames are the same picture."""
    return Pose(yaw=1.5 * math.sin(1.3 * t), pitch=1.0 * math.sin(0.9 * t + 1.0), roll=0.8 * math.sin(0.7 * t))


def _plus(a: Pose, b: Pose) -> Pose:
    return Pose(yaw=a.yaw + b.yaw, pitch=a.pitch + b.pitch, roll=a.roll + b.roll, x=a.x + b.x, y=a.y + b.y)


def action_template(actions: Sequence[FacialAction], *, tail_seconds: float = 3.5, fps: float = 25.0) -> MotionTemplate:
    """The actions in order, ``ACTION_SECONDS`` each, from a calm start, then ``tail_seconds`` of calm (the
    sentence is said there)."""
    keys: list[Keyframe] = []
    t = 0.0

    def calm(at: float) -> None:
        keys.append(Keyframe(t=round(at, 3), pose=_sway(at)))

    calm(0.0)
    t = 0.6
    for action in actions:
        if action is FacialAction.BLINK_TWICE:
            for start in (t, t + 0.45):
                calm(start)
                keys.append(Keyframe(t=round(start + 0.12, 3), pose=_sway(start + 0.12),
                                     blendshapes={"eyeBlinkLeft": 1.0, "eyeBlinkRight": 1.0}))  # fmt: skip
                calm(start + 0.24)
            calm(t + ACTION_SECONDS)
        else:
            pose, shapes = _PEAKS[action]
            calm(t)
            peak = t + ACTION_SECONDS / 2
            keys.append(Keyframe(t=round(peak, 3), pose=_plus(pose, _sway(peak)), blendshapes=shapes))
            calm(t + ACTION_SECONDS)
        t += ACTION_SECONDS + 0.3
    end = t + tail_seconds
    step = 0.5
    at = t + step
    while at < end:
        calm(at)
        at += step
    return MotionTemplate(name="consent-challenge", fps=fps, duration=round(end, 3), keyframes=keys)


def speech_start(actions: Sequence[FacialAction]) -> float:
    return 0.6 + len(actions) * (ACTION_SECONDS + 0.3)


def mux_speech(video: Path, speech: Path, out: Path, *, at: float, tag: str = "") -> Path:
    """``video``'s pictures as they are (packets copied) with ``speech``'s sound starting ``at`` seconds in.
    ``tag`` (a comment in the container) makes takes of the same pictures distinct files."""
    with av.open(str(video)) as pictures, av.open(str(speech)) as sound, av.open(str(out), "w", format="mp4") as dst:
        if tag:
            dst.metadata["comment"] = tag
        vin = pictures.streams.video[0]
        vout = dst.add_stream_from_template(vin)
        aout = dst.add_stream("aac", rate=16000, layout="mono")
        for packet in pictures.demux(vin):
            if packet.dts is None:
                continue
            packet.stream = vout
            dst.mux(packet)
        resampler = av.AudioResampler(format="fltp", layout="mono", rate=16000)
        offset = round(at * 16000)
        for frame in sound.decode(sound.streams.audio[0]):
            for chunk in resampler.resample(frame):
                chunk.pts = offset
                chunk.time_base = Fraction(1, 16000)
                offset += chunk.samples
                dst.mux(aout.encode(chunk))
        for chunk in resampler.resample(None):
            chunk.pts = offset
            chunk.time_base = Fraction(1, 16000)
            offset += chunk.samples
            dst.mux(aout.encode(chunk))
        dst.mux(aout.encode(None))
    return out
