"""What a caller's ``template`` may be: a built-in name, or content; a path only on the caller's own machine."""

from __future__ import annotations

import hashlib
from importlib import resources
from pathlib import Path

import pytest

from xp_sdk.engine.templates import (
    MotionTemplate,
    builtin_names,
    builtin_template,
    load_template,
    parse_template,
    resolve_template,
    template_json,
    template_ref,
)
from xp_sdk.errors import TemplateError

MINE = MotionTemplate.model_validate({"name": "mine", "duration": 1.0, "keyframes": [{"t": 0.0}, {"t": 1.0}]})
SMILE_FILE = str(resources.files("xp_sdk.engine.templates").joinpath("smile.json"))


@pytest.mark.parametrize(
    "attack", ["/etc/passwd", "../../x.json", "../templates/smile", "smile.json", "./smile", SMILE_FILE, "", "x" * 500]
)
def test_builtin_template_takes_names_only(attack: str) -> None:
    with pytest.raises(TemplateError, match="built-in templates: " + ", ".join(builtin_names())) as caught:
        builtin_template(attack)
    assert len(caught.value.message) < 300  # a long name is shortened, not echoed whole


def test_builtin_template_by_name() -> None:
    assert builtin_template("smile") == load_template("smile")
    assert builtin_template("smile").name == "smile"


def test_resolve_keeps_names_and_reads_local_files(tmp_path: Path) -> None:
    local = tmp_path / "motion.json"
    local.write_bytes(template_json(MINE))
    assert resolve_template("smile") == "smile"
    assert resolve_template(MINE) is MINE
    assert resolve_template(local) == MINE
    assert resolve_template(str(local)) == MINE
    with pytest.raises(TemplateError, match="does not exist"):
        resolve_template(tmp_path / "gone.json")
    with pytest.raises(TemplateError, match="built-in templates"):
        resolve_template("no_such_motion")
    (tmp_path / "notes.txt").write_text("not a template")
    with pytest.raises(TemplateError, match="not valid JSON"):
        resolve_template(tmp_path / "notes.txt")


def test_parse_template_validates_uploaded_bytes() -> None:
    assert parse_template(template_json(MINE)) == MINE
    with pytest.raises(TemplateError, match="not a valid motion template"):
        parse_template(b'{"name": "x"}', origin="the upload")


def test_template_ref_names_builtins_and_hashes_content() -> None:
    assert template_ref("smile") == "template:smile"
    digest = hashlib.sha256(template_json(MINE)).hexdigest()
    assert template_ref(MINE) == f"template:mine@sha256:{digest}"
    # Content named like a built-in is still told apart from it.
    assert template_ref(builtin_template("smile")).startswith("template:smile@sha256:")
    with pytest.raises(TemplateError):
        template_ref("/etc/passwd")
