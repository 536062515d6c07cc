"""``xp models check`` and ``xp animate --engine diffusion`` without weights: a clear refusal, nothing made."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli.helpers import Deployment, assert_error, xp

MODELS_TEMPLATE = Path(__file__).resolve().parents[2] / "models.toml"


def test_models_check_without_a_models_toml_names_what_is_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XP_HOME", str(tmp_path / "nowhere"))
    result = xp("models", "check", "--json")
    assert result.code == 4
    report = json.loads(result.stdout)
    missing = {c["name"] for c in report["components"] if c["required"] and c["state"] != "ok"}
    assert {"unet", "vae", "controlnet"} <= missing


def test_models_check_reads_the_shipped_template(monkeypatch: pytest.MonkeyPatch) -> None:
    result = xp("models", "check", "--models", MODELS_TEMPLATE, "--no-hash")
    assert result.code == 4
    assert "unet" in result.stdout and "not ready" in result.stdout


def test_animate_with_diffusion_and_no_weights_is_refused_before_anything_is_logged(
    deployment: Deployment, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("XP_MODELS_TOML", raising=False)
    before = deployment.xp("audit", "query", "--limit", "1000", "--json").json()["events"]
    out = tmp_path / "diffusion.mp4"
    result = deployment.xp(
        "animate", "--source", deployment.photo, "--template", "blink", "--subject", deployment.subject_id,
        "--out", out, "--engine", "diffusion", "--models", tmp_path / "missing.toml",
    )  # fmt: skip
    assert_error(result, 4, "models.toml")
    assert not out.exists() and list(tmp_path.iterdir()) == []
    after = deployment.xp("audit", "query", "--limit", "1000", "--json").json()["events"]
    # The only new event is the first query's own record of having read the log.
    assert [e["type"] for e in after[len(before) :]] == ["access.allowed"]


def test_unknown_engine_is_a_usage_error(deployment: Deployment, tmp_path: Path) -> None:
    result = deployment.xp(
        "animate", "--source", deployment.photo, "--template", "blink", "--subject", deployment.subject_id,
        "--out", tmp_path / "x.mp4", "--engine", "magic",
    )  # fmt: skip
    assert_error(result, 2, "warp or diffusion")
