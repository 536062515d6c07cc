"""One initialized home per test module: ``xp init``, a subject (the scikit-image astronaut, so no external file
is needed), a consent and one short animation (the built-in 2.4 s ``blink`` template, 72 frames), made once;
the tests then read, verify, query and try to break it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.helpers import XP_VARIABLES, Deployment, xp


@pytest.fixture(scope="module")
def clean_env() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as patch:
        for name in XP_VARIABLES:
            patch.delenv(name, raising=False)
        yield


@pytest.fixture(autouse=True)
def _no_xp_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in XP_VARIABLES:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def astronaut_photo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import cv2

    from xp_sdk.cli.demo import astronaut

    path = tmp_path_factory.mktemp("photos") / "astronaut.png"
    cv2.imwrite(str(path), cv2.cvtColor(astronaut(), cv2.COLOR_RGB2BGR))
    return path


@pytest.fixture(scope="module")
def deployment(clean_env: None, astronaut_photo: Path, tmp_path_factory: pytest.TempPathFactory) -> Deployment:
    root = tmp_path_factory.mktemp("xp-cli")
    home = root / "home"
    made = xp("init", "--home", home, "--json").json()
    evidence = root / "consent-statement.txt"
    evidence.write_text("I agree to be animated by the test tenant.\n", encoding="utf-8")
    d = Deployment(root=root, home=home, init=made, photo=astronaut_photo, evidence=evidence)
    d.subject_id = d.xp("subjects", "register", "--name", "Astronaut", "--photo", astronaut_photo, "--json").json()[
        "id"
    ]
    d.consent_id = d.xp(
        "consents", "grant", "--subject", d.subject_id, "--evidence", evidence, "--expires", "30d", "--json"
    ).json()["id"]
    d.animation = d.xp(
        "animate", "--source", astronaut_photo, "--template", "blink", "--subject", d.subject_id,
        "--out", root / "clip.mp4", "--json",
    ).json()  # fmt: skip
    return d
