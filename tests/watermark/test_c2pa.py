"""C2PA signing and reading on a real clip: trust verdicts, tampering, stripping, privacy, and atomic output."""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Iterator
from pathlib import Path

import av
import c2pa
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from watermark.credentials import (
    CallbackCredentials,
    SigningCredentials,
    create_development_credentials,
    load_trust_anchor,
)
from watermark.errors import (
    CredentialsError,
    MediaNotFoundError,
    SigningError,
    UnsupportedMediaError,
)
from watermark.manifest import GenerationAssertion, IngredientRef, ModelRef, SoftBinding
from watermark.reading import ManifestState, read_manifest
from watermark.signing import SignedManifest, sign_video

ASSERTION = GenerationAssertion(
    generation_id="gen-0001",
    consent_id="consent-42",
    policy_decision_id="decision-7",
    engine="xp-sdk-warp",
    engine_version="0.1.0",
    models=(ModelRef(name="face_landmarker.task", sha256="AB" * 32), ModelRef(name="sface.onnx", sha256="0c" * 32)),
)
SOFT_BINDING = SoftBinding(algorithm="com.xp-sdk.watermark.tiled-ss.v1", value="0123456789ABCDEF00")


def _boxes(data: bytes) -> Iterator[tuple[bytes, int, int, int]]:
    """Top-level ISO BMFF boxes: (type, offset, size, header size)."""
    offset = 0
    while offset < len(data):
        size, kind = int.from_bytes(data[offset : offset + 4], "big"), data[offset + 4 : offset + 8]
        header = 8
        if size == 1:
            size, header = int.from_bytes(data[offset + 8 : offset + 16], "big"), 16
        elif size == 0:
            size = len(data) - offset
        yield kind, offset, size, header
        offset += size


def _box(data: bytes, kind: bytes) -> tuple[int, int, int]:
    return next((offset, size, header) for k, offset, size, header in _boxes(data) if k == kind)


def _reencode(source: Path, destination: Path, frames: int = 20) -> None:
    with av.open(str(source)) as inp, av.open(str(destination), "w") as out:
        stream = out.add_stream("libx264", rate=25)
        stream.options = {"preset": "ultrafast"}
        for frame in itertools.islice(inp.decode(video=0), frames):
            if stream.width == 0:
                stream.width, stream.height, stream.pix_fmt = frame.width // 2 * 2, frame.height // 2 * 2, "yuv420p"
            image = frame.reformat(width=stream.width, height=stream.height, format="yuv420p")
            image.pts = None
            out.mux(stream.encode(image))
        out.mux(stream.encode(None))


def _remux(source: Path, destination: Path) -> int:
    """Copy the video packets into a new MP4, as any editor or re-uploader would; returns packets copied."""
    copied = 0
    with av.open(str(source)) as inp, av.open(str(destination), "w") as out:
        stream = out.add_stream_from_template(inp.streams.video[0])
        for packet in inp.demux(inp.streams.video[0]):
            if packet.dts is None:
                continue
            packet.stream = stream
            out.mux(packet)
            copied += 1
    return copied


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("c2pa")


@pytest.fixture(scope="module")
def clip(work: Path, driving_videos: list[Path]) -> Path:
    path = work / "unsigned.mp4"
    _reencode(driving_videos[0], path)
    return path


@pytest.fixture(scope="module")
def photo(source_photos: list[Path]) -> Path:
    return source_photos[0]


@pytest.fixture(scope="module")
def credentials(work: Path) -> SigningCredentials:
    return create_development_credentials(work / "keys")


@pytest.fixture(scope="module")
def anchor(work: Path, credentials: SigningCredentials) -> str:
    return load_trust_anchor(work / "keys")


@pytest.fixture(scope="module")
def ingredients(photo: Path, driving_videos: list[Path]) -> list[IngredientRef]:
    return [
        IngredientRef(path=photo, title="source photo"),
        IngredientRef(path=driving_videos[0], title="driving video"),
    ]


@pytest.fixture(scope="module")
def signed(
    work: Path, clip: Path, ingredients: list[IngredientRef], credentials: SigningCredentials
) -> tuple[Path, SignedManifest]:
    destination = work / "signed.mp4"
    result = sign_video(
        clip,
        destination,
        assertion=ASSERTION,
        soft_binding=SOFT_BINDING,
        ingredients=ingredients,
        credentials=credentials,
    )
    return destination, result


def _raw_manifest(path: Path) -> dict[str, object]:
    """The active manifest as c2pa itself reports it (detailed form: the assertion store as stored)."""
    with path.open("rb") as stream, c2pa.Reader("video/mp4", stream) as reader:
        detailed = json.loads(reader.detailed_json())
        simple = reader.get_active_manifest()
    return {"detailed": detailed["manifests"][detailed["active_manifest"]], "simple": simple}


