"""``xp demo``: the whole product on the scikit-image astronaut, needing no external file; a second run reuses
the demo's home."""

from __future__ import annotations

import stat
from pathlib import Path

from tests.cli.helpers import assert_error, xp
from xp_sdk.errors import HomeError


def test_demo_runs_end_to_end_and_reuses_its_home(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    first = xp("demo", "--out", out, "--template", "blink", "--json").json()
    assert first["home_reused"] is False
    assert Path(first["video"]) == (out / "astronaut_blink.mp4").resolve() and Path(first["video"]).is_file()
    assert Path(first["contact_sheet"]).is_file()
    assert first["c2pa"] == "trusted"
    assert first["watermark"]["detected"] is True and first["watermark"]["payload"] == first["generation_id"]
    assert first["watermark"]["p_value"] < 1e-9
    record = first["generation_record"]
    assert record["id"] == first["generation_id"] and record["file_matches_record"] is True
    types = [e["type"] for e in first["audit_events"]]
    assert types == ["generation.requested", "generation.completed", "verification.performed"]
    assert first["audit_log"]["tree_size"] > 0

    statement = (out / "consent-statement.txt").read_text(encoding="utf-8")
    assert "demo consent statement" in statement
    key_file = out / "home" / "demo-admin.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert key_file.read_text(encoding="ascii").startswith("xp_")

    second = xp("demo", "--out", out, "--template", "blink")
    assert second.code == 0, second.stderr
    assert "reused" in second.stdout and "already registered" in second.stdout and "still active" in second.stdout
    assert f"video:      {first['video']}" in second.stdout
    assert "C2PA trusted" in second.stdout and "watermark detected" in second.stdout
    assert "generation record found (completed), file matches" in second.stdout
    assert second.stderr == ""


def test_demo_refuses_a_home_it_did_not_make(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    assert xp("init", "--home", out / "home", "--json").code == 0
    assert_error(xp("demo", "--out", out, "--template", "blink"), HomeError.exit_code, "demo-admin.key")
