"""Errors raised by the policy package; each carries a stable machine-readable ``code``."""

from __future__ import annotations

from pathlib import Path


class PolicyError(Exception):
    """Base of every policy error."""

    def __init__(self, message: str, *, code: str = "policy_error") -> None:
        super().__init__(message)
        self.code = code


class PolicyLoadError(PolicyError):
    """A policy set could not be loaded; nothing from it is used (fail closed)."""

    def __init__(self, message: str, *, path: Path | str | None = None) -> None:
        super().__init__(f"{path}: {message}" if path is not None else message, code="policy_load_error")
        self.path = path