def test_signed_clip_is_trusted_with_the_development_anchor(signed: tuple[Path, SignedManifest], anchor: str) -> None:
    path, result = signed
    report = read_manifest(path, trust_anchors=anchor)
    assert report.state is ManifestState.TRUSTED
    assert report.codes == []
    assert report.summary is not None
    assert report.summary.label == result.label and result.label.startswith("urn:c2pa:")
    assert report.summary.signer == "xp-sdk development signer"
    assert report.summary.issuer == "xp-sdk development"


def test_without_anchors_the_signature_is_valid_but_untrusted(signed: tuple[Path, SignedManifest]) -> None:
    report = read_manifest(signed[0])
    assert report.state is ManifestState.VALID
    assert report.codes == ["signingCredential.untrusted"]


def test_another_ca_does_not_make_it_trusted(signed: tuple[Path, SignedManifest], tmp_path: Path) -> None:
    create_development_credentials(tmp_path / "other", organization="Someone Else")
    report = read_manifest(signed[0], trust_anchors=load_trust_anchor(tmp_path / "other"))
    assert report.state is ManifestState.VALID
    assert report.codes == ["signingCredential.untrusted"]


def test_summary_round_trips_what_was_signed(
    signed: tuple[Path, SignedManifest], ingredients: list[IngredientRef], anchor: str
) -> None:
    summary = read_manifest(signed[0], trust_anchors=anchor).summary
    assert summary is not None
    assert summary.generation == ASSERTION
    assert summary.generation.models[0].sha256 == "ab" * 32  # normalised to lower case
    assert summary.soft_binding == SOFT_BINDING
    assert summary.soft_binding.value == "0123456789abcdef00"
    assert summary.title == "signed.mp4"
    assert summary.claim_generator == "xp-sdk"
    assert summary.digital_source_type == "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
    assert [(i.title, i.relationship, i.sha256) for i in summary.ingredients] == [
        (ingredient.title, "inputTo", _sha256(ingredient.path)) for ingredient in ingredients
    ]
    assert summary.ingredients[0].format in ("image/jpeg", "image/png")


def test_training_and_mining_are_not_allowed(signed: tuple[Path, SignedManifest]) -> None:
    summary = read_manifest(signed[0]).summary
    assert summary is not None
    assert summary.training_mining == {
        "cawg.ai_generative_training": "notAllowed",
        "cawg.ai_inference": "notAllowed",
        "cawg.ai_training": "notAllowed",
        "cawg.data_mining": "notAllowed",
    }


def test_no_thumbnail_of_anyone_is_embedded(signed: tuple[Path, SignedManifest], photo: Path) -> None:
    raw = _raw_manifest(signed[0])
    simple, detailed = raw["simple"], raw["detailed"]
    assert isinstance(simple, dict) and isinstance(detailed, dict)
    assert "thumbnail" not in simple
    assert all("thumbnail" not in ingredient for ingredient in simple["ingredients"])
    assert not [label for label in detailed["assertion_store"] if "thumbnail" in label]
    stored = detailed["assertion_store"]["c2pa.ingredient.v3"]
    assert set(stored) == {"dc:title", "dc:format", "relationship", "metadata"}
    # Not even a fragment of the photo travels: its first kilobyte appears nowhere in the signed file.
    assert photo.read_bytes()[256:1280] not in signed[0].read_bytes()


def test_signed_manifest_hashes_describe_the_written_file(signed: tuple[Path, SignedManifest]) -> None:
    path, result = signed
    data = path.read_bytes()
    assert result.file_sha256 == hashlib.sha256(data).hexdigest()
    offset, size, _ = _box(data, b"uuid")
    start = data.index(b"jumb", offset) - 4  # the manifest store is the JUMBF superbox inside the C2PA uuid box
    assert result.manifest_sha256 == hashlib.sha256(data[start : offset + size]).hexdigest()


