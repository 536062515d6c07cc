"""Subjects: registering a person from reference photos, and reading the subjects a caller may see."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from audit import SubjectInfo
from policy import Action
from xp_sdk.deployment import audit_errors
from xp_sdk.engine.images import check_image_array, load_image
from xp_sdk.engine.models import FACE_RECOGNIZER_SFACE
from xp_sdk.errors import InvalidInputError
from xp_sdk.inputs import Name, checked
from xp_sdk.service.core import PhotoInput, ServiceCore, sha256_file

MAX_REFERENCE_PHOTOS = 20


class Subjects(ServiceCore):
    """The people who may be animated, registered by a tenant from their reference photos."""

    def register_subject(
        self, api_key: str | None, name: str, photos: Sequence[PhotoInput], *, protected: bool = False
    ) -> SubjectInfo:
        """Register a person from one or more reference photos (each must show their face)."""
        request: dict[str, Any] = {"name": name if isinstance(name, str) else None, "protected": protected}
        caller = self.authorized(api_key, Action.REGISTER_SUBJECT, **request)
        with self._refusals(caller, Action.REGISTER_SUBJECT, request):
            clean = checked(Name, name.strip() if isinstance(name, str) else name, "subject name")
            if not photos:
                raise InvalidInputError("register a subject with at least one reference photo")
            if len(photos) > MAX_REFERENCE_PHOTOS:
                raise InvalidInputError(f"register a subject with at most {MAX_REFERENCE_PHOTOS} reference photos")
            references: list[tuple[np.ndarray, str]] = []
            for index, photo in enumerate(photos):
                image, digest = read_photo(photo)
                what = f"reference photo {photo}" if not isinstance(photo, np.ndarray) else f"reference photo #{index}"
                # A reference is a face both detectors see (YuNet alone sees one in a coffee cup), whichever way up
                # its photo was stored.
                with self._embedder_lock:
                    references.append((self._identity().reference_embedding(image, name=what), digest))
        with audit_errors():
            return self.deployment.ledger.register_subject(
                caller.tenant_id,
                clean,
                references,
                model=f"sface:{FACE_RECOGNIZER_SFACE.sha256[:16]}",
                protected=bool(protected),
                actor=caller.key.id,
                decision=self._decision(caller),
            )

    def subject(self, api_key: str | None, subject_id: str) -> SubjectInfo:
        caller = self.authorized(api_key, Action.AUDIT_READ, subject_id=subject_id)
        request = {"operation": "subjects.get", "subject_id": subject_id}
        with self._refusals(caller, Action.AUDIT_READ, request, subject_id=subject_id):
            found = self._visible_subject(caller, subject_id)
        self._record_read(caller, Action.AUDIT_READ, operation="subjects.get", subject_id=subject_id)
        return found

    def subjects(self, api_key: str | None, *, protected: bool | None = None) -> list[SubjectInfo]:
        caller = self.authorized(api_key, Action.AUDIT_READ, operation="subjects.list")
        with audit_errors():
            found = self.deployment.ledger.subjects(caller.tenant_id, protected=protected)
        self._record_read(caller, Action.AUDIT_READ, operation="subjects.list", returned=len(found))
        return found


def read_photo(source: PhotoInput) -> tuple[np.ndarray, str]:
    """The photo as RGB and the SHA-256 that identifies it in the log (of the file, or of the pixels)."""
    if isinstance(source, np.ndarray):
        image = check_image_array(source, name="source photo")
        return image, hashlib.sha256(np.ascontiguousarray(image).tobytes()).hexdigest()
    image = load_image(source)
    return image, sha256_file(Path(source))
