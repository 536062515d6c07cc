"""The `xp` CLI against a running server: XP_BASE_URL turns every command into a remote call."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from tests.cli.helpers import xp

from .conftest import Deployed


@pytest.fixture
def remote(deployed: Deployed, monkeypatch: pytest.MonkeyPatch) -> Deployed:
    monkeypatch.setenv("XP_BASE_URL", deployed.url)
    monkeypatch.delenv("XP_HOME", raising=False)
    return deployed


def test_animate_verify_and_audit_over_http(remote: Deployed) -> None:
    out = remote.out("cli-remote.mp4")
    made = xp(
        "animate", "--source", remote.astronaut, "--driving", remote.clip, "--subject", remote.eileen,
        "--out", out, "--api-key", remote.animator_key, "--json",
    )  # fmt: skip
    assert made.code == 0, made.stderr
    result = json.loads(made.stdout)
    assert hashlib.sha256(out.read_bytes()).hexdigest() == result["output_sha256"]

    verified = xp("verify", out, "--api-key", remote.animator_key, "--json")
    assert verified.code == 0, verified.stderr
    report = json.loads(verified.stdout)
    assert report["watermark"]["payload"] == result["generation_id"]
    assert report["generation"]["status"] == "completed"

    trail = xp("audit", "query", "--generation", result["generation_id"], "--api-key", remote.admin_key, "--json")
    assert trail.code == 0, trail.stderr
    types = [e["type"] for e in json.loads(trail.stdout)["events"]]
    assert types[:2] == ["generation.requested", "generation.completed"]


def test_a_refusal_over_http_keeps_its_exit_code(remote: Deployed, tmp_path: Path) -> None:
    refused = xp(
        "animate", "--source", remote.woman, "--driving", remote.clip, "--subject", remote.eileen,
        "--out", tmp_path / "x.mp4", "--api-key", remote.animator_key,
    )  # fmt: skip
    assert refused.code == 14 and refused.stdout == ""
    assert refused.stderr.count("\n") == 1 and "face" in refused.stderr


def test_consistency_proof_over_http(remote: Deployed) -> None:
    from audit import SignedCheckpoint
    from audit.merkle import verify_consistency

    first = remote.admin.audit.checkpoint()
    assert first is not None
    old_size = int(first.split("\n")[1])
    remote.admin.subjects.register("Eileen, once more", [remote.astronaut])
    remote.admin.audit.checkpoint()
    shown = xp("audit", "consistency", old_size, "--api-key", remote.admin_key, "--json")
    assert shown.code == 0, shown.stderr
    proof = json.loads(shown.stdout)
    assert proof["old_size"] == old_size and proof["new_size"] > old_size
    assert proof["old_root"] == SignedCheckpoint.parse(first).checkpoint.root_hash.hex()
    verify_consistency(
        proof["old_size"], proof["new_size"], bytes.fromhex(proof["old_root"]), bytes.fromhex(proof["new_root"]),
        [bytes.fromhex(h) for h in proof["path"]],
    )


def test_abandoned_generations_over_http(remote: Deployed) -> None:
    shown = xp("audit", "abandoned", "--older-than", "1h", "--api-key", remote.admin_key, "--json")
    assert shown.code == 0, shown.stderr
    assert json.loads(shown.stdout) == {"generations": []}