def test_one_flipped_byte_of_video_data_is_invalid(signed: tuple[Path, SignedManifest], tmp_path: Path) -> None:
    data = bytearray(signed[0].read_bytes())
    offset, size, header = _box(bytes(data), b"mdat")
    data[offset + header + (size - header) // 2] ^= 0x01
    tampered = tmp_path / "tampered.mp4"
    tampered.write_bytes(data)
    report = read_manifest(tampered)
    assert report.state is ManifestState.INVALID
    assert "assertion.bmffHash.mismatch" in report.codes


def test_a_broken_manifest_is_invalid_not_an_exception(signed: tuple[Path, SignedManifest], tmp_path: Path) -> None:
    data = signed[0].read_bytes()
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(data.replace(b"jumd", b"jumX", 1))
    report = read_manifest(broken)
    assert report.state is ManifestState.INVALID
    assert report.codes == ["general.error"]
    assert report.error and "JUMD" in report.error


def test_remuxing_strips_the_manifest(signed: tuple[Path, SignedManifest], tmp_path: Path) -> None:
    remuxed = tmp_path / "remuxed.mp4"
    assert _remux(signed[0], remuxed) == 20
    report = read_manifest(remuxed)
    assert report.state is ManifestState.ABSENT
    assert report.summary is None and report.codes == []


def test_unsigned_clip_is_absent(clip: Path) -> None:
    assert read_manifest(clip).state is ManifestState.ABSENT


def test_callback_signer_is_trusted(clip: Path, credentials: SigningCredentials, anchor: str, tmp_path: Path) -> None:
    key = serialization.load_pem_private_key(credentials.private_key_pem, None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    signed_lengths: list[int] = []

    def remote_sign(data: bytes) -> bytes:  # stands in for a KMS: DER ECDSA over SHA-256
        signed_lengths.append(len(data))
        return key.sign(data, ec.ECDSA(hashes.SHA256()))

    destination = tmp_path / "callback.mp4"
    callback = CallbackCredentials(credentials.certificate_chain_pem, sign=remote_sign)
    result = sign_video(clip, destination, assertion=ASSERTION, soft_binding=SOFT_BINDING, credentials=callback)
    assert len(signed_lengths) == 1 and signed_lengths[0] > 0
    report = read_manifest(destination, trust_anchors=anchor)
    assert report.state is ManifestState.TRUSTED
    assert report.summary is not None and report.summary.label == result.label


def test_failing_callback_leaves_the_old_destination_untouched(
    clip: Path, credentials: SigningCredentials, tmp_path: Path
) -> None:
    def unavailable(data: bytes) -> bytes:
        raise ConnectionError("KMS unreachable")

    destination = tmp_path / "out.mp4"
    destination.write_bytes(b"previous output")
    callback = CallbackCredentials(credentials.certificate_chain_pem, sign=unavailable)
    with pytest.raises(SigningError, match="KMS unreachable") as raised:
        sign_video(clip, destination, assertion=ASSERTION, soft_binding=SOFT_BINDING, credentials=callback)
    assert isinstance(raised.value.__cause__, ConnectionError)
    assert destination.read_bytes() == b"previous output"
    assert [p.name for p in tmp_path.iterdir()] == ["out.mp4"]


def test_only_existing_mp4_files_are_signed(
    photo: Path, clip: Path, credentials: SigningCredentials, tmp_path: Path
) -> None:
    cases = [
        (photo, UnsupportedMediaError),
        (tmp_path / "missing.mp4", MediaNotFoundError),
    ]
    renamed = tmp_path / "photo.mp4"
    renamed.write_bytes(photo.read_bytes())
    cases.append((renamed, UnsupportedMediaError))
    for source, error in cases:
        destination = tmp_path / "out.mp4"
        with pytest.raises(error):
            sign_video(source, destination, assertion=ASSERTION, soft_binding=SOFT_BINDING, credentials=credentials)
        assert not destination.exists()
    missing_ingredient = IngredientRef(path=tmp_path / "gone.jpg", title="gone")
    with pytest.raises(MediaNotFoundError, match=r"gone\.jpg"):
        sign_video(
            clip,
            tmp_path / "out.mp4",
            assertion=ASSERTION,
            soft_binding=SOFT_BINDING,
            ingredients=[missing_ingredient],
            credentials=credentials,
        )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["photo.mp4"]


def test_reading_non_media_or_missing_files_raises(tmp_path: Path, signed: tuple[Path, SignedManifest]) -> None:
    text = tmp_path / "notes.mp4"
    text.write_text("not a video at all")
    with pytest.raises(UnsupportedMediaError):
        read_manifest(text)
    with pytest.raises(MediaNotFoundError):
        read_manifest(tmp_path / "missing.mp4")
    with pytest.raises(CredentialsError, match="not PEM"):
        read_manifest(signed[0], trust_anchors="not a certificate")


def test_manifest_inputs_are_validated() -> None:
    with pytest.raises(ValueError, match="hex"):
        SoftBinding(algorithm="com.xp-sdk.watermark.tiled-ss.v1", value="xyz")
    with pytest.raises(ValueError, match="64 hex"):
        ModelRef(name="model", sha256="ab")
    with pytest.raises(ValueError):
        GenerationAssertion(generation_id="", engine="e", engine_version="1")
