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


class EngineError(XPError):
    """Generation failed for a reason other than the inputs (a bug or a resource problem)."""

    code = "engine_error"
    exit_code = 5


__all__ = [
    "EngineError",
    "FaceError",
    "FaceTooSmallError",
    "ImageTooLargeError",
    "ImageTooSmallError",
    "InvalidInputError",
    "ModelError",
    "ModelHashMismatchError",
    "ModelNotFoundError",
    "MultipleFacesError",
    "NoFaceError",
    "TemplateError",
    "UnreadableImageError",
    "UnreadableVideoError",
    "UnsupportedFormatError",
    "XPError",
]


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
