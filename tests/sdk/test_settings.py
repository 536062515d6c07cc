"""The one settings object: consent validity (``XP_CONSENT_VALIDITY_DAYS``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from xp_sdk.config import Settings
from xp_sdk.errors import InvalidInputError


@pytest.fixture(autouse=True)
def _no_consent_validity_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("XP_CONSENT_VALIDITY_DAYS", raising=False)


def test_consents_are_valid_for_a_year_by_default(tmp_path: Path) -> None:
    assert Settings.resolve(home=tmp_path).consent_validity_days == 365


def test_consent_validity_comes_from_the_environment_then_the_config_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"consent_validity_days": 90}), encoding="utf-8")
    assert Settings.resolve(home=tmp_path).consent_validity_days == 90
    monkeypatch.setenv("XP_CONSENT_VALIDITY_DAYS", "30")
    assert Settings.resolve(home=tmp_path).consent_validity_days == 30
    assert Settings.resolve(home=tmp_path, consent_validity_days=7).consent_validity_days == 7
    assert Settings.resolve(home=tmp_path).masked()["consent_validity_days"] == 30


@pytest.mark.parametrize("days", ["0", "-1", "36501", "1e9", "a year", "nan"])
def test_a_consent_validity_outside_1_to_36500_days_is_invalid_input(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, days: str
) -> None:
    monkeypatch.setenv("XP_CONSENT_VALIDITY_DAYS", days)
    with pytest.raises(InvalidInputError, match="consent_validity_days"):
        Settings.resolve(home=tmp_path)


def test_the_bounds_themselves_are_valid(tmp_path: Path) -> None:
    assert Settings.resolve(home=tmp_path, consent_validity_days=1).consent_validity_days == 1
    assert Settings.resolve(home=tmp_path, consent_validity_days=36500).consent_validity_days == 36500
