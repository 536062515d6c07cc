"""The ``xp`` command line against a real deployment: init, keys, subjects, consents, animate, verify, audit.

Every error is checked against the contract automation relies on: the error class's exit code, an empty stdout
and exactly one ``error: …`` line on stderr."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.cli.helpers import Deployment, assert_error, key_secrets_in, xp
from xp_sdk.errors import (
    AlreadyInitializedError,
    AuthenticationError,
    ConsentRequiredError,
    FaceMismatchError,
    InvalidInputError,
    NoFaceError,
    NotFoundError,
    PermissionDeniedError,
    PolicyDeniedError,
    RateLimitedError,
    UnreadableVideoError,
    UnsupportedFormatError,
    UntrustedMediaError,
    XPError,
)

REPO = Path(__file__).resolve().parents[2]
USAGE = 2


# -- init ----------------------------------------------------------------------------------------------------


def test_init_prints_every_field_and_the_key_once(deployment: Deployment) -> None:
    made = deployment.init
    assert set(made) >= {"home", "database_url", "tenant", "key_id", "api_key", "log_verifier_key", "trust_anchor"}
    assert made["home"] == str(deployment.home.resolve())
    assert made["database_url"].startswith("sqlite:///")
    assert made["tenant"] == "default"
    assert made["api_key"].startswith(f"xp_{made['key_id']}_")
    assert made["log_verifier_key"].startswith("xp-sdk-audit+")
    assert Path(made["trust_anchor"]).read_text(encoding="ascii").startswith("-----BEGIN CERTIFICATE-----")


def test_init_again_fails_with_the_already_initialized_code(deployment: Deployment) -> None:
    result = xp("init", "--home", deployment.home, "--json")
    assert_error(result, AlreadyInitializedError.exit_code, "already initialized")


def test_init_human_output_says_to_store_and_export_the_key(tmp_path: Path) -> None:
    result = xp("init", "--home", tmp_path / "home", "--tenant", "acme")
    assert result.code == 0, result.stderr
    [secret] = key_secrets_in(result.stdout)
    assert f"export XP_API_KEY={secret}" in result.stdout
    assert "shown this once" in result.stdout
    assert result.stderr == ""


# -- keys ----------------------------------------------------------------------------------------------------


def test_keys_create_list_revoke(deployment: Deployment) -> None:
    created = deployment.xp(
        "keys", "create", "--scopes", "audit:read,verify", "--expires", "30d", "--name", "auditor",
        "--rate-limit", "100", "--json",
    )  # fmt: skip
    made = created.json()
    assert set(made) >= {"id", "api_key", "tenant", "scopes", "expires_at"}
    assert made["tenant"] == "default"
    assert sorted(made["scopes"]) == ["audit:read", "verify"]
    assert made["status"] == "active" and made["rate_limit_per_minute"] == 100
    expires = datetime.fromisoformat(made["expires_at"])
    assert abs(expires - (datetime.now(UTC) + timedelta(days=30))) < timedelta(minutes=5)
    assert key_secrets_in(created.stdout) == [made["api_key"]]  # printed once, here

    assert deployment.xp("audit", "query", "--limit", "1", "--json", key=made["api_key"]).code == 0

    listed = deployment.xp("keys", "list", "--json")
    assert key_secrets_in(listed.stdout) == []  # never a secret, neither this key's nor the admin's
    assert made["api_key"].split("_")[2] not in listed.stdout
    keys = {k["id"]: k for k in listed.json()["keys"]}
    assert keys[made["id"]]["status"] == "active" and keys[deployment.init["key_id"]]["status"] == "active"
    human = deployment.xp("keys", "list")
    assert made["id"] in human.stdout and "auditor" in human.stdout and key_secrets_in(human.stdout) == []

    revoked = deployment.xp("keys", "revoke", made["id"], "--reason", "rotated", "--json").json()
    assert revoked["status"] == "revoked" and revoked["revoked_at"]
    keys = {k["id"]: k for k in deployment.xp("keys", "list", "--json").json()["keys"]}
    assert keys[made["id"]]["status"] == "revoked"

    refused = deployment.xp("audit", "query", "--json", key=made["api_key"])
    assert_error(refused, AuthenticationError.exit_code, "revoked")
    assert made["api_key"] not in refused.stderr


def test_keys_create_for_a_new_tenant_and_human_output(deployment: Deployment) -> None:
    result = deployment.xp("keys", "create", "--tenant", "acme", "--scope", "animate", "--scope", "verify")
    assert result.code == 0, result.stderr
    [secret] = key_secrets_in(result.stdout)
    assert "tenant acme" in result.stdout and f"export XP_API_KEY={secret}" in result.stdout


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("--scopes", "animate,teleport"), ("unknown scope", "teleport")),
        (("--scopes", "animate", "--expires", "2001-01-01T00:00Z"), ("in the past",)),
        (("--scopes", "animate", "--expires", "next tuesday"), ("--expires", "not a time")),
    ],
)
def test_keys_create_rejects_bad_input(deployment: Deployment, args: tuple[str, ...], words: tuple[str, ...]) -> None:
    assert_error(deployment.xp("keys", "create", *args, "--json"), InvalidInputError.exit_code, *words)


def test_keys_revoke_unknown_key_is_not_found(deployment: Deployment) -> None:
    assert_error(deployment.xp("keys", "revoke", "0123456789ab", "--json"), NotFoundError.exit_code)


def test_keys_anchor_prints_the_trust_anchor(deployment: Deployment) -> None:
    pem = xp("keys", "anchor", "--home", deployment.home)
    assert pem.code == 0 and pem.stdout == Path(deployment.init["trust_anchor"]).read_text(encoding="ascii")
    path = xp("keys", "anchor", "--home", deployment.home, "--path")
    assert path.stdout.strip() == deployment.init["trust_anchor"]


def test_keys_init_is_gone() -> None:
    assert_error(xp("keys", "init"), USAGE, "no such command")


# -- subjects and consents -----------------------------------------------------------------------------------


def test_subjects_register_list_show(deployment: Deployment) -> None:
    assert deployment.subject_id.startswith("sub_")
    listed = deployment.xp("subjects", "list", "--json").json()["subjects"]
    [mine] = [s for s in listed if s["id"] == deployment.subject_id]
    assert mine["name"] == "Astronaut" and mine["references"] == 1 and mine["protected"] is False
    shown = deployment.xp("subjects", "show", deployment.subject_id, "--json").json()
    assert shown["id"] == deployment.subject_id
    assert [c["id"] for c in shown["consents"]] == [deployment.consent_id]
    human = deployment.xp("subjects", "show", deployment.subject_id)
    assert deployment.consent_id in human.stdout and "Astronaut" in human.stdout
    assert_error(deployment.xp("subjects", "show", "sub_0000000000000000"), NotFoundError.exit_code)


def test_a_protected_person_cannot_be_animated(deployment: Deployment) -> None:
    """In a tenant of its own, so the protected face does not block the other tests' animations."""
    key = deployment.xp(
        "keys", "create", "--tenant", "guarded", "--scopes", "animate,subjects:write,consents:write,audit:read",
        "--json",
    ).json()["api_key"]  # fmt: skip
    protected = deployment.xp(
        "subjects", "register", "--name", "Protected Person", "--photo", deployment.photo,
        "--photo", deployment.photo, "--protected", "--json", key=key,
    ).json()  # fmt: skip
    assert protected["references"] == 2 and protected["protected"] is True and protected["tenant_id"] == "guarded"
    listed = deployment.xp("subjects", "list", "--protected", "--json", key=key).json()["subjects"]
    assert [s["id"] for s in listed] == [protected["id"]]

    subject = deployment.xp("subjects", "register", "--name", "Lookalike", "--photo", deployment.photo, "--json",
                            key=key).json()["id"]  # fmt: skip
    deployment.xp("consents", "grant", "--subject", subject, "--evidence", deployment.evidence, key=key)
    out = deployment.root / "protected.mp4"
    result = deployment.xp(
        "animate", "--source", deployment.photo, "--template", "blink", "--subject", subject, "--out", out, key=key
    )
    line = assert_error(result, PolicyDeniedError.exit_code, "protected person")
    # Which protected person it matched is the log's to know, not the caller's.
    assert protected["id"] not in line
    denied = deployment.xp("audit", "query", "--type", "generation.denied", "--json", key=key).json()["events"][-1]
    assert denied["data"]["request"]["facts"]["protected_match"]["subject_id"] == protected["id"]
    assert not out.exists()


