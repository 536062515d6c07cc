"""Every output of the product path names its inputs in its C2PA manifest: the photo, and the driving video or the
template, each with its title and SHA-256. Before, Service handed generate() the photo's pixels and generate() left
pixel sources out, so no manifest made through Client.animate named the photo (with a template: no ingredient at
all; with a driving video: only the video)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from tests.server.conftest import Deployed
from xp_sdk.engine import AnimateOptions
from xp_sdk.engine.images import load_image
from xp_sdk.engine.templates import builtin_template, template_json

OPTIONS = AnimateOptions(max_side=384, keep_audio=False)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _ingredients(deployed: Deployed, output: Path) -> dict[str, str | None]:
    with deployed.local(deployed.admin_key) as client:
        report = client.verify(output)
    assert report.c2pa.summary is not None
    return {i.title: i.sha256 for i in report.c2pa.summary.ingredients if i.title is not None}


@pytest.mark.parametrize("transport", ["embedded", "remote"])
def test_a_driving_video_generation_names_photo_and_video(deployed: Deployed, transport: str) -> None:
    out = deployed.out(f"ingredients-driving-{transport}.mp4")
    client = deployed.local() if transport == "embedded" else deployed.client()
    with client:
        client.animate(deployed.astronaut, subject=deployed.eileen, driving=deployed.clip, out=out, options=OPTIONS)
    found = _ingredients(deployed, out)
    assert found[deployed.astronaut.name] == _sha256(deployed.astronaut)
    assert found[deployed.clip.name] == _sha256(deployed.clip)


@pytest.mark.parametrize("transport", ["embedded", "remote"])
def test_a_template_generation_names_photo_and_template(deployed: Deployed, transport: str) -> None:
    out = deployed.out(f"ingredients-template-{transport}.mp4")
    client = deployed.local() if transport == "embedded" else deployed.client()
    with client:
        client.animate(deployed.astronaut, subject=deployed.eileen, template="blink", out=out, options=OPTIONS)
    found = _ingredients(deployed, out)
    assert found[deployed.astronaut.name] == _sha256(deployed.astronaut)
    assert found["blink.json"] == hashlib.sha256(template_json(builtin_template("blink"))).hexdigest()


def test_pixels_given_as_such_are_named_as_a_png_of_them(deployed: Deployed) -> None:
    out = deployed.out("ingredients-pixels.mp4")
    pixels = np.ascontiguousarray(load_image(deployed.astronaut))
    with deployed.local() as client:
        client.animate(pixels, subject=deployed.eileen, template="blink", out=out, options=OPTIONS)
    found = _ingredients(deployed, out)
    assert set(found) == {"source-photo.png", "blink.json"} and all(found.values())
