"""A consent's evidence on disk: its digest and kind, and the private copy kept of a consent video."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

from xp_sdk.errors import InvalidInputError
from xp_sdk.service.core import sha256_file

VIDEO_SUFFIXES = frozenset({".mp4", ".mov", ".webm", ".mkv", ".avi", ".m4v"})


def evidence_digest(evidence: str | os.PathLike[str] | bytes) -> tuple[str, str]:
    """(SHA-256, kind) of a consent's evidence."""
    if isinstance(evidence, bytes):
        if not evidence:
            raise InvalidInputError("consent evidence is empty")
        return hashlib.sha256(evidence).hexdigest(), "signed-statement"
    file = Path(evidence)
    if not file.is_file():
        raise InvalidInputError(f"consent evidence {file} does not exist or is not a file")
    if file.stat().st_size == 0:
        raise InvalidInputError(f"consent evidence {file} is empty")
    kind = "consent-video" if file.suffix.lower() in VIDEO_SUFFIXES else "signed-statement"
    return sha256_file(file), kind


def evidence_path(home: Path, digest: str, suffix: str) -> Path:
    """Where a consent video is kept: the home's ``evidence`` folder (0700), by its SHA-256."""
    return home / "evidence" / f"{digest}{suffix.lower() if suffix.lower() in VIDEO_SUFFIXES else '.video'}"


def keep_evidence(home: Path, video: Path, digest: str) -> Path:
    """A private copy (0600) of a consent video, before its consent is recorded."""
    kept = evidence_path(home, digest, video.suffix)
    kept.parent.mkdir(mode=0o700, exist_ok=True)
    os.chmod(kept.parent, 0o700)
    partial = kept.with_name(kept.name + ".part")
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as out, video.open("rb") as source:
        shutil.copyfileobj(source, out, 1 << 20)
    os.replace(partial, kept)
    return kept