def test_subjects_register_without_a_face(deployment: Deployment, tmp_path: Path) -> None:
    import cv2
    import numpy as np

    blank = tmp_path / "wall.png"
    cv2.imwrite(str(blank), np.full((256, 256, 3), 128, np.uint8))
    result = deployment.xp("subjects", "register", "--name", "Nobody", "--photo", blank, "--json")
    assert_error(result, NoFaceError.exit_code, "no face")


def test_consents_grant_list_revoke(deployment: Deployment) -> None:
    assert deployment.consent_id.startswith("con_")
    listed = deployment.xp("consents", "list", "--subject", deployment.subject_id, "--json").json()["consents"]
    [consent] = [c for c in listed if c["id"] == deployment.consent_id]
    assert consent["status"] == "active" and consent["scopes"] == ["animate"]
    assert consent["evidence_kind"] == "signed-statement" and len(consent["evidence_sha256"]) == 64

    extra = deployment.xp(
        "consents", "grant", "--subject", deployment.subject_id, "--evidence", deployment.evidence,
        "--purpose", "marketing", "--purpose", "news", "--expires", "2030-01-01", "--json",
    ).json()  # fmt: skip
    assert extra["purposes"] == ["marketing", "news"] and extra["valid_until"].startswith("2030-01-01")
    revoked = deployment.xp("consents", "revoke", extra["id"], "--reason", "withdrawn", "--json").json()
    assert revoked["status"] == "revoked" and revoked["revocation_reason"] == "withdrawn"
    human = deployment.xp("consents", "list")
    assert extra["id"] in human.stdout and "revoked" in human.stdout


