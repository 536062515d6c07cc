"""Shared fixtures: real faces from XP_FACES (default ../shared/faces), never copied into the project."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def faces_root() -> Path:
    return Path(os.environ.get("XP_FACES", REPO.parent / "shared" / "faces"))


@pytest.fixture(scope="session")
def faces() -> Path:
    root = faces_root()
    if not (root / "manifest.json").is_file():
        pytest.skip(f"real face data not found at {root}; set XP_FACES to the shared faces folder")
    return root


@pytest.fixture(scope="session")
def source_photos(faces: Path) -> list[Path]:
    return sorted((faces / "source").iterdir())


@pytest.fixture(scope="session")
def driving_videos(faces: Path) -> list[Path]:
    return sorted((faces / "driving").iterdir())
