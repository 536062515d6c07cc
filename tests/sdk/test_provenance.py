"""One generation end to end: marked and signed output, one verdict, and what survives tampering and re-encoding."""

from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np
import pytest

import xp_sdk.generate
from bench.attacks import get_attack
from watermark import Payload
from watermark.reading import ManifestState
from xp_sdk.engine import AnimateOptions
from xp_sdk.errors import AlreadyInitializedError, NoFaceError, NotInitializedError, ProvenanceFailedError
from xp_sdk.generate import Generation, generate, mark_survives_reencode
from xp_sdk.home import Home
from xp_sdk.provenance import ProvenanceKeys, init_provenance_keys, load_provenance_keys
from xp_sdk.verify import Attribution, UntrustedMediaError, require_trusted, verify

ASTRONAUT = "skimage_astronaut.png"
D18 = "lp_d18.mp4"


@pytest.fixture(scope="module")
def keys(provenance_home: Path) -> ProvenanceKeys:
    return load_provenance_keys(Home(provenance_home))


@dataclass(frozen=True)
class Made:
    generation: Generation
    source: Path
    driving: Path


@pytest.fixture(scope="module")
def made(faces: Path, keys: ProvenanceKeys, tmp_path_factory: pytest.TempPathFactory) -> Made:
    """A 1.5 s driving clip cut from a real one, and the signed, marked animation of a real photo with it."""
    folder = tmp_path_factory.mktemp("generation")
    driving = folder / "driving.mp4"
    get_attack("trim_1s").apply(faces / "driving" / D18, driving)
    source = faces / "source" / ASTRONAUT
    generation = generate(
        source, folder / "out.mp4", keys=keys, driving=driving, options=AnimateOptions(max_side=512),
        consent_id="consent-123", policy_decision_id="decision-456",
    )  # fmt: skip
    return Made(generation, source, driving)


def test_output_reads_trusted_and_its_watermark_names_the_generation(made: Made, keys: ProvenanceKeys) -> None:
    result = verify(made.generation.output, keys=keys)
    assert result.c2pa.state is ManifestState.TRUSTED, result.c2pa.codes
    assert result.watermark.detected and result.watermark.p_value is not None and result.watermark.p_value < 1e-9
    assert result.watermark.payload == made.generation.generation_id
    assert result.generation_id == made.generation.generation_id
    assert result.consistent is True
    require_trusted(result)


def test_manifest_records_the_generation_its_inputs_and_the_soft_binding(made: Made, keys: ProvenanceKeys) -> None:
    summary = verify(made.generation.output, keys=keys).c2pa.summary
    assert summary is not None and summary.generation is not None and summary.soft_binding is not None
    assert summary.generation.generation_id == made.generation.generation_id
    assert summary.generation.consent_id == "consent-123"
    assert summary.generation.policy_decision_id == "decision-456"
    assert [m.name for m in summary.generation.models] == ["face_landmarker"]
    assert summary.soft_binding.value == made.generation.generation_id
    assert summary.soft_binding.algorithm == "com.xp-sdk.watermark.tiled.v3"
    assert summary.digital_source_type is not None and summary.digital_source_type.endswith("trainedAlgorithmicMedia")
    hashes = {i.title: i.sha256 for i in summary.ingredients}
    assert hashes[ASTRONAUT] == hashlib.sha256(made.source.read_bytes()).hexdigest()
    assert hashes["driving.mp4"] == hashlib.sha256(made.driving.read_bytes()).hexdigest()
    assert made.generation.output_sha256 == hashlib.sha256(made.generation.output.read_bytes()).hexdigest()


def test_output_is_watermarked_yet_close_to_the_picture(made: Made) -> None:
    with av.open(str(made.generation.output)) as container:
        stream = container.streams.video[0]
        assert (stream.codec_context.name, stream.width, stream.height) == ("h264", 512, 512)
    assert made.generation.animation.stage_seconds["filter"] > 0


def test_a_flipped_media_byte_makes_the_manifest_invalid_with_its_code(
    made: Made, keys: ProvenanceKeys, tmp_path: Path
) -> None:
    data = bytearray(made.generation.output.read_bytes())
    mdat = data.find(b"mdat")
    assert mdat > 0
    data[mdat + 4000] ^= 0xFF
    tampered = tmp_path / "tampered.mp4"
    tampered.write_bytes(bytes(data))
    result = verify(tampered, keys=keys)
    assert result.c2pa.state is ManifestState.INVALID
    assert "assertion.bmffHash.mismatch" in result.c2pa.codes
    with pytest.raises(UntrustedMediaError, match="invalid"):
        require_trusted(result)


def test_after_a_reencode_the_manifest_is_absent_but_the_watermark_still_traces_the_generation(
    made: Made, keys: ProvenanceKeys, tmp_path: Path
) -> None:
    copy = tmp_path / "reencoded.mp4"
    get_attack("h264_crf28").apply(made.generation.output, copy)
    result = verify(copy, keys=keys)
    assert result.c2pa.state is ManifestState.ABSENT
    assert result.watermark.detected and result.watermark.payload == made.generation.generation_id
    # Offline there is no recorded fingerprint to bind the payload to these pictures, and no manifest vouches.
    assert result.attribution is Attribution.UNCONFIRMED and result.generation_id is None
    assert result.consistent is None