def test_consents_grant_needs_real_evidence(deployment: Deployment, tmp_path: Path) -> None:
    result = deployment.xp(
        "consents", "grant", "--subject", deployment.subject_id, "--evidence", tmp_path / "missing.pdf", "--json"
    )
    assert_error(result, InvalidInputError.exit_code, "does not exist")


# -- animate -------------------------------------------------------------------------------------------------


def test_animate_json(deployment: Deployment) -> None:
    result = deployment.animation
    assert len(result["generation_id"]) == 16 and result["watermark_id"] == result["generation_id"]
    output = Path(result["output"])
    assert output.is_file() and output.stat().st_size > 0
    assert result["frames"] == 72 and result["subject_id"] == deployment.subject_id
    assert result["consent_id"] == deployment.consent_id
    assert result["face_similarity"] > 0.9
    requested, completed = result["audit_seq"]
    assert completed > requested


def test_animate_with_a_driving_video(deployment: Deployment, faces: Path) -> None:
    out = deployment.root / "driven.mp4"
    result = deployment.xp(
        "animate", "--source", deployment.photo, "--driving", faces / "driving" / "lp_d1_hist.mp4",
        "--subject", deployment.subject_id, "--out", out, "--no-audio",
    )  # fmt: skip
    assert result.code == 0, result.stderr
    assert out.is_file() and f"wrote {out}" in result.stdout and "watermarked, C2PA-signed" in result.stdout


def test_animate_without_the_animate_scope_is_permission_denied(deployment: Deployment) -> None:
    verify_only = deployment.xp("keys", "create", "--scopes", "verify", "--json").json()["api_key"]
    out = deployment.root / "denied-scope.mp4"
    result = deployment.xp(
        "animate", "--source", deployment.photo, "--template", "blink", "--subject", deployment.subject_id,
        "--out", out, "--json", key=verify_only,
    )  # fmt: skip
    assert_error(result, PermissionDeniedError.exit_code, "animate")
    assert not out.exists()


def test_animate_without_consent_is_consent_required(deployment: Deployment) -> None:
    other = deployment.xp("subjects", "register", "--name", "No Consent", "--photo", deployment.photo, "--json")
    out = deployment.root / "no-consent.mp4"
    result = deployment.xp(
        "animate", "--source", deployment.photo, "--template", "blink", "--subject", other.json()["id"],
        "--out", out, "--json",
    )  # fmt: skip
    assert_error(result, ConsentRequiredError.exit_code, "consent")
    assert not out.exists()


