"""One verdict on a video: its C2PA manifest, its invisible watermark, and (with an audit store) its generation."""

from __future__ import annotations

import os
from datetime import date, datetime
from enum import StrEnum
from pathlib import Path
from typing import Literal

from cryptography import x509
from cryptography.x509.oid import NameOID
from pydantic import BaseModel, ConfigDict

from watermark import DEFAULT_METHOD, DEFAULT_P_THRESHOLD, detect_watermark
from watermark.errors import UnreadableVideoError, UnsupportedMediaError
from watermark.fingerprint import Fingerprint, match_video
from watermark.reading import ManifestReport, ManifestState, read_manifest
from watermark.video_io import video_rate
from xp_sdk.errors import ForgedMarkError, InvalidInputError, UntrustedMediaError
from xp_sdk.provenance import ProvenanceKeys, provenance_errors


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True)


class WatermarkVerdict(_Frozen):
    checked: bool
    """False when no watermark key was available (an outside analyst can still check the manifest)."""
    detected: bool
    payload: str | None
    """The generation id the mark carries (16 hex digits), when detected."""
    p_value: float | None
    """Chance that an unmarked video decodes this well; a detection needs p below ``threshold``."""
    threshold: float
    method: str
    frames: int
    seconds: float


class Attribution(StrEnum):
    ATTRIBUTED = "attributed"
    """This deployment's watermark, on the very content its generation recorded: the clip is that generation."""
    FORGED = "forged"
    """This deployment's watermark names a generation on record, but the pictures are not that generation's output:
    the mark was transplanted or forged onto other content. Never reported as the generation."""
    UNCONFIRMED = "unconfirmed"
    """A watermark, but no recorded fingerprint to bind it to content (checked offline, or no fingerprint on
    record). ``generation_id`` is then set only where a Trusted manifest, bound to these very bytes, names the
    generation the mark names."""
    NONE = "none"
    """No watermark of this deployment (or none checked)."""


class ContentMatch(_Frozen):
    """How closely the clip's pictures match the fingerprint recorded when its generation was made."""

    distance: float
    """Median bits (of 64) from the clip's frames to the nearest recorded frame."""
    threshold: float
    frames: int
    matched: bool


class Verification(_Frozen):
    path: str
    c2pa: ManifestReport
    watermark: WatermarkVerdict
    generation_id: str | None
    """The generation the clip is attributed to: when the watermark and the recorded content fingerprint agree
    (``attribution`` ATTRIBUTED), or when a Trusted manifest (hash-bound to the file) names it and the watermark,
    where checked, names the same. An untrusted or disagreeing manifest, or a payload on other content, never
    sets it: the payload alone is ``watermark.payload``."""
    attribution: Attribution = Attribution.NONE
    content: ContentMatch | None = None
    """The fingerprint comparison, when the watermark's generation has a recorded fingerprint."""
    consistent: bool | None
    """Whether the manifest's soft binding names the payload the frames carry (None when either is missing)."""
    generation: dict[str, object] | None = None
    """The audited generation record (``Client.verify`` fills it from the audit log; None when the id is not on
    record, or when verifying offline with ``verify`` alone). Another tenant sees only id, status and time."""


def verify(
    path: str | os.PathLike[str],
    *,
    keys: ProvenanceKeys | None = None,
    trust_anchors: str | None = None,
    method: str = DEFAULT_METHOD,
    p_threshold: float = DEFAULT_P_THRESHOLD,
) -> Verification:
    """Check both marks of origin. Never raises for a missing or broken mark: the verdict says so."""
    file = Path(path)
    if not file.is_file():
        raise InvalidInputError(f"{file} does not exist or is not a file")
    anchors = trust_anchors if trust_anchors is not None else (keys.trust_anchors if keys else None)
    with provenance_errors():
        manifest = _read_manifest(file, anchors)
        if keys is not None:
            detection = detect_watermark(file, keys.watermark_key, method=method, p_threshold=p_threshold)
            mark = WatermarkVerdict(
                checked=True,
                detected=detection.detected,
                payload=detection.payload.hex if detection.payload else None,
                p_value=detection.p_value,
                threshold=p_threshold,
                method=detection.method,
                frames=detection.frames,
                seconds=round(detection.seconds, 4),
            )
        else:
            mark = WatermarkVerdict(
                checked=False, detected=False, payload=None, p_value=None, threshold=p_threshold, method=method,
                frames=0, seconds=0.0,
            )  # fmt: skip
    readable = manifest.state in (ManifestState.TRUSTED, ManifestState.VALID) and manifest.summary is not None
    bound = (
        manifest.summary.soft_binding.value if readable and manifest.summary and manifest.summary.soft_binding else None
    )
    manifest_id = (
        manifest.summary.generation.generation_id
        if readable and manifest.summary and manifest.summary.generation
        else None
    )
    named = {name for name in (bound, manifest_id) if name is not None}
    consistent = None if (not named or not mark.detected) else named == {mark.payload}
    vouched = (
        manifest.state is ManifestState.TRUSTED
        and manifest_id is not None
        and (consistent is True if mark.checked else bound in (None, manifest_id))
    )
    return Verification(
        path=str(file),
        c2pa=manifest,
        watermark=mark,
        generation_id=manifest_id if vouched else None,
        attribution=Attribution.UNCONFIRMED if mark.detected else Attribution.NONE,
        consistent=consistent,
    )