def test_an_analyst_without_the_watermark_key_still_checks_the_manifest(made: Made, keys: ProvenanceKeys) -> None:
    result = verify(made.generation.output, trust_anchors=keys.trust_anchors)
    assert result.c2pa.state is ManifestState.TRUSTED
    assert not result.watermark.checked and not result.watermark.detected
    assert result.generation_id == made.generation.generation_id  # from the manifest
    assert verify(made.generation.output).c2pa.state is ManifestState.VALID  # no anchors: signer not trusted


def test_an_unmarked_real_clip_has_neither_mark(faces: Path, keys: ProvenanceKeys) -> None:
    result = verify(faces / "driving" / D18, keys=keys)
    assert result.c2pa.state is ManifestState.ABSENT
    assert result.watermark.checked and not result.watermark.detected and result.watermark.payload is None
    assert result.generation_id is None


def test_each_generation_gets_its_own_id(faces: Path, keys: ProvenanceKeys, tmp_path: Path) -> None:
    source = faces / "source" / ASTRONAUT
    ids = set()
    for name in ("a.mp4", "b.mp4"):
        done = generate(source, tmp_path / name, keys=keys, template="blink", options=AnimateOptions(max_side=384))
        assert verify(done.output, keys=keys).watermark.payload == done.generation_id
        ids.add(done.generation_id)
    assert len(ids) == 2


def test_a_mark_that_does_not_read_back_is_made_again_stronger(
    faces: Path, keys: ProvenanceKeys, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 2 % of the strength rounds the pattern away in 8-bit pixels: the first try cannot read back.
    seen: list[tuple[str, int]] = []
    engine_runs: list[object] = []
    real_animate = xp_sdk.generate.animate

    def counted(*args: Any, **kwargs: Any) -> Any:
        engine_runs.append(args[0])
        return real_animate(*args, **kwargs)

    monkeypatch.setattr(xp_sdk.generate, "animate", counted)
    done = generate(
        faces / "source" / ASTRONAUT, tmp_path / "o.mp4", keys=keys, template="blink",
        options=AnimateOptions(max_side=384), watermark_strengths=(0.02, 1.4),
        progress=lambda p: seen.append((p.stage, p.done)),
    )  # fmt: skip
    assert done.watermark_strength == 1.4
    # The stronger mark is added to the frames already made: the engine ran once (it ran twice before).
    assert len(engine_runs) == 1
    # The second marking does not send the caller's progress back to the start.
    assert seen[-1] == ("generate", done.animation.frames)
    assert [d for _, d in seen] == sorted(set(d for _, d in seen))
    assert verify(done.output, keys=keys).watermark.payload == done.generation_id
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.mp4"]


def test_a_short_small_clip_is_marked_to_survive_an_ordinary_reencode(
    made: Made, faces: Path, keys: ProvenanceKeys, tmp_path: Path
) -> None:
    # One second at 384 px: at strength 1.0 the mark reads back from the output but a CRF 28 re-encode loses
    # it. The read-back now also tries the re-encode on clips this short, and marks them more strongly.
    done = generate(
        faces / "source" / ASTRONAUT, tmp_path / "o.mp4", keys=keys, driving=made.driving,
        options=AnimateOptions(max_side=384),
    )  # fmt: skip
    assert mark_survives_reencode(done.output, keys.watermark_key, Payload.from_hex(done.generation_id))
    copy = tmp_path / "reencoded.mp4"
    get_attack("h264_crf28").apply(done.output, copy)
    assert verify(copy, keys=keys).watermark.payload == done.generation_id
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.mp4", "reencoded.mp4"]


def test_a_mark_that_never_reads_back_publishes_nothing(faces: Path, keys: ProvenanceKeys, tmp_path: Path) -> None:
    with pytest.raises(ProvenanceFailedError, match="could not be read back") as raised:
        generate(
            faces / "source" / ASTRONAUT, tmp_path / "o.mp4", keys=keys, template="blink",
            options=AnimateOptions(max_side=384), watermark_strengths=(0.02,),
        )  # fmt: skip
    assert raised.value.code == "watermark_unreadable"
    assert list(tmp_path.iterdir()) == []


def test_a_refused_photo_leaves_no_file(keys: ProvenanceKeys, tmp_path: Path) -> None:
    flat = tmp_path / "flat.png"
    cv2.imwrite(str(flat), np.full((256, 256, 3), 128, np.uint8))
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    with pytest.raises(NoFaceError):
        generate(flat, out_dir / "x.mp4", keys=keys, template="blink")
    assert list(out_dir.iterdir()) == []


# --- keys --------------------------------------------------------------------------------------------------


def test_keys_are_owner_only_and_never_replaced(tmp_path: Path) -> None:
    home = Home(tmp_path / "home")
    init_provenance_keys(home)
    assert stat.S_IMODE(os.stat(home.root).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(home.keys_dir).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(home.watermark_key_path).st_mode) == 0o600
    before = home.watermark_key_path.read_bytes()
    with pytest.raises(AlreadyInitializedError, match="already exist"):
        init_provenance_keys(home)
    assert home.watermark_key_path.read_bytes() == before


def test_a_home_without_keys_says_how_to_make_them(tmp_path: Path) -> None:
    with pytest.raises(NotInitializedError, match="xp init"):
        load_provenance_keys(Home(tmp_path))


def test_another_deployments_key_finds_no_mark(made: Made, tmp_path: Path) -> None:
    other = init_provenance_keys(Home(tmp_path / "other"))
    result = verify(made.generation.output, keys=other)
    assert not result.watermark.detected
    assert result.c2pa.state is ManifestState.VALID  # intact, but not signed by a CA this deployment trusts


# --- the command line --------------------------------------------------------------------------------------