def test_animate_with_another_persons_photo_is_face_mismatch(deployment: Deployment, faces: Path) -> None:
    out = deployment.root / "mismatch.mp4"
    result = deployment.xp(
        "animate", "--source", faces / "source" / "lp_d30.jpg", "--template", "blink",
        "--subject", deployment.subject_id, "--out", out, "--json",
    )  # fmt: skip
    assert_error(result, FaceMismatchError.exit_code, "face")
    assert not out.exists()
    denied = deployment.xp("audit", "query", "--subject", deployment.subject_id, "--decision", "deny", "--json").json()[
        "events"
    ]
    assert any(e["type"] == "generation.denied" for e in denied)


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("--template", "blink", "--driving", "x.mp4"), ("exactly one",)),
        ((), ("exactly one",)),
        (("--template", "no-such-template"), ("no-such-template",)),
    ],
)
def test_animate_bad_arguments(deployment: Deployment, args: tuple[str, ...], words: tuple[str, ...]) -> None:
    out = deployment.root / "bad.mp4"
    result = deployment.xp(
        "animate", "--source", deployment.photo, "--subject", deployment.subject_id, "--out", out, *args, "--json"
    )
    assert_error(result, InvalidInputError.exit_code, *words)
    assert not out.exists()


def test_animate_a_photo_without_a_face(deployment: Deployment, tmp_path: Path) -> None:
    import cv2
    import numpy as np

    gray = tmp_path / "gray.png"
    cv2.imwrite(str(gray), np.full((512, 512, 3), 128, np.uint8))
    out = tmp_path / "o.mp4"
    result = deployment.xp(
        "animate", "--source", gray, "--template", "blink", "--subject", deployment.subject_id, "--out", out, "--json"
    )
    assert_error(result, NoFaceError.exit_code, "no face found")
    assert not out.exists()


@pytest.mark.parametrize(
    ("driving_name", "content", "error"),
    [("still.png", None, UnsupportedFormatError), ("empty.mp4", b"", UnreadableVideoError)],
)
def test_animate_with_an_unusable_driving_file(
    deployment: Deployment, tmp_path: Path, driving_name: str, content: bytes | None, error: type[XPError]
) -> None:
    import cv2
    import numpy as np

    driving = tmp_path / driving_name
    if content is None:
        cv2.imwrite(str(driving), np.zeros((64, 64, 3), np.uint8))
    else:
        driving.write_bytes(content)
    out = tmp_path / "o.mp4"
    result = deployment.xp(
        "animate", "--source", deployment.photo, "--driving", driving, "--subject", deployment.subject_id,
        "--out", out, "--json",
    )  # fmt: skip
    assert_error(result, error.exit_code, driving_name)
    assert list(tmp_path.iterdir()) == [driving]


def test_usage_errors_are_one_line(deployment: Deployment) -> None:
    assert_error(xp("animate", "--source", deployment.photo), USAGE, "missing option", "xp animate --help")
    assert_error(xp("audit", "query", "--decision", "maybe"), USAGE, "--decision")
    assert_error(xp("no-such-command"), USAGE, "no such command")


def test_no_api_key_is_an_authentication_error(deployment: Deployment) -> None:
    result = deployment.xp("audit", "query", "--json", key="")
    assert_error(result, AuthenticationError.exit_code, "--api-key", "XP_API_KEY")
    garbled = deployment.xp("audit", "query", "--json", key="xp_not_a_key")
    assert_error(garbled, AuthenticationError.exit_code, "malformed")


# -- verify --------------------------------------------------------------------------------------------------


def test_verify_with_an_api_key_finds_the_generation(deployment: Deployment) -> None:
    result = deployment.xp("verify", deployment.animation["output"], "--json")
    report = result.json()
    assert report["c2pa"]["state"] == "trusted" and report["c2pa"]["codes"] == []
    assert report["watermark"]["detected"] is True
    assert report["watermark"]["payload"] == deployment.animation["generation_id"]
    assert report["watermark"]["p_value"] < 1e-9
    assert report["consistent"] is True
    generation = report["generation"]
    assert generation is not None and generation["id"] == deployment.animation["generation_id"]
    assert generation["status"] == "completed" and generation["file_matches_record"] is True
    assert result.stderr == ""
    human = deployment.xp("verify", deployment.animation["output"], "--require-trusted")
    assert human.code == 0 and "trusted" in human.stdout and "identical to the recorded output" in human.stdout


