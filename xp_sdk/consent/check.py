"""Prove a consent video against its challenge: the facts each check found, for the service to decide on.

Five checks, each passed or failed with what it saw: ``face`` (one person throughout, the subject in every
sampled frame, by the gate's face matcher and threshold), ``liveness`` (the actions, in order, from a moving face),
``phrase`` (the sentence, read offline), ``not_generated`` (no watermark of this deployment, no C2PA manifest
declaring generated media) and ``fresh`` (the challenge unexpired and unused, the video not used before).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

from policy.face_match import match_face
from xp_sdk.consent.challenge import ConsentChallenge
from xp_sdk.consent.liveness import judge_liveness
from xp_sdk.consent.observe import VideoObservation
from xp_sdk.consent.speech import Transcript
from xp_sdk.engine.identity import IdentityEmbedder
from xp_sdk.verify import Verification

CONSENT_VIDEO_KIND = "consent-video"
CHECKS = ("face", "liveness", "phrase", "not_generated", "fresh")
# IPTC digital source types that declare media made by a generator (C2PA's "trainedAlgorithmicMedia" family).
GENERATED_SOURCE_TYPES = ("trainedAlgorithmicMedia", "compositeWithTrainedAlgorithmicMedia", "algorithmicMedia")


@dataclass(frozen=True)
class CheckResult:
    name: str
    passed: bool
    detail: dict[str, object] = field(default_factory=dict)

    def as_record(self) -> dict[str, object]:
        return {"passed": self.passed, **self.detail}


@dataclass(frozen=True)
class ConsentVideoFacts:
    checks: tuple[CheckResult, ...]

    @property
    def failed(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.checks if not c.passed)

    @property
    def passed(self) -> bool:
        return not self.failed

    def check(self, name: str) -> CheckResult:
        return next(c for c in self.checks if c.name == name)

    def as_record(self) -> dict[str, object]:
        return {c.name: c.as_record() for c in self.checks}


def check_face(video: VideoObservation, references: Sequence[np.ndarray], threshold: float) -> CheckResult:
    sampled = [f for f in video.frames if f.faces >= 0]
    crowded = [round(f.t, 2) for f in sampled if f.faces > 1]
    faceless = [round(f.t, 2) for f in sampled if f.faces == 0 or (f.faces == 1 and f.embedding is None)]
    similarities = [
        match_face(f.embedding, references, threshold).similarity for f in sampled if f.embedding is not None
    ]
    mismatched = sum(1 for s in similarities if s < threshold)
    passed = bool(sampled) and not crowded and not faceless and mismatched == 0 and bool(references)
    return CheckResult(
        "face",
        passed,
        {
            "sampled_frames": len(sampled),
            "frames_with_several_faces": crowded[:20],
            "frames_without_a_face": faceless[:20],
            "frames_not_the_subject": mismatched,
            "lowest_similarity": round(min(similarities), 4) if similarities else None,
            "threshold": threshold,
        },
    )


def check_liveness(video: VideoObservation, challenge: ConsentChallenge, transcript: Transcript) -> CheckResult:
    result = judge_liveness(video, challenge.actions, actions_until=transcript.starts_at)
    return CheckResult("liveness", result.passed, result.detail)


def check_phrase(challenge: ConsentChallenge, transcript: Transcript) -> CheckResult:
    expected = tuple(challenge.phrase.split())
    return CheckResult(
        "phrase", transcript.words == expected, {"expected": challenge.phrase, "heard": transcript.text}
    )


def check_not_generated(report: Verification) -> CheckResult:
    declared = report.c2pa.summary.digital_source_type if report.c2pa.summary is not None else None
    generated_manifest = declared is not None and declared.rsplit("/", 1)[-1] in GENERATED_SOURCE_TYPES
    ours = report.watermark.detected
    return CheckResult(
        "not_generated",
        not ours and not generated_manifest,
        {
            "deployment_watermark": ours,
            "watermark_payload": report.watermark.payload if ours else None,
            "generation_id": report.generation_id,
            "c2pa": report.c2pa.state.value,
            "c2pa_digital_source_type": declared,
        },
    )


def check_fresh(
    challenge: ConsentChallenge, *, now: datetime, challenge_used_by: str | None, video_used_by: str | None
) -> CheckResult:
    problems = []
    if now >= challenge.expires_at:
        problems.append(f"challenge {challenge.id} expired at {challenge.expires_at.isoformat()}")
    if challenge_used_by is not None:
        problems.append(f"challenge {challenge.id} was already answered by consent {challenge_used_by}")
    if video_used_by is not None:
        # Which consent is not said: it may be another tenant's, whose existence the caller may not learn.
        problems.append("this video is already the evidence of another consent; record a new one")
    return CheckResult("fresh", not problems, {"problems": problems, "expires_at": challenge.expires_at.isoformat()})


def examine_consent_video(
    path: str | os.PathLike[str],
    challenge: ConsentChallenge,
    *,
    references: Sequence[np.ndarray],
    face_match_threshold: float,
    embedder: IdentityEmbedder,
    marks: Verification,
    now: datetime,
    challenge_used_by: str | None,
    video_used_by: str | None,
) -> ConsentVideoFacts:
    """Every check's facts for ``path`` answering ``challenge``. ``marks``: the video's watermark and C2PA report
    (``xp_sdk.verify.verify`` with this deployment's keys); ``embedder`` is used by this call alone."""
    from xp_sdk.consent.observe import observe_video
    from xp_sdk.consent.speech import transcribe

    transcript = transcribe(path)
    video = observe_video(path, embedder)
    return ConsentVideoFacts(
        (
            check_face(video, references, face_match_threshold),
            check_liveness(video, challenge, transcript),
            check_phrase(challenge, transcript),
            check_not_generated(marks),
            check_fresh(challenge, now=now, challenge_used_by=challenge_used_by, video_used_by=video_used_by),
        )
    )
