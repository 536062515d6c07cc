"""The manifest declares its intent through c2pa's own API (Builder.set_intent: CREATE, trainedAlgorithmicMedia)
where the installed c2pa-python has it, with one c2pa.created action saying the same."""

from __future__ import annotations

import json
from pathlib import Path

import c2pa
import pytest

from watermark.manifest import TRAINED_ALGORITHMIC_MEDIA, GenerationAssertion, SoftBinding
from watermark.reading import ManifestState, read_manifest
from watermark.signing import sign_video
from xp_sdk.home import Home
from xp_sdk.provenance import init_provenance_keys

pytestmark = pytest.mark.skipif(not hasattr(c2pa.Builder, "set_intent"), reason="c2pa-python without set_intent")


def _clip(path: Path) -> Path:
    import av
    import numpy as np

    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
        for index in range(5):
            pixels = np.full((64, 64, 3), 40 * index, np.uint8)
            out.mux(stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")))
        out.mux(stream.encode(None))
    return path


def test_the_signed_manifest_is_created_as_trained_algorithmic_media(tmp_path: Path) -> None:
    keys = init_provenance_keys(Home(tmp_path / "home"), organization="intent test")
    signed = tmp_path / "signed.mp4"
    sign_video(
        _clip(tmp_path / "clip.mp4"), signed,
        assertion=GenerationAssertion(generation_id="0123456789abcdef", engine="xp-warp", engine_version="1"),
        soft_binding=SoftBinding(algorithm="com.xp-sdk.watermark.tiled-ss.v1", value="0123456789abcdef"),
        credentials=keys.credentials,
    )  # fmt: skip
    report = read_manifest(signed, trust_anchors=keys.trust_anchors)
    assert report.state is ManifestState.TRUSTED, report.codes
    assert report.summary is not None and report.summary.digital_source_type == TRAINED_ALGORITHMIC_MEDIA
    with signed.open("rb") as stream, c2pa.Reader("video/mp4", stream) as reader:
        manifest = json.loads(reader.json())
    active = manifest["manifests"][manifest["active_manifest"]]
    actions = [
        action
        for assertion in active["assertions"]
        if assertion["label"].startswith("c2pa.actions")
        for action in assertion["data"]["actions"]
    ]
    created = [action for action in actions if action["action"] == "c2pa.created"]
    assert len(created) == 1 and created[0]["digitalSourceType"] == TRAINED_ALGORITHMIC_MEDIA