def test_verify_without_an_api_key_checks_offline_and_says_so(deployment: Deployment) -> None:
    result = deployment.xp("verify", deployment.animation["output"], "--json", key="")
    report = result.json()
    assert report["generation"] is None
    assert report["c2pa"]["state"] == "trusted" and report["watermark"]["detected"] is True
    [note] = result.stderr_lines
    assert note.startswith("note: ") and "not looked up" in note


def test_verify_without_home_or_key_checks_the_manifest_only(deployment: Deployment, tmp_path: Path) -> None:
    video = deployment.animation["output"]
    outsider = xp("verify", video, "--home", tmp_path / "nowhere", "--json")
    report = outsider.json()
    assert report["generation"] is None and report["watermark"]["checked"] is False
    assert report["c2pa"]["state"] == "valid"  # signed, but by a CA this side does not trust
    assert len(outsider.stderr_lines) == 1 and "not looked up" in outsider.stderr
    refused = xp("verify", video, "--home", tmp_path / "nowhere", "--require-trusted", "--json")
    assert_error(refused, UntrustedMediaError.exit_code, "valid")
    anchored = xp(
        "verify", video, "--home", tmp_path / "nowhere", "--trust-anchors", deployment.init["trust_anchor"],
        "--require-trusted", "--json",
    )  # fmt: skip
    assert anchored.json()["c2pa"]["state"] == "trusted"


def test_verify_a_missing_file(deployment: Deployment) -> None:
    assert_error(deployment.xp("verify", deployment.root / "nope.mp4", "--json"), InvalidInputError.exit_code)


# -- audit ---------------------------------------------------------------------------------------------------


def test_audit_query_filters(deployment: Deployment) -> None:
    generation = deployment.animation["generation_id"]
    page = deployment.xp("audit", "query", "--generation", generation, "--json").json()
    assert set(page) == {"events", "next_cursor"}
    types = [e["type"] for e in page["events"]]
    assert types[:2] == ["generation.requested", "generation.completed"]
    assert all(e["generation_id"] == generation for e in page["events"])

    completed = deployment.xp("audit", "query", "--type", "generation.completed", "--json").json()["events"]
    assert completed and all(e["type"] == "generation.completed" for e in completed)
    prefixed = deployment.xp("audit", "query", "--type", "generation.", "--json").json()["events"]
    assert {e["type"] for e in prefixed} >= {"generation.requested", "generation.completed"}
    allowed = deployment.xp("audit", "query", "--decision", "allow", "--json").json()["events"]
    assert allowed and all(e["decision"] == "allow" for e in allowed)
    by_subject = deployment.xp("audit", "query", "--subject", deployment.subject_id, "--json").json()["events"]
    assert by_subject and all(e["subject_id"] == deployment.subject_id for e in by_subject)
    assert deployment.xp("audit", "query", "--since", "1h", "--json").json()["events"]
    assert deployment.xp("audit", "query", "--until", "2001-01-01", "--json").json()["events"] == []
    assert deployment.xp("audit", "query", "--tenant", "default", "--json").json()["events"]

    first = deployment.xp("audit", "query", "--limit", "2", "--json").json()
    assert len(first["events"]) == 2 and first["next_cursor"]
    second = deployment.xp("audit", "query", "--limit", "2", "--cursor", first["next_cursor"], "--json").json()
    assert second["events"][0]["seq"] == first["events"][-1]["seq"] + 1

    human = deployment.xp("audit", "query", "--generation", generation)
    assert human.code == 0 and "generation.completed" in human.stdout and "seq" in human.stdout
    assert_error(deployment.xp("audit", "query", "--cursor", "garbage"), InvalidInputError.exit_code, "cursor")
    assert_error(deployment.xp("audit", "query", "--since", "yesterday-ish"), InvalidInputError.exit_code, "--since")


