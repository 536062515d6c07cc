"""The README's walk-through runs as written: its set-up commands, its three Python examples and their `xp`
twins, in a fresh folder, with only the two values a person copies (the exports `xp init` prints and the subject
id `xp subjects register` prints)."""

from __future__ import annotations

import contextlib
import io
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"
SUBJECT_PLACEHOLDER = "sub_…"


def section(heading: str) -> str:
    """The text under ``heading`` up to the next heading of any level."""
    text = README.read_text(encoding="utf-8").split(f"\n{heading}\n", 1)[1]
    return re.split(r"\n#{2,3} ", text, maxsplit=1)[0]


def python_examples() -> list[str]:
    return re.findall(r"```python\n(.*?)```", section("### In Python"), flags=re.S)


def shell_commands(heading: str) -> list[str]:
    """The commands of the first bash block under ``heading``, their comments (after two spaces) removed."""
    block = re.findall(r"```bash\n(.*?)```", section(heading), flags=re.S)[0]
    return [line.split("  #", 1)[0].strip() for line in block.splitlines() if line.strip()]


def test_readme_has_the_three_examples() -> None:
    examples = python_examples()
    assert len(examples) == 3
    assert "client.animate(" in examples[0] and "client.verify(" in examples[1] and "audit.query(" in examples[2]


def run_as_a_person(command: str, folder: Path, env: dict[str, str], subject_id: str | None) -> str:
    if subject_id is not None:
        command = command.replace(SUBJECT_PLACEHOLDER, subject_id)
    assert SUBJECT_PLACEHOLDER not in command, f"{command!r} needs a subject id no earlier command printed"
    done = subprocess.run(["bash", "-c", command], cwd=folder, env=env, capture_output=True, text=True)
    assert done.returncode == 0, f"{command!r} exited {done.returncode}: {done.stderr[-2000:]}"
    return done.stdout


def set_up_as_a_person(folder: Path) -> tuple[dict[str, str], str]:
    """The README's set-up commands run in ``folder``: the environment they leave (with the exports ``xp init``
    printed) and the subject id ``xp subjects register`` printed."""
    # The venv's own `python` and `xp` first on PATH; no XP_* setting of the caller's leaks in.
    env = {k: v for k, v in os.environ.items() if not k.startswith("XP_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"

    subject_id: str | None = None
    for command in shell_commands("### Set up a deployment and a consenting subject"):
        output = run_as_a_person(command, folder, env, subject_id)
        if command.startswith("xp init"):
            exports = dict(re.findall(r"^\s*export (XP_HOME|XP_API_KEY)=(\S+)$", output, flags=re.M))
            assert set(exports) == {"XP_HOME", "XP_API_KEY"}, output
            env.update(exports)
        if command.startswith("xp subjects register"):
            subject_id = re.findall(r"\bsub_[0-9a-f]+\b", output)[0]
    assert subject_id is not None and (folder / "photo.jpg").is_file()
    return env, subject_id


def test_readme_walk_through_runs_as_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env, subject_id = set_up_as_a_person(tmp_path)

    cli = [run_as_a_person(c, tmp_path, env, subject_id) for c in shell_commands("### With the `xp` command")]
    assert "wrote clip.mp4" in cli[0] and "trusted" in cli[1] and "generation.completed" in cli[2]

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XP_HOME", env["XP_HOME"])
    monkeypatch.setenv("XP_API_KEY", env["XP_API_KEY"])
    printed = []
    for example in python_examples():
        buffer = io.StringIO()
        with contextlib.redirect_stdout(buffer):
            exec(compile(example, "README.md", "exec"), {"subject_id": subject_id})
        printed.append(buffer.getvalue())

    animated, verified, audited = printed
    generation_id = animated.split()[0]
    assert re.fullmatch(r"[0-9a-f]{16}", generation_id), animated
    assert (tmp_path / "clip.mp4").is_file()
    assert verified.splitlines()[0] == "trusted"
    assert verified.splitlines()[1].startswith(f"True {generation_id} ")
    assert f"id='{generation_id}'" in verified and "status='completed'" in verified
    assert "generation.completed" in audited and generation_id in audited
