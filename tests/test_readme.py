"""The README's Python examples run as written, in a fresh deployment, against a consenting subject."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest

from xp_sdk import Client, init_deployment

README = Path(__file__).resolve().parent.parent / "README.md"


def python_examples() -> list[str]:
    section = README.read_text(encoding="utf-8").split("### In Python", 1)[1].split("\n## ", 1)[0].split("\n### ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


def test_readme_has_the_three_examples() -> None:
    examples = python_examples()
    assert len(examples) == 3
    assert "client.animate(" in examples[0] and "client.verify(" in examples[1] and "audit.query(" in examples[2]


def test_readme_examples_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from PIL import Image
    from skimage import data

    Image.fromarray(data.astronaut()).save(tmp_path / "photo.jpg", quality=92)
    init = init_deployment(tmp_path / "home")
    with Client(init.api_key.secret, home=init.home) as admin:
        subject_id = admin.subjects.register("Eileen Collins", [tmp_path / "photo.jpg"]).id
        admin.consents.grant(subject_id, evidence=b"Eileen Collins agrees to be animated (README test)")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XP_HOME", str(init.home))
    monkeypatch.setenv("XP_API_KEY", init.api_key.secret)

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
    assert f"'id': '{generation_id}'" in verified and "'status': 'completed'" in verified
    assert "generation.completed" in audited and generation_id in audited