def test_audit_show(deployment: Deployment) -> None:
    generation = deployment.animation["generation_id"]
    trail = deployment.xp("audit", "show", generation, "--json").json()
    assert trail["generation"]["id"] == generation and trail["generation"]["status"] == "completed"
    assert [e["type"] for e in trail["events"]][:2] == ["generation.requested", "generation.completed"]
    assert len(trail["proofs"]) == len(trail["events"])
    assert all(p["seq"] == e["seq"] for p, e in zip(trail["proofs"], trail["events"], strict=True))
    assert trail["log_verifier_key"] == deployment.init["log_verifier_key"]
    human = deployment.xp("audit", "show", generation)
    assert f"generation {generation}: completed" in human.stdout and "inclusion proof" in human.stdout
    assert_error(deployment.xp("audit", "show", "0000000000000000"), NotFoundError.exit_code)


def test_audit_verify(deployment: Deployment) -> None:
    summary = deployment.xp("audit", "verify", "--json").json()
    assert summary["tree_size"] > 0 and summary["checkpoints"] >= 1 and summary["witnessed"] == 0
    human = deployment.xp("audit", "verify")
    assert human.code == 0 and human.stdout.startswith("audit log consistent:")


def test_audit_checkpoints_round_trip_through_a_witness_file(deployment: Deployment) -> None:
    note = deployment.xp("audit", "checkpoint", "--json").json()
    assert note["note"].startswith(f"{note['origin']}\n{note['tree_size']}\n")
    # Asking is itself a logged decision, made before the signing: each request signs a tree one event larger.
    plain = deployment.xp("audit", "checkpoint")
    assert plain.stdout.startswith(f"{note['origin']}\n{note['tree_size'] + 1}\n")

    witness = deployment.root / "witness.notes"
    exported = deployment.xp("audit", "checkpoints", "--out", witness, "--json").json()
    assert exported["count"] >= 2 and exported["tree_sizes"][-1] == note["tree_size"] + 1
    text = witness.read_text(encoding="utf-8")
    assert text.count("\n\n\u2014 ") == exported["count"]  # each note: body, blank line, signature
    assert deployment.xp("audit", "checkpoints").stdout == text

    checked = deployment.xp("audit", "verify", "--witness", witness, "--json").json()
    assert checked["witnessed"] == exported["count"]
    single = deployment.root / "one.note"
    single.write_text(note["note"], encoding="utf-8")
    both = deployment.xp("audit", "verify", "--witness", witness, "--witness", single, "--json").json()
    assert both["witnessed"] == exported["count"] + 1

    # A note edited after it was signed no longer verifies under the log's key: it is not evidence about the log
    # (a witness's copy damaged, or a forgery), so it is refused as input; a note the log did sign over a root it
    # no longer holds is what reports tampering (tests/audit/test_witnessed_notes.py).
    tampered = deployment.root / "tampered.notes"
    lines = text.split("\n")
    lines[1] = str(int(lines[1]) + 1000)
    tampered.write_text("\n".join(lines), encoding="utf-8")
    assert_error(
        deployment.xp("audit", "verify", "--witness", tampered, "--json"), InvalidInputError.exit_code,
        "not a signed checkpoint note",
    )  # fmt: skip
    garbled = deployment.root / "garbled.notes"
    garbled.write_text(text.replace("\n\n\u2014 ", "\n\n- ", 1), encoding="utf-8")
    assert_error(deployment.xp("audit", "verify", "--witness", garbled), InvalidInputError.exit_code, "signature")


def test_audit_needs_audit_read(deployment: Deployment) -> None:
    animate_only = deployment.xp("keys", "create", "--scopes", "animate", "--json").json()["api_key"]
    assert_error(deployment.xp("audit", "verify", key=animate_only), PermissionDeniedError.exit_code)


# -- config --------------------------------------------------------------------------------------------------


def test_config_show_masks_the_api_key(deployment: Deployment) -> None:
    result = deployment.xp("config", "show", "--json")
    settings = result.json()
    assert settings["api_key"] == "***"
    assert deployment.admin_key not in result.stdout and key_secrets_in(result.stdout + result.stderr) == []
    assert settings["home"] == str(deployment.home.resolve())
    assert settings["database_url"] == deployment.init["database_url"]
    without = xp("config", "show", "--home", deployment.home, "--json").json()
    assert without["api_key"] is None
    human = deployment.xp("config", "show")
    assert "***" in human.stdout and deployment.admin_key not in human.stdout


