"""Reading, validating and compiling Cedar policy files into one policy set keyed by ``@id``."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any

import cedarpy

from policy.errors import PolicyLoadError

_PACKAGE = "policy"
SCHEMA_RESOURCE = "schema.cedarschema"
DEFAULT_RESOURCE = "default.cedar"


@dataclass(frozen=True)
class PolicySource:
    """One file of Cedar policies; ``label`` names it in errors."""

    label: str
    text: str


@dataclass(frozen=True)
class LoadedPolicy:
    policy_id: str
    effect: str
    annotations: Mapping[str, str]
    source: str


@dataclass(frozen=True)
class CompiledPolicies:
    policy_set: cedarpy.PolicySet
    schema: cedarpy.Schema
    policies: tuple[LoadedPolicy, ...]
    digest: str


def _package_text(name: str) -> str:
    return resources.files(_PACKAGE).joinpath(name).read_text(encoding="utf-8")


def load_schema() -> cedarpy.Schema:
    try:
        return cedarpy.Schema.from_str(_package_text(SCHEMA_RESOURCE))
    except ValueError as exc:
        raise PolicyLoadError(f"schema does not parse: {exc}", path=SCHEMA_RESOURCE) from exc


def default_source() -> PolicySource:
    return PolicySource(label=f"{_PACKAGE}/{DEFAULT_RESOURCE}", text=_package_text(DEFAULT_RESOURCE))


def read_sources(paths: Sequence[str | os.PathLike[str]]) -> list[PolicySource]:
    """Each path is a policy file or a directory whose ``*.cedar`` files are read in name order."""
    sources: list[PolicySource] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            files = sorted(path.glob("*.cedar"))
        elif path.is_file():
            files = [path]
        else:
            raise PolicyLoadError("no such policy file or directory", path=path)
        for file in files:
            try:
                sources.append(PolicySource(label=str(file), text=file.read_text(encoding="utf-8")))
            except (OSError, UnicodeDecodeError) as exc:
                raise PolicyLoadError(f"cannot read: {exc}", path=file) from exc
    return sources


def _validate(source: PolicySource, schema: cedarpy.Schema) -> None:
    result = cedarpy.validate_policies(source.text, schema)
    if result.validation_passed:
        return
    names: dict[str, str] = result.id_annotations_by_policy_id
    problems = []
    for error in result.errors:
        message = error.error
        # Cedar names policies by position (policy0, ...); the @id is what the operator wrote.
        for positional, annotated in names.items():
            message = message.replace(f"`{positional}`", f"`{annotated}`")
        who = names.get(error.policy_id, error.policy_id)
        problems.append(f"policy {who!r}: {message}" if who else message)
    raise PolicyLoadError("fails schema validation: " + "; ".join(problems), path=source.label)


def _parse(source: PolicySource) -> list[tuple[dict[str, Any], LoadedPolicy]]:
    try:
        est = json.loads(cedarpy.policies_to_json_str(source.text))
    except ValueError as exc:
        raise PolicyLoadError(f"does not parse: {exc}", path=source.label) from exc
    if est.get("templates"):
        raise PolicyLoadError(
            "templates (policies with ?principal or ?resource slots) are not supported", path=source.label
        )
    parsed = []
    for position, body in enumerate(est.get("staticPolicies", {}).values()):
        annotations = {str(k): str(v) for k, v in (body.get("annotations") or {}).items()}
        policy_id = annotations.get("id", "")
        if not policy_id:
            raise PolicyLoadError(
                f"policy #{position + 1} ({body.get('effect')}) has no @id annotation; every policy needs one",
                path=source.label,
            )
        loaded = LoadedPolicy(policy_id, str(body["effect"]), MappingProxyType(annotations), source.label)
        parsed.append((body, loaded))
    return parsed


def _digest(sources: Sequence[PolicySource]) -> str:
    digest = hashlib.sha256()
    for source in sources:
        data = source.text.encode("utf-8")
        # Length-prefixing keeps "ab"+"c" and "a"+"bc" distinct.
        digest.update(len(data).to_bytes(8, "big"))
        digest.update(data)
    return digest.hexdigest()


def compile_sources(sources: Sequence[PolicySource], schema: cedarpy.Schema) -> CompiledPolicies:
    """Parse and validate every source, or raise ``PolicyLoadError`` and load nothing."""
    bodies: dict[str, dict[str, Any]] = {}
    policies: list[LoadedPolicy] = []
    for source in sources:
        parsed = _parse(source)
        _validate(source, schema)
        for body, loaded in parsed:
            if loaded.policy_id in bodies:
                first = next(p.source for p in policies if p.policy_id == loaded.policy_id)
                raise PolicyLoadError(f"duplicate policy id {loaded.policy_id!r} (first in {first})", path=source.label)
            bodies[loaded.policy_id] = body
            policies.append(loaded)
    # Keying the set by @id makes Cedar report the operator's ids as the determining policies.
    document = {"staticPolicies": bodies, "templates": {}, "templateLinks": []}
    try:
        policy_set = cedarpy.PolicySet.from_json_str(json.dumps(document))
    except ValueError as exc:
        raise PolicyLoadError(f"policies do not combine into one set: {exc}") from exc
    return CompiledPolicies(policy_set, schema, tuple(policies), _digest(sources))
