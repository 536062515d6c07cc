"""The error hierarchy. Every failure a caller can act on is an ``XPError`` subclass.

Each class carries a stable ``code`` (for JSON output and HTTP bodies) and an ``exit_code`` (for the CLI),
so automation can branch on the class without parsing messages.

Each class also declares, once, how it travels over HTTP: ``http_status`` (what ``xp serve`` answers with; a
subclass inherits its base's) and, when it carries more than its message, ``wire_fields`` (the extra fields of its
JSON body) with ``from_wire`` (the constructor call that reads them back). ``xp_sdk.server.errors`` writes error
bodies, and ``xp_sdk.transport`` rebuilds the very class from them, from these declarations alone.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Self


class XPError(Exception):
    """Root of every error xp-sdk raises on purpose."""

    code: str = "xp_error"
    exit_code: ClassVar[int] = 1
    http_status: ClassVar[int] = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def wire_fields(self) -> dict[str, Any]:
        """What this error's body carries besides ``error``, ``type`` and ``message``, as JSON values."""
        return {}

    @classmethod
    def from_wire(cls, message: str, body: Mapping[str, Any]) -> Self:
        """The error a body (``to_dict``'s JSON) describes, made again on the other side of the wire."""
        return cls(message)

    def to_dict(self) -> dict[str, Any]:
        return {"error": self.code, "type": type(self).__name__, "message": self.message, **self.wire_fields()}


class InvalidInputError(XPError):
    """An input file or argument cannot be used; the message says which and why."""

    code = "invalid_input"
    exit_code = 2
    http_status = 400


class UnreadableImageError(InvalidInputError):
    code = "unreadable_image"


class ImageTooSmallError(InvalidInputError):
    code = "image_too_small"


class ImageTooLargeError(InvalidInputError):
    code = "image_too_large"


class UnreadableVideoError(InvalidInputError):
    """Corrupt, empty, zero-frame, or not a video at all."""

    code = "unreadable_video"


class VideoTooLongError(InvalidInputError):
    """A driving video runs longer, in seconds or in frames, than the deployment allows (its header says so, or its
    frames keep coming past the limit while it is read)."""

    code = "video_too_long"


class UnsupportedFormatError(InvalidInputError):
    code = "unsupported_format"


class TemplateError(InvalidInputError):
    """A motion template is unknown or malformed."""

    code = "invalid_template"


class FaceError(InvalidInputError):
    """Base for problems with the face in an image or video."""

    code = "face_error"
    exit_code = 3


class NoFaceError(FaceError):
    code = "no_face"


class MultipleFacesError(FaceError):
    code = "multiple_faces"

    def __init__(self, message: str, count: int) -> None:
        super().__init__(message)
        self.count = count

    def wire_fields(self) -> dict[str, Any]:
        return {"count": self.count}

    @classmethod
    def from_wire(cls, message: str, body: Mapping[str, Any]) -> Self:
        return cls(message, _integer(body.get("count")) or 0)


class FaceTooSmallError(FaceError):
    code = "face_too_small"


class ModelError(XPError):
    """A model file is missing or is not the pinned file."""

    code = "model_error"
    exit_code = 4


class ModelNotFoundError(ModelError):
    code = "model_not_found"


class ModelHashMismatchError(ModelError):
    code = "model_hash_mismatch"