def test_config_show_masks_a_database_password(tmp_path: Path) -> None:
    url = "postgresql://xp:hunter2@db.example:5432/xp"
    result = xp("config", "show", "--home", tmp_path, "--database-url", url, "--json")
    assert result.json()["database_url"] == "postgresql://xp:***@db.example:5432/xp"
    assert "hunter2" not in result.stdout


# -- the real entry point ------------------------------------------------------------------------------------


def _process(*args: object, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("XP_")}
    return subprocess.run(
        [sys.executable, "-m", "xp_sdk.cli", *(str(a) for a in args)],
        capture_output=True, text=True, cwd=REPO, env={**clean, **(env or {})}, timeout=120, check=False,
    )  # fmt: skip


def test_help_documents_the_output_contract_and_every_exit_code() -> None:
    from xp_sdk import errors

    result = _process("--help")
    assert result.returncode == 0
    text = " ".join(result.stdout.split())
    assert "and stdout stays empty, or with --json holds one JSON object" in text and '"error: <message>"' in text
    for name in errors.__all__:
        cls = getattr(errors, name)
        if cls is not errors.XPError:
            assert f"{cls.exit_code:>4}  " in result.stdout, name
    for command in ("init", "animate", "verify", "keys", "subjects", "consents", "audit", "config", "demo"):
        assert f"  {command} " in result.stdout


def test_a_refusal_from_a_real_process_is_one_stderr_line(deployment: Deployment) -> None:
    """The face embedder runs before the refusal: no native library may add lines to stderr (file descriptor 2,
    which the in-process tests cannot see)."""
    other = deployment.xp("subjects", "register", "--name", "Also No Consent", "--photo", deployment.photo, "--json")
    result = _process(
        "animate", "--source", deployment.photo, "--template", "blink", "--subject", other.json()["id"],
        "--out", deployment.root / "never.mp4", "--json",
        env={"XP_HOME": str(deployment.home), "XP_API_KEY": deployment.admin_key},
    )  # fmt: skip
    assert result.returncode == ConsentRequiredError.exit_code, result.stderr
    assert json.loads(result.stdout)["type"] == "ConsentRequiredError"  # --json: the error as one object
    assert len(result.stderr.splitlines()) == 1 and result.stderr.startswith("error: refused:")
    assert deployment.admin_key not in result.stderr


def test_a_successful_animation_from_a_real_process_keeps_stderr_clean(deployment: Deployment) -> None:
    out = deployment.root / "process.mp4"
    result = _process(
        "animate", "--source", deployment.photo, "--template", "blink", "--subject", deployment.subject_id,
        "--out", out, "--json", env={"XP_HOME": str(deployment.home), "XP_API_KEY": deployment.admin_key},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["output"] == str(out)
    assert result.stderr == ""  # MediaPipe's and TFLite's native logging is kept off a non-debug run


def test_audit_abandoned_lists_and_only_admins_close(deployment: Deployment) -> None:
    listed = deployment.xp("audit", "abandoned", "--older-than", "1h", "--json").json()
    assert listed == {"generations": []}
    reader = deployment.xp("keys", "create", "--scopes", "audit:read", "--json").json()["api_key"]
    assert deployment.xp("audit", "abandoned", "--json", key=reader).json() == {"generations": []}
    assert_error(deployment.xp("audit", "abandoned", "--close", key=reader), PermissionDeniedError.exit_code, "keys")
    assert_error(deployment.xp("audit", "abandoned", "--older-than", "soon"), InvalidInputError.exit_code, "duration")


def test_a_keys_rate_limit_holds_across_cli_calls(deployment: Deployment) -> None:
    """Each `xp` call is its own process with its own deployment handle: the limit is counted in the database they
    share, so a 5-a-minute key gets 5 answers of 7 (before: 7 of 7)."""
    made = deployment.xp("keys", "create", "--scopes", "audit:read", "--name", "five a minute", "--rate-limit", "5",
                         "--json").json()  # fmt: skip
    codes = [deployment.xp("subjects", "list", "--json", key=made["api_key"]).code for _ in range(7)]
    assert codes == [0] * 5 + [RateLimitedError.exit_code] * 2
