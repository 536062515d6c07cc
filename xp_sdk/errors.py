"""The error hierarchy. Every failure a caller can act on is an ``XPError`` subclass.

Each class carries a stable ``code`` (for JSON output and HTTP bodies) and an ``exit_code`` (for the CLI),
so automation can branch on the class without parsing messages.
"""

from __future__ import annotations


class XPError(Exception):
    """Root of every error xp-sdk raises on purpose."""

    code: str = "xp_error"
    exit_code: int = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def to_dict(self) -> dict[str, str]:
        return {"error": self.code, "type": type(self).__name__, "message": self.message}


class InvalidInputError(XPError):
    """An input file or argument cannot be used; the message says which and why."""

    code = "invalid_input"
    exit_code = 2


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


class HomeError(XPError):
    """The deployment's home is missing what the command needs, or already has what it would create."""

    code = "home_error"
    exit_code = 7


class NotInitializedError(HomeError):
    code = "not_initialized"


class AlreadyInitializedError(HomeError):
    code = "already_initialized"


class UntrustedMediaError(XPError):
    """A video's provenance does not meet the bar the caller asked for (``require_trusted``)."""

    code = "untrusted_media"
    exit_code = 8


class AuthenticationError(XPError):
    """No API key, or one that is malformed, unknown, wrong, revoked or expired."""

    code = "authentication_failed"
    exit_code = 10


class AccessDeniedError(XPError):
    """The gate refused the request. ``reasons`` (code, message, policy id) say why; ``decision_id`` finds the
    refusal in the audit log."""

    code = "access_denied"
    exit_code = 11

    def __init__(
        self, message: str, *, reasons: tuple[tuple[str, str, str | None], ...] = (), decision_id: str | None = None
    ) -> None:
        super().__init__(message)
        self.reasons = reasons
        self.decision_id = decision_id

    def to_dict(self) -> dict[str, object]:  # type: ignore[override]
        return {
            **super().to_dict(),
            "decision_id": self.decision_id,
            "reasons": [{"code": c, "message": m, "policy_id": p} for c, m, p in self.reasons],
        }


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


class RateLimitedError(XPError):
    """The API key is over its request rate; retry after ``retry_after`` seconds."""

    code = "rate_limited"
    exit_code = 16

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class NotFoundError(XPError):
    """A named key, subject, consent, generation or event does not exist."""

    code = "not_found"
    exit_code = 17


class ConflictError(XPError):
    """The record already exists, or is already in the state asked for."""

    code = "conflict"
    exit_code = 18


class AuditStoreError(XPError):
    """The audit database cannot be reached, opened or written: nothing was generated."""

    code = "store_error"
    exit_code = 19


class AuditIntegrityError(XPError):
    """The audit log was altered. ``seq`` is the first inconsistent event when one can be named."""

    code = "log_tampered"
    exit_code = 20

    def __init__(self, message: str, seq: int | None = None) -> None:
        super().__init__(message)
        self.seq = seq


def error_class(name: str) -> type[XPError]:
    """The public error class called ``name`` (as in an error body's ``type``), else ``XPError``."""
    found = globals().get(name) if name in __all__ else None
    return found if isinstance(found, type) and issubclass(found, XPError) else XPError


__all__ = [
    "AccessDeniedError",
    "AlreadyInitializedError",
    "AuditIntegrityError",
    "AuditStoreError",
    "AuthenticationError",
    "ConflictError",
    "ConsentRequiredError",
    "DeviceUnavailableError",
    "DiffusionWeightsMissingError",
    "EngineError",
    "FaceError",
    "FaceMismatchError",
    "FaceTooSmallError",
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
