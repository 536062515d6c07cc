"""Every ``XP_*`` variable goes through the one settings object: each one the code names is a ``Settings`` field
(``xp_sdk.config.VARIABLES``), only the places allowed to read the environment read it, and ``xp config show``
prints every one (secrets masked).

Read from the source (every ``.py`` file of the four packages), so a variable added anywhere is caught here.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from tests.cli.helpers import xp
from xp_sdk.config import VARIABLES, Settings

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("xp_sdk", "policy", "watermark", "audit")
VARIABLE = re.compile(r"\bXP_[A-Z0-9_]*[A-Z0-9]\b")

READERS = {
    "xp_sdk/config.py": "the settings themselves",
    "xp_sdk/variables.py": "the settings' table of XP_* names and environment(), light enough for a remote client",
    "xp_sdk/home.py": "XP_HOME, which the engine needs as well and the settings resolve through Home.resolve",
    "xp_sdk/quiet.py": "sets the native libraries' log levels (GLOG_minloglevel and others) by name from its table",
    "xp_sdk/engine/": "the engine's own variables: it may import no settings (they import policy and audit)",
}
"""Where the environment's ``XP_*`` variables may be read, and why there."""


def sources() -> list[Path]:
    return sorted(p for package in PACKAGES for p in (ROOT / package).rglob("*.py"))


def named_variables() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for path in sources():
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            for name in VARIABLE.findall(line):
                found.setdefault(name, []).append(f"{path.relative_to(ROOT)}:{number}")
    return found


def test_the_source_names_the_variables_this_test_knows() -> None:
    assert {"XP_HOME", "XP_API_KEY", "XP_BASE_URL", "XP_DEBUG", "XP_FACE_TRACKING"} <= set(named_variables())


def test_every_variable_the_code_names_is_a_setting() -> None:
    unknown = {name: places for name, places in named_variables().items() if name not in VARIABLES.values()}
    assert unknown == {}, "XP_* variables that are no Settings field (add them to xp_sdk.config.VARIABLES)"
    assert set(VARIABLES) <= set(Settings.model_fields)
    assert len(set(VARIABLES.values())) == len(VARIABLES)


def _reads_environment(node: ast.AST) -> ast.expr | None:
    """The name read when ``node`` reads ``os.environ`` (``[…]``, ``.get``, ``getenv``), else None."""
    if isinstance(node, ast.Subscript) and ast.unparse(node.value) in ("os.environ", "environ"):
        return node.slice
    if isinstance(node, ast.Call) and node.args:
        called = ast.unparse(node.func)
        if called in ("os.environ.get", "environ.get", "os.getenv", "getenv", "os.environ.setdefault"):
            return node.args[0]
    return None


def test_only_the_settings_home_and_engine_read_xp_variables() -> None:
    readers = []
    for path in sources():
        relative = str(path.relative_to(ROOT))
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            name = _reads_environment(node)
            if name is None or (isinstance(name, ast.Constant) and not str(name.value).startswith("XP_")):
                continue  # not the environment, or a variable that is not ours (XDG_DATA_HOME, GLOG_minloglevel)
            if not any(relative.startswith(allowed) for allowed in READERS):
                readers.append(f"{relative}:{getattr(node, 'lineno', '?')}: {ast.unparse(node)}")
    assert readers == []


def test_config_show_prints_every_setting_with_secrets_masked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    given = {
        "XP_API_KEY": "xp_0123456789ab_secretsecretsecret",
        "XP_DATABASE_URL": "postgresql://xp:hunter2@127.0.0.1:5432/test",
        "XP_BASE_URL": "https://xp.example",
        "XP_DEBUG": "1",
        "XP_SIGNING_CHAIN": str(tmp_path / "chain.pem"),
        "XP_SIGNING_KEY": str(tmp_path / "signer.key"),
        "XP_TRUST_ANCHORS": str(tmp_path / "anchors.pem"),
        "XP_MODELS_TOML": str(tmp_path / "models.toml"),
        "XP_FACE_TRACKING": "mediapipe",
        "XP_FACE_LANDMARKER_MODEL": str(tmp_path / "face_landmarker.task"),
        "XP_YUNET_MODEL": str(tmp_path / "yunet.onnx"),
        "XP_SFACE_MODEL": str(tmp_path / "sface.onnx"),
        "XP_LOG_ORIGIN": "xp-sdk/test",
        "XP_FACE_MATCH_THRESHOLD": "0.4",
        "XP_CONSENT_VALIDITY_DAYS": "30",
        "XP_MAX_DRIVING_SECONDS": "60",
        "XP_MAX_DRIVING_FRAMES": "1800",
        "XP_REDIS_URL": "redis://:hunter3@127.0.0.1:6379/2",
        "XP_REDIS_PREFIX": "xp-test",
    }
    for name in VARIABLES.values():
        monkeypatch.delenv(name, raising=False)
    for name, value in given.items():
        monkeypatch.setenv(name, value)
    home = tmp_path / "home"
    shown = xp("config", "show", "--home", home, "--json").json()
    assert set(VARIABLES) <= set(shown)
    assert shown["home"] == str(home)
    assert shown["api_key"] == "***" and "secretsecret" not in str(shown)
    assert "hunter2" not in shown["database_url"] and "127.0.0.1:5432/test" in shown["database_url"]
    assert shown["debug"] is True and shown["face_tracking"] == "mediapipe"
    assert shown["redis_url"] == "redis://:***@127.0.0.1:6379/2"
    for setting, variable in VARIABLES.items():
        if setting not in ("home", "api_key", "database_url", "debug", "redis_url"):
            assert str(shown[setting]) == str(type(shown[setting])(given[variable])), setting


def test_settings_only_the_environment_gives_are_not_taken_from_config_json(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The engine reads XP_FACE_TRACKING from the environment alone: a config.json value would be shown and not
    used, so it is not taken at all."""
    monkeypatch.delenv("XP_FACE_TRACKING", raising=False)
    (tmp_path / "config.json").write_text('{"face_tracking": "litert", "base_url": "https://elsewhere"}')
    settings = Settings.resolve(home=tmp_path)
    assert (settings.face_tracking, settings.base_url) == (None, None)
    monkeypatch.setenv("XP_FACE_TRACKING", "litert")
    assert Settings.resolve(home=tmp_path).face_tracking == "litert"


def test_the_trust_anchors_variable_reaches_every_reader(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``XP_TRUST_ANCHORS`` read through the settings by ``xp keys anchor`` (the file and the keys it loads)."""
    for name in VARIABLES.values():
        monkeypatch.delenv(name, raising=False)
    home = tmp_path / "home"
    assert xp("init", "--home", home, "--json").code == 0
    anchors = tmp_path / "anchors.pem"
    anchors.write_text((home / "keys" / "c2pa" / "ca.pem").read_text(encoding="ascii") + "\n", encoding="ascii")
    monkeypatch.setenv("XP_TRUST_ANCHORS", str(anchors))
    assert xp("keys", "anchor", "--home", home, "--path").stdout.strip() == str(anchors)
    assert xp("keys", "anchor", "--home", home).stdout == anchors.read_text(encoding="ascii")
    assert xp("config", "show", "--home", home, "--json").json()["trust_anchors"] == str(anchors)
