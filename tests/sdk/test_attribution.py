"""Attribution is bound to content: a clip is traced to a generation only when this deployment's watermark AND the
content fingerprint recorded with that generation agree. The attacks an informed outsider tries (a mark
transplanted onto real footage, a self-signed manifest on an unrelated video, a trusted manifest without a mark or
naming another generation) are never reported as the generation."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from watermark import Payload, mark_video, reencode
from watermark.manifest import GenerationAssertion, SoftBinding
from watermark.reading import ManifestState
from watermark.signing import sign_video
from xp_sdk import AnimationResult, Client, init_deployment
from xp_sdk.errors import ForgedMarkError, UntrustedMediaError
from xp_sdk.home import Home
from xp_sdk.provenance import ProvenanceKeys, init_provenance_keys, load_provenance_keys
from xp_sdk.verify import Attribution, require_trusted

SHORT_CLIP = "lp_d1_hist.mp4"
UNRELATED = "lp_d5_hist.mp4"  # another person, never generated


class Deployment:
    def __init__(self, root: Path, faces: Path) -> None:
        self.root = root
        init = init_deployment(root / "home", tenant="acme")
        self.home = init.home
        self.client = Client(init.api_key.secret, home=self.home)
        astronaut = faces / "source" / "skimage_astronaut.png"
        eileen = self.client.subjects.register("Eileen Collins", [astronaut]).id
        self.client.consents.grant(eileen, evidence=b"Eileen Collins consents (test)")
        self.made: AnimationResult = self.client.animate(
            astronaut, subject=eileen, driving=faces / "driving" / SHORT_CLIP, out=root / "out.mp4"
        )
        self.keys: ProvenanceKeys = load_provenance_keys(Home(self.home))
        self.unrelated = faces / "driving" / UNRELATED

    @property
    def output(self) -> Path:
        return self.root / "out.mp4"

    def last_verification(self) -> dict[str, object]:
        events = self.client.audit.query(type="verification.performed", limit=1000).events
        return events[-1].data


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory, faces: Path) -> Iterator[Deployment]:
    made = Deployment(tmp_path_factory.mktemp("attribution"), faces)
    yield made
    made.client.close()


def _assertion(generation_id: str) -> GenerationAssertion:
    return GenerationAssertion(generation_id=generation_id, engine="xp-warp", engine_version="1")


def _binding(payload: str) -> SoftBinding:
    return SoftBinding(algorithm="com.xp-sdk.watermark.tiled-ss.v1", value=payload)


def test_the_output_is_attributed_with_its_record(deployment: Deployment) -> None:
    report = deployment.client.verify(deployment.output)
    assert report.attribution is Attribution.ATTRIBUTED
    assert report.generation_id == deployment.made.generation_id
    assert report.content is not None and report.content.matched
    assert report.generation is not None and report.generation.tenant_id == "acme"
    require_trusted(report)
    assert deployment.last_verification()["attribution"] == "attributed"


def test_a_reencoded_copy_is_still_attributed(deployment: Deployment, tmp_path: Path) -> None:
    copy = tmp_path / "reencoded.mp4"
    reencode(deployment.output, copy, 28)
    report = deployment.client.verify(copy)
    assert report.c2pa.state is ManifestState.ABSENT
    assert report.attribution is Attribution.ATTRIBUTED, report.content
    assert report.generation is not None


def test_a_mark_transplanted_onto_unrelated_footage_is_reported_forged_and_logged(
    deployment: Deployment, tmp_path: Path
) -> None:
    forged = tmp_path / "transplant.mp4"
    mark_video(
        deployment.unrelated, forged, deployment.keys.watermark_key, Payload.from_hex(deployment.made.generation_id)
    )
    report = deployment.client.verify(forged)
    assert report.watermark.detected and report.watermark.payload == deployment.made.generation_id
    assert report.attribution is Attribution.FORGED
    assert report.generation_id is None and report.generation is None
    assert report.content is not None and not report.content.matched
    logged = deployment.last_verification()
    assert logged["attribution"] == "forged" and logged["watermark_payload"] == deployment.made.generation_id
    assert logged["generation_on_record"] is False
    with pytest.raises(ForgedMarkError, match="transplanted or forged"):
        require_trusted(report)


def test_a_self_signed_manifest_on_an_unrelated_video_never_attributes(deployment: Deployment, tmp_path: Path) -> None:
    outsider = init_provenance_keys(Home(tmp_path / "outsider"), organization="not this deployment")
    plain = tmp_path / "plain.mp4"
    reencode(deployment.unrelated, plain, 18)
    signed = tmp_path / "self-signed.mp4"
    sign_video(
        plain, signed, assertion=_assertion(deployment.made.generation_id),
        soft_binding=_binding(deployment.made.generation_id), credentials=outsider.credentials,
    )  # fmt: skip
    report = deployment.client.verify(signed)
    assert report.c2pa.state is ManifestState.VALID
    assert report.generation_id is None and report.generation is None
    assert report.attribution is Attribution.NONE
    with pytest.raises(UntrustedMediaError):
        require_trusted(report)


def test_a_trusted_manifest_without_the_watermark_fails_require_trusted(deployment: Deployment, tmp_path: Path) -> None:
    plain = tmp_path / "plain.mp4"
    reencode(deployment.unrelated, plain, 18)
    signed = tmp_path / "trusted-unmarked.mp4"
    sign_video(
        plain, signed, assertion=_assertion(deployment.made.generation_id),
        soft_binding=_binding(deployment.made.generation_id), credentials=deployment.keys.credentials,
    )  # fmt: skip
    report = deployment.client.verify(signed)
    assert report.c2pa.state is ManifestState.TRUSTED
    assert not report.watermark.detected
    assert report.generation_id is None and report.generation is None
    with pytest.raises(UntrustedMediaError, match="no watermark"):
        require_trusted(report)


def test_a_trusted_manifest_naming_another_generation_than_the_mark_fails_require_trusted(
    deployment: Deployment, tmp_path: Path
) -> None:
    copy = tmp_path / "copy.mp4"
    reencode(deployment.output, copy, 18)
    other = Payload.new().hex
    signed = tmp_path / "renamed.mp4"
    sign_video(
        copy, signed, assertion=_assertion(other), soft_binding=_binding(deployment.made.generation_id),
        credentials=deployment.keys.credentials,
    )  # fmt: skip
    report = deployment.client.verify(signed)
    assert report.c2pa.state is ManifestState.TRUSTED
    assert report.watermark.payload == deployment.made.generation_id
    assert report.consistent is False
    with pytest.raises(UntrustedMediaError, match="the manifest another"):
        require_trusted(report)
