"""What goes into an xp-sdk C2PA manifest, and the manifest definition JSON that c2pa's ``Builder`` takes.

Pure data: no file access and no c2pa calls, so the content of a manifest can be reviewed (and tested) on its own.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

CLAIM_GENERATOR = "xp-sdk"
ACTIONS_LABEL = "c2pa.actions.v2"
TRAINING_MINING_LABEL = "cawg.training-mining"
SOFT_BINDING_LABEL = "c2pa.soft-binding"
GENERATION_LABEL = "com.xp-sdk.generation"
INGREDIENT_SHA256_KEY = "com.xp-sdk.sha256"
"""Key of the input file's SHA-256 in an ingredient's ``metadata``: the ingredient records a hash, never content."""

TRAINED_ALGORITHMIC_MEDIA = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
TRAINING_MINING_USES = ("cawg.ai_generative_training", "cawg.ai_inference", "cawg.ai_training", "cawg.data_mining")


def _hex(value: str) -> str:
    try:
        bytes.fromhex(value)
    except ValueError as exc:
        raise ValueError(f"expected an even-length hex string, got {value!r}") from exc
    return value.lower()


def _sha256_hex(value: str) -> str:
    value = _hex(value)
    if len(value) != 64:
        raise ValueError(f"a SHA-256 is 64 hex characters, got {len(value)}")
    return value


HexString = Annotated[str, Field(min_length=2), AfterValidator(_hex)]
Sha256Hex = Annotated[str, AfterValidator(_sha256_hex)]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ModelRef(_Frozen):
    """A model file the generation used, pinned by hash."""

    name: str = Field(min_length=1)
    sha256: Sha256Hex


class GenerationAssertion(_Frozen):
    """The project assertion (``com.xp-sdk.generation``): ties the media to its audit trail."""

    generation_id: str = Field(min_length=1)
    consent_id: str | None = None
    consent_kind: Literal["verified-video", "attested"] | None = None
    """How that consent was proven: a checked live challenge video, or an evidence file on the operator's word."""
    consent_evidence_sha256: Sha256Hex | None = None
    """The SHA-256 of that consent's evidence (the video or file itself stays with the deployment)."""
    policy_decision_id: str | None = None
    engine: str = Field(min_length=1)
    engine_version: str = Field(min_length=1)
    models: tuple[ModelRef, ...] = ()


class SoftBinding(_Frozen):
    """The invisible watermark carried by the frames, recorded so a stripped copy can be matched back."""

    algorithm: str = Field(min_length=1, examples=["com.xp-sdk.watermark.tiled-ss.v1"])
    value: HexString
    """The watermark payload, hex."""


class IngredientRef(_Frozen):
    """An input file (source photo, driving video). Only its title, format and SHA-256 enter the manifest."""

    path: Path
    title: str = Field(min_length=1)
    relationship: Literal["inputTo", "componentOf"] = "inputTo"


def manifest_definition(
    *,
    title: str,
    assertion: GenerationAssertion,
    soft_binding: SoftBinding,
    ingredients: list[dict[str, Any]],
) -> dict[str, Any]:
    """The manifest definition for ``c2pa.Builder``; ``ingredients`` come from ``ingredient_definition``."""
    return {
        "title": title,
        "claim_generator_info": [{"name": CLAIM_GENERATOR, "version": generator_version()}],
        "ingredients": ingredients,
        "assertions": [
            {"label": ACTIONS_LABEL, "data": _actions(assertion)},
            {"label": TRAINING_MINING_LABEL, "data": _training_mining()},
            {"label": SOFT_BINDING_LABEL, "data": _soft_binding(soft_binding)},
            {"label": GENERATION_LABEL, "data": assertion.model_dump(mode="json")},
        ],
    }


def ingredient_definition(ingredient: IngredientRef, *, media_type: str, sha256: str) -> dict[str, Any]:
    """An ingredient described by JSON alone: c2pa never opens the file, so no thumbnail or embedded metadata
    (nor a C2PA store the photo may carry, thumbnails included) can travel from a person's photo into the output.
    """
    return {
        "title": ingredient.title,
        "format": media_type,
        "relationship": ingredient.relationship,
        "metadata": {INGREDIENT_SHA256_KEY: _sha256_hex(sha256)},
    }


def generator_version() -> str:
    try:
        return version(CLAIM_GENERATOR)
    except PackageNotFoundError:
        return "0+unknown"


def _actions(assertion: GenerationAssertion) -> dict[str, Any]:
    created = {
        "action": "c2pa.created",
        "digitalSourceType": TRAINED_ALGORITHMIC_MEDIA,
        "softwareAgent": {"name": assertion.engine, "version": assertion.engine_version},
    }
    return {"actions": [created]}


def _training_mining() -> dict[str, Any]:
    return {"entries": {use: {"use": "notAllowed"} for use in TRAINING_MINING_USES}}


def _soft_binding(binding: SoftBinding) -> dict[str, Any]:
    # One block with an empty scope: the mark covers the whole video.
    return {"alg": binding.algorithm, "blocks": [{"scope": {}, "value": binding.value}]}