class DiffusionWeightsMissingError(ModelError):
    """The diffusion engine's weights are not configured, not on disk, or not pinned; ``missing`` names them."""

    code = "diffusion_weights_missing"

    def __init__(self, message: str, missing: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.missing = missing

    def wire_fields(self) -> dict[str, Any]:
        return {"missing": list(self.missing)}

    @classmethod
    def from_wire(cls, message: str, body: Mapping[str, Any]) -> Self:
        return cls(message, missing=tuple(str(name) for name in _items(body.get("missing"))))


class EngineError(XPError):
    """Generation failed for a reason other than the inputs (a bug or a resource problem)."""

    code = "engine_error"
    exit_code = 5


class DeviceUnavailableError(EngineError):
    """The accelerator or number format asked for is not available on this machine."""

    code = "device_unavailable"


class ProvenanceFailedError(XPError):
    """Marking, signing or reading provenance failed; ``code`` is the provenance package's own code."""

    code = "provenance_error"
    exit_code = 6

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code

    @classmethod
    def from_wire(cls, message: str, body: Mapping[str, Any]) -> Self:
        code = body.get("error")
        return cls(message, code=code if isinstance(code, str) else None)


class HomeError(XPError):
    """The deployment's home is missing what the command needs, or already has what it would create."""

    code = "home_error"
    exit_code = 7


class NotInitializedError(HomeError):
    code = "not_initialized"


class AlreadyInitializedError(HomeError):
    code = "already_initialized"
    http_status = 409


class UntrustedMediaError(XPError):
    """A video's provenance does not meet the bar the caller asked for (``require_trusted``)."""

    code = "untrusted_media"
    exit_code = 8
    http_status = 422


class ForgedMarkError(UntrustedMediaError):
    """The watermark names a generation, but the pictures are not that generation's output: a transplanted or forged
    mark, never to be taken for the generation."""

    code = "forged_mark"


class AuthenticationError(XPError):
    """No API key, or one that is malformed, unknown, wrong, revoked or expired."""

    code = "authentication_failed"
    exit_code = 10
    http_status = 401


class AccessDeniedError(XPError):
    """The gate refused the request. ``reasons`` (code, message, policy id) say why; ``decision_id`` finds the
    refusal in the audit log."""

    code = "access_denied"
    exit_code = 11
    http_status = 403

    def __init__(
        self, message: str, *, reasons: tuple[tuple[str, str, str | None], ...] = (), decision_id: str | None = None
    ) -> None:
        super().__init__(message)
        self.reasons = reasons
        self.decision_id = decision_id

    def wire_fields(self) -> dict[str, Any]:
        return {
            "decision_id": self.decision_id,
            "reasons": [{"code": c, "message": m, "policy_id": p} for c, m, p in self.reasons],
        }

    @classmethod
    def from_wire(cls, message: str, body: Mapping[str, Any]) -> Self:
        reasons = tuple(
            (str(r.get("code", "")), str(r.get("message", "")), _text(r.get("policy_id")))
            for r in _items(body.get("reasons"))
            if isinstance(r, Mapping)
        )
        return cls(message, reasons=reasons, decision_id=_text(body.get("decision_id")))


class PermissionDeniedError(AccessDeniedError):
    """The API key lacks the scope this action needs."""

    code = "permission_denied"
    exit_code = 12


class ConsentRequiredError(AccessDeniedError):
    """The subject has no active consent for this tenant, scope and purpose (none, revoked, expired)."""

    code = "consent_required"
    exit_code = 13


class FaceMismatchError(AccessDeniedError):
    """The face in the photo is not the named subject's."""

    code = "face_mismatch"
    exit_code = 14


class PolicyDeniedError(AccessDeniedError):
    """A Cedar policy forbids the request (a protected person, an operator's rule)."""

    code = "policy_denied"
    exit_code = 15


class ConsentVideoRejectedError(AccessDeniedError):
    """A consent video does not prove the consent: ``reasons`` name each failed check (face, liveness, phrase,
    not_generated, fresh) with what it saw. Nothing was recorded but the refusal."""

    code = "consent_video_rejected"
    exit_code = 23


class RateLimitedError(XPError):
    """The API key is over its request rate; retry after ``retry_after`` seconds."""

    code = "rate_limited"
    exit_code = 16
    http_status = 429

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after

    def wire_fields(self) -> dict[str, Any]:
        return {"retry_after": self.retry_after}

    @classmethod
    def from_wire(cls, message: str, body: Mapping[str, Any]) -> Self:
        wait = body.get("retry_after")
        return cls(message, retry_after=float(wait) if isinstance(wait, int | float) else 0.0)


class NotFoundError(XPError):
    """A named key, subject, consent, generation or event does not exist."""

    code = "not_found"
    exit_code = 17
    http_status = 404


class ConflictError(XPError):
    """The record already exists, or is already in the state asked for."""

    code = "conflict"
    exit_code = 18
    http_status = 409


class AuditStoreError(XPError):
    """The audit database cannot be reached, opened or written: nothing was generated."""

    code = "store_error"
    exit_code = 19
    http_status = 503


class AuditIntegrityError(XPError):
    """The audit log was altered. ``seq`` is the first inconsistent event when one can be named."""

    code = "log_tampered"
    exit_code = 20

    def __init__(self, message: str, seq: int | None = None) -> None:
        super().__init__(message)
        self.seq = seq

    def wire_fields(self) -> dict[str, Any]:
        return {"seq": self.seq}

    @classmethod
    def from_wire(cls, message: str, body: Mapping[str, Any]) -> Self:
        return cls(message, seq=_integer(body.get("seq")))


# What only a network adds: raised by a remote client (``Client(base_url=...)``), never by the server.


class APIConnectionError(XPError):
    """The server could not be reached, or the connection broke, after every retry."""

    code = "connection_error"
    exit_code = 21


class APITimeoutError(APIConnectionError):
    """The server did not answer within the timeout, after every retry."""

    code = "timeout"


class APIResponseError(XPError):
    """An answer the client cannot read as the server's (a proxy's error page, a truncated download)."""

    code = "bad_response"
    exit_code = 22

    def __init__(self, message: str, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code

    def wire_fields(self) -> dict[str, Any]:
        return {"status_code": self.status_code}

    @classmethod
    def from_wire(cls, message: str, body: Mapping[str, Any]) -> Self:
        return cls(message, status_code=_integer(body.get("status_code")))


def _integer(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _items(value: object) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else []


def error_class(name: str) -> type[XPError]:
    """The public error class called ``name`` (as in an error body's ``type``), else ``XPError``."""
    found = globals().get(name) if name in __all__ else None
    return found if isinstance(found, type) and issubclass(found, XPError) else XPError


__all__ = [
    "APIConnectionError",
    "APIResponseError",
    "APITimeoutError",
    "AccessDeniedError",
    "AlreadyInitializedError",
    "AuditIntegrityError",
    "AuditStoreError",
    "AuthenticationError",
    "ConflictError",
    "ConsentRequiredError",
    "ConsentVideoRejectedError",
    "DeviceUnavailableError",
    "DiffusionWeightsMissingError",
    "EngineError",
    "FaceError",
    "FaceMismatchError",
    "FaceTooSmallError",
    "ForgedMarkError",
    "HomeError",
    "ImageTooLargeError",
    "ImageTooSmallError",
    "InvalidInputError",
    "ModelError",
    "ModelHashMismatchError",
    "ModelNotFoundError",
    "MultipleFacesError",
    "NoFaceError",
    "NotFoundError",
    "NotInitializedError",
    "PermissionDeniedError",
    "PolicyDeniedError",
    "ProvenanceFailedError",
    "RateLimitedError",
    "TemplateError",
    "UnreadableImageError",
    "UnreadableVideoError",
    "UnsupportedFormatError",
    "UntrustedMediaError",
    "VideoTooLongError",
    "XPError",
]
