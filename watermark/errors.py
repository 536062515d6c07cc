"""Errors raised by the watermark package. Each carries a stable ``code`` so callers can branch without parsing text.

The package imports nothing from the rest of the repository; ``xp_sdk`` maps these onto its own hierarchy.
"""

from __future__ import annotations


class ProvenanceError(Exception):
    """Root of every error the watermark package raises on purpose."""

    code: str = "provenance_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class CredentialsError(ProvenanceError):
    """A certificate or key is missing, unreadable, mismatched, or lacks what C2PA requires."""

    code = "credentials_error"


class CredentialsExistError(CredentialsError):
    """Credentials are already present where new ones were to be written."""

    code = "credentials_exist"


class MediaNotFoundError(ProvenanceError):
    code = "media_not_found"


class UnsupportedMediaError(ProvenanceError):
    """The file is not a container this operation handles (signing is MP4 only)."""

    code = "unsupported_media"


class SigningError(ProvenanceError):
    """The C2PA manifest could not be built, signed or embedded."""

    code = "signing_failed"


class ManifestReadError(ProvenanceError):
    """A media file could not be read for its manifest (I/O failure, truncated container)."""

    code = "manifest_unreadable"


class WatermarkError(ProvenanceError):
    """Base for invisible-watermark failures (embedding, detection, keys)."""

    code = "watermark_error"


class WatermarkKeyError(WatermarkError):
    """The watermark key is missing, malformed, or would be replaced."""

    code = "watermark_key_error"


class InvalidCodewordError(WatermarkError, ValueError):
    """Bits handed to the payload's BCH code have the wrong shape or are not 0/1 (a caller's bug, not a bad video)."""

    code = "invalid_codeword"


class UnreadableVideoError(WatermarkError):
    """The file cannot be decoded as a video to embed or look for a mark."""

    code = "unreadable_video"


class MethodUnavailableError(WatermarkError):
    """A watermark method needs a library that is not installed; the message names the extra that brings it."""

    code = "watermark_method_unavailable"
