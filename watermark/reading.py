"""Read and validate the C2PA manifest of a media file (c2pa-python), and summarise what it claims.

Reading never touches the network: remote manifests and OCSP are not fetched, so a verdict depends only on the
file and the trust anchors passed in.
"""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Any, TypeVar

from cryptography import x509
from pydantic import BaseModel, ConfigDict, ValidationError

from watermark.errors import CredentialsError, ManifestReadError, MediaNotFoundError, UnsupportedMediaError
from watermark.manifest import (
    ACTIONS_LABEL,
    GENERATION_LABEL,
    INGREDIENT_SHA256_KEY,
    SOFT_BINDING_LABEL,
    TRAINING_MINING_LABEL,
    GenerationAssertion,
    SoftBinding,
)

UNVALIDATED_CODE = "general.error"
"""Reported when c2pa finds C2PA data but cannot parse or verify it at all (its message goes in ``error``)."""

_Model = TypeVar("_Model", bound=BaseModel)
_OFFLINE = {"remote_manifest_fetch": False, "ocsp_fetch": False}


class ManifestState(StrEnum):
    TRUSTED = "trusted"
    """Intact, and signed by a certificate that chains to a trust anchor passed in."""
    VALID = "valid"
    """Intact and correctly signed, but the signer is not trusted (no anchors passed, or not theirs)."""
    INVALID = "invalid"
    """The media or the manifest was altered, or the manifest cannot be verified; ``codes`` says what failed."""
    ABSENT = "absent"
    """No C2PA manifest (never signed, or stripped, e.g. by a remux)."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class IngredientSummary(_Frozen):
    title: str | None
    relationship: str | None
    format: str | None
    sha256: str | None


class ManifestSummary(_Frozen):
    label: str
    title: str | None
    signer: str | None
    """Common name of the signing certificate."""
    issuer: str | None
    """Organisation of the signing certificate's issuer, as c2pa reports it."""
    claim_generator: str | None
    claim_generator_version: str | None
    digital_source_type: str | None
    generation: GenerationAssertion | None
    soft_binding: SoftBinding | None
    training_mining: dict[str, str]
    """Training and data-mining entry → use (``notAllowed``, ``allowed``, ``constrained``)."""
    ingredients: tuple[IngredientSummary, ...]


class ManifestReport(_Frozen):
    """The verdict on a file's manifest. ``summary`` is what the manifest claims, present even when INVALID:
    rely on it only when ``state`` is TRUSTED (or VALID, for a signer you identify otherwise).
    """

    state: ManifestState
    codes: list[str]
    """Validation failure codes of the active manifest, e.g. ``assertion.bmffHash.mismatch``."""
    summary: ManifestSummary | None
    error: str | None = None


def read_manifest(path: Path, *, trust_anchors: str | None = None) -> ManifestReport:
    """Validate the manifest of ``path``. Trusted needs ``trust_anchors`` (PEM CA certificates); without them the
    best verdict is Valid. A file without a manifest is ABSENT; a file that is not media c2pa knows raises.
    """
    # Imported here, not with the module: the report types travel to remote clients, which never load c2pa.
    from c2pa import C2paError, Reader

    context = _context(trust_anchors)
    try:
        with path.open("rb") as stream:
            reader = Reader.try_create(None, stream, None, context)
            if reader is None:
                return ManifestReport(state=ManifestState.ABSENT, codes=[], summary=None)
            with reader:
                store = json.loads(reader.json())
    except FileNotFoundError as exc:
        raise MediaNotFoundError(f"{path} does not exist") from exc
    except OSError as exc:
        raise ManifestReadError(f"cannot read {path}: {exc.strerror}") from exc
    except C2paError.NotSupported as exc:
        raise UnsupportedMediaError(f"{path} is not a media type that can carry a C2PA manifest") from exc
    except (C2paError.Io, C2paError.FileNotFound) as exc:
        raise ManifestReadError(f"cannot read {path}: {exc}") from exc
    except C2paError as exc:
        return ManifestReport(state=ManifestState.INVALID, codes=[UNVALIDATED_CODE], summary=None, error=str(exc))
    finally:
        context.close()
    return _report(store)


def _context(trust_anchors: str | None) -> Any:
    from c2pa import Context

    settings: dict[str, Any] = {"verify": {"verify_trust": True, **_OFFLINE}}
    if trust_anchors is not None:
        try:
            x509.load_pem_x509_certificates(trust_anchors.encode("ascii"))
        except (ValueError, UnicodeEncodeError) as exc:
            # c2pa would report a bad anchor as a signature failure of the media, blaming the wrong file.
            raise CredentialsError(f"the trust anchors are not PEM certificates: {exc}") from exc
        settings["trust"] = {"trust_anchors": trust_anchors}
    return Context.from_dict(settings)


def _report(store: dict[str, Any]) -> ManifestReport:
    state = {"Trusted": ManifestState.TRUSTED, "Valid": ManifestState.VALID}.get(
        store.get("validation_state", ""), ManifestState.INVALID
    )
    active = store.get("validation_results", {}).get("activeManifest", {})
    codes = [entry["code"] for entry in active.get("failure", [])]
    label = store["active_manifest"]
    return ManifestReport(state=state, codes=codes, summary=_summary(label, store["manifests"][label]))


def _summary(label: str, manifest: dict[str, Any]) -> ManifestSummary:
    assertions = {assertion["label"]: assertion.get("data", {}) for assertion in manifest.get("assertions", [])}
    signature = manifest.get("signature_info", {})
    generator = (manifest.get("claim_generator_info") or [{}])[0]
    return ManifestSummary(
        label=label,
        title=manifest.get("title"),
        signer=signature.get("common_name"),
        issuer=signature.get("issuer"),
        claim_generator=generator.get("name"),
        claim_generator_version=generator.get("version"),
        digital_source_type=_digital_source_type(assertions),
        generation=_parse(GenerationAssertion, assertions.get(GENERATION_LABEL)),
        soft_binding=_soft_binding(assertions.get(SOFT_BINDING_LABEL)),
        training_mining={
            entry: value.get("use", "")
            for entry, value in assertions.get(TRAINING_MINING_LABEL, {}).get("entries", {}).items()
        },
        ingredients=tuple(_ingredient(ingredient) for ingredient in manifest.get("ingredients", [])),
    )


def _digital_source_type(assertions: dict[str, Any]) -> str | None:
    actions = assertions.get(ACTIONS_LABEL) or assertions.get("c2pa.actions") or {}
    for action in actions.get("actions", []):
        if action.get("action") in ("c2pa.created", "c2pa.opened") and "digitalSourceType" in action:
            source_type: str = action["digitalSourceType"]
            return source_type
    return None


def _soft_binding(data: dict[str, Any] | None) -> SoftBinding | None:
    blocks = (data or {}).get("blocks") or [{}]
    return _parse(SoftBinding, {"algorithm": (data or {}).get("alg"), "value": blocks[0].get("value")})


def _ingredient(ingredient: dict[str, Any]) -> IngredientSummary:
    return IngredientSummary(
        title=ingredient.get("title"),
        relationship=ingredient.get("relationship"),
        format=ingredient.get("format"),
        sha256=(ingredient.get("metadata") or {}).get(INGREDIENT_SHA256_KEY),
    )


def _parse(model: type[_Model], data: object) -> _Model | None:
    # Foreign or malformed content under our labels is reported as missing rather than failing the whole read.
    if data is None:
        return None
    try:
        return model.model_validate(data)
    except ValidationError:
        return None