class PublicVerification(_Frozen):
    """What anyone may learn about a clip without an API key: never the subject, consent, tenant, key or the
    generation's record, only whether this deployment made it."""

    verdict: str
    """``ai-generated``, ``forged-mark``, ``unconfirmed-mark`` or ``no-mark``."""
    statement: str
    """One plain sentence, e.g. "AI-generated by Acme on 2026-12-07."."""
    deployment: str
    c2pa: ManifestState
    watermark_present: bool
    """Whether this deployment's watermark is in the pictures (present on a forged clip too: see ``verdict``)."""
    generated_on: date | None = None


def public_verification(report: Verification, *, deployment: str, generated_at: datetime | None) -> PublicVerification:
    """The anonymous answer for ``report`` (as ``Service.verify`` attributed it)."""
    verdict, statement, day = _public_verdict(report, deployment, generated_at)
    return PublicVerification(
        verdict=verdict, statement=statement, deployment=deployment, c2pa=report.c2pa.state,
        watermark_present=report.watermark.detected, generated_on=day,
    )  # fmt: skip


_Verdict = Literal["ai-generated", "forged-mark", "unconfirmed-mark", "no-mark"]


def _public_verdict(
    report: Verification, deployment: str, generated_at: datetime | None
) -> tuple[_Verdict, str, date | None]:
    if report.generation_id is not None and generated_at is not None:
        day = generated_at.date()
        return "ai-generated", f"AI-generated by {deployment} on {day.isoformat()}.", day
    if report.attribution is Attribution.FORGED:
        return "forged-mark", (
            f"This clip carries {deployment}'s watermark, but its pictures are not what {deployment} generated: "
            f"the mark was copied onto other footage. It is not attributed to {deployment}."
        ), None  # fmt: skip
    if report.watermark.detected:
        return "unconfirmed-mark", (
            f"This clip carries {deployment}'s watermark, but no generation on record matches its pictures."
        ), None  # fmt: skip
    return "no-mark", (
        f"No watermark of {deployment} was found (C2PA: {report.c2pa.state.value}). That alone does not show the "
        f"clip is not AI-generated."
    ), None  # fmt: skip


def deployment_name(trust_anchors: str | None) -> str:
    """The deployment's name as its C2PA certificate authority states it (the organization given to ``xp init``)."""
    if trust_anchors:
        try:
            for certificate in x509.load_pem_x509_certificates(trust_anchors.encode("ascii")):
                names = certificate.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
                if names:
                    return str(names[0].value)
        except (ValueError, UnicodeEncodeError):
            pass
    return "this deployment"


def attribute(verification: Verification, recorded: Fingerprint | None) -> Verification:
    """Bind the watermark to content: with the fingerprint recorded for the generation its payload names, the clip
    is that generation (ATTRIBUTED) or carries a transplanted or forged mark (FORGED). Without one, UNCONFIRMED."""
    if not verification.watermark.detected or recorded is None:
        return verification
    with provenance_errors():
        found = match_video(Path(verification.path), recorded)
    content = ContentMatch(
        distance=found.distance, threshold=found.threshold, frames=found.frames, matched=found.matched
    )
    if found.matched:
        return verification.model_copy(
            update={
                "attribution": Attribution.ATTRIBUTED,
                "content": content,
                "generation_id": verification.watermark.payload,
            }
        )
    return verification.model_copy(
        update={"attribution": Attribution.FORGED, "content": content, "generation_id": None, "generation": None}
    )


def require_trusted(verification: Verification) -> None:
    """For callers that want a gate rather than a report: raise unless the manifest is Trusted, the watermark is
    present (when it was checked) and both name the same generation, and the mark is not on foreign content."""
    where = verification.path
    if verification.attribution is Attribution.FORGED:
        raise ForgedMarkError(
            f"{where}: the watermark names generation {verification.watermark.payload}, but the pictures are not "
            f"that generation's output (a transplanted or forged mark)"
        )
    if verification.c2pa.state is not ManifestState.TRUSTED:
        codes = ", ".join(verification.c2pa.codes) or "no codes"
        raise UntrustedMediaError(f"{where}: C2PA manifest is {verification.c2pa.state.value} ({codes})")
    if verification.watermark.checked and not verification.watermark.detected:
        raise UntrustedMediaError(
            f"{where}: the manifest is Trusted but the pictures carry no watermark of this deployment"
        )
    if verification.consistent is False:
        raise UntrustedMediaError(
            f"{where}: the watermark names generation {verification.watermark.payload}, the manifest another"
        )
    summary = verification.c2pa.summary
    if summary is None or summary.generation is None or summary.soft_binding is None:
        raise UntrustedMediaError(f"{where}: the Trusted manifest names no generation and no soft binding")


def _read_manifest(file: Path, anchors: str | None) -> ManifestReport:
    """The manifest's verdict; ABSENT for a container C2PA cannot carry (Matroska, WebM, MPEG-TS, AVI), whose
    watermark is still checked."""
    try:
        return read_manifest(file, trust_anchors=anchors)
    except UnsupportedMediaError as unsupported:
        try:
            video_rate(file)  # opens it as a video container of the allow-list, or raises
        except UnreadableVideoError:
            raise unsupported from None  # neither C2PA media nor a video: refused as the format it is
        return ManifestReport(state=ManifestState.ABSENT, codes=[], summary=None)
