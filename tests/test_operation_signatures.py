"""Every operation is declared once, in ``xp_sdk.operations.Operations``; what else spells it out is held to that
declaration here, so nothing can drift:

- ``Service`` (in process) and ``HttpOperations`` (over HTTP) take the same parameters after the API key: the same
  names, kinds, defaults and annotations, but for the differences listed below with their reasons;
- ``Client`` and its resources offer the same (less the key), derived from the declaration or written out;
- each HTTP route's parameters and each CLI command's options map onto the operation's parameters, through the
  renames listed below and nothing else, with the same defaults and the same required parameters.
"""

from __future__ import annotations

import dataclasses
import inspect
import typing
from collections.abc import Callable
from types import UnionType
from typing import Any

import pytest
import typer.main
from fastapi.openapi.utils import get_openapi

import audit
import xp_sdk.engine
import xp_sdk.engine.templates
import xp_sdk.results
import xp_sdk.verify
from xp_sdk import operations
from xp_sdk.cli import app as cli_app
from xp_sdk.cli.common import parse_duration
from xp_sdk.client import AuditResource, Client, ConsentsResource, KeysResource, SubjectsResource
from xp_sdk.consent.challenge import ConsentChallenge
from xp_sdk.engine import AnimateOptions
from xp_sdk.operations import Operations
from xp_sdk.remote import HttpOperations
from xp_sdk.server.routes import api
from xp_sdk.service import Service

OPERATIONS = sorted(name for name in vars(Operations) if not name.startswith("_") and name != "close")
EMPTY = inspect.Parameter.empty

# Names the modules import only for type checking, so that annotations written as strings can be evaluated.
TYPE_NAMES: dict[str, Any] = {
    **{name: getattr(audit, name) for name in audit.__all__},
    **{name: getattr(xp_sdk.engine, name) for name in xp_sdk.engine.__all__},
    **{name: value for name, value in vars(xp_sdk.results).items() if isinstance(value, type)},
    "MotionTemplate": xp_sdk.engine.templates.MotionTemplate,
    "Verification": xp_sdk.verify.Verification,
    "PublicVerification": xp_sdk.verify.PublicVerification,
    "ConsentChallenge": ConsentChallenge,
    "PhotoInput": operations.PhotoInput,
}

WIDER: dict[tuple[str, str, str], str] = {
    ("HttpOperations", "animate", "template"): "a template file's path is read and uploaded (the server takes none)",
    ("Client", "animate", "template"): "a template file of the caller's is resolved (resolve_template) first",
    ("Client", "register_subject", "photos"): "one photo may be given alone",
}
"""(implementation, operation, parameter) whose annotation accepts more than the declaration's: why."""

EXTRA: dict[tuple[str, str, str], str] = {
    ("Service", "animate", "generation_id"): "the server hands a job's reserved generation id to its worker",
}
"""(implementation, operation, parameter) that only the implementation has: why."""


def _parameters(function: Callable[..., Any], skip: int) -> list[inspect.Parameter]:
    """``function``'s parameters after the first ``skip``, each annotation evaluated."""
    hints = typing.get_type_hints(function, globalns={**TYPE_NAMES, **function.__globals__})
    listed = list(inspect.signature(function).parameters.values())[skip:]
    return [p.replace(annotation=hints.get(p.name, EMPTY)) for p in listed]


def declared(name: str) -> list[inspect.Parameter]:
    return _parameters(getattr(Operations, name), skip=2)


def _members(annotation: Any) -> set[Any]:
    is_union = isinstance(annotation, UnionType) or typing.get_origin(annotation) is typing.Union
    return set(typing.get_args(annotation)) if is_union else {annotation}


def assert_same(implementation: str, name: str, found: list[inspect.Parameter]) -> None:
    expected = {p.name: p for p in declared(name)}
    extra = {p.name for p in found} - set(expected)
    assert extra == {p for (i, o, p) in EXTRA if (i, o) == (implementation, name)}, f"{implementation}.{name}"
    found = [p for p in found if p.name in expected]
    assert [p.name for p in found] == list(expected), f"{implementation}.{name}: parameters or their order"
    for parameter in found:
        wanted = expected[parameter.name]
        where = f"{implementation}.{name}({parameter.name})"
        assert (parameter.kind, parameter.default) == (wanted.kind, wanted.default), where
        if (implementation, name, parameter.name) in WIDER:
            assert _members(wanted.annotation) < _members(parameter.annotation), where
        else:
            assert parameter.annotation == wanted.annotation, where


@pytest.mark.parametrize("name", OPERATIONS)
@pytest.mark.parametrize("implementation", [Service, HttpOperations], ids=lambda c: c.__name__)
def test_each_transport_takes_the_declared_parameters(implementation: type, name: str) -> None:
    method = getattr(implementation, name)
    assert _parameters(method, skip=1)[0].name == "api_key"
    assert_same(implementation.__name__, name, _parameters(method, skip=2))


NOT_OPERATIONS = {"caller", "authorized"}
"""``Service`` methods that take an API key but are the server's plumbing (who calls, may they), no operation."""


@pytest.mark.parametrize("implementation", [Service, HttpOperations], ids=lambda c: c.__name__)
def test_every_method_that_takes_a_key_is_a_declared_operation(implementation: type) -> None:
    taking_a_key = {
        name
        for name, member in inspect.getmembers(implementation)
        if inspect.isfunction(member) and not name.startswith("_")
        and list(inspect.signature(member).parameters)[1:2] == ["api_key"]
    }  # fmt: skip
    assert taking_a_key - NOT_OPERATIONS == set(OPERATIONS)


CLIENT: dict[str, tuple[type, str]] = {
    "animate": (Client, "animate"),
    "verify": (Client, "verify"),
    "audit_query": (AuditResource, "query"),
    "audit_show": (AuditResource, "show"),
    "audit_verify": (AuditResource, "verify"),
    "audit_consistency": (AuditResource, "consistency"),
    "audit_abandoned": (AuditResource, "abandoned"),
    "audit_checkpoint": (AuditResource, "checkpoint"),
    "audit_checkpoints": (AuditResource, "checkpoints"),
    "register_subject": (SubjectsResource, "register"),
    "subject": (SubjectsResource, "get"),
    "subjects": (SubjectsResource, "list"),
    "grant_consent": (ConsentsResource, "grant"),
    "revoke_consent": (ConsentsResource, "revoke"),
    "consents": (ConsentsResource, "list"),
    "consent_challenge": (ConsentsResource, "challenge"),
    "grant_consent_by_video": (ConsentsResource, "grant_by_video"),
    "create_key": (KeysResource, "create"),
    "keys": (KeysResource, "list"),
    "revoke_key": (KeysResource, "revoke"),
}


def test_the_client_offers_every_operation() -> None:
    assert sorted(CLIENT) == OPERATIONS


@pytest.mark.parametrize("name", OPERATIONS)
def test_the_client_method_is_the_declared_one_less_the_key(name: str) -> None:
    owner, attribute = CLIENT[name]
    method = vars(owner)[attribute]
    if hasattr(method, "declared"):  # derived: the declaration itself, with the client's key bound
        assert method.declared is getattr(Operations, name)
        assert list(method.__signature__.parameters) == [p.name for p in declared(name)]
    else:
        assert_same("Client", name, _parameters(method, skip=1))


# -- HTTP ------------------------------------------------------------------------------------------------------

ROUTES: dict[str, tuple[str, str]] = {
    "animate": ("post", "/v1/animations"),
    "verify": ("post", "/v1/verifications"),
    "audit_query": ("get", "/v1/audit/events"),
    "audit_show": ("get", "/v1/audit/generations/{generation_id}"),
    "audit_verify": ("post", "/v1/audit/verify"),
    "audit_consistency": ("get", "/v1/audit/consistency"),
    "audit_abandoned": ("post", "/v1/audit/abandoned"),
    "audit_checkpoint": ("post", "/v1/audit/checkpoints"),
    "audit_checkpoints": ("get", "/v1/audit/checkpoints"),
    "register_subject": ("post", "/v1/subjects"),
    "subject": ("get", "/v1/subjects/{subject_id}"),
    "subjects": ("get", "/v1/subjects"),
    "grant_consent": ("post", "/v1/consents"),
    "revoke_consent": ("post", "/v1/consents/{consent_id}/revoke"),
    "consents": ("get", "/v1/consents"),
    "consent_challenge": ("post", "/v1/consents/challenges"),
    "grant_consent_by_video": ("post", "/v1/consents/video"),
    "create_key": ("post", "/v1/keys"),
    "keys": ("get", "/v1/keys"),
    "revoke_key": ("post", "/v1/keys/{key_id}/revoke"),
}

HTTP_FIELDS: dict[str, dict[str, tuple[str, ...]]] = {
    "animate": {
        "source": ("source", "source_format"),  # the file, and whether it was pixels on the client
        "out": ("out_name",),  # the server writes its own file; the client downloads it to ``out``
        "template": ("template", "template_json"),  # a built-in's name, or a template's JSON
        "progress": (),  # followed on the job's event stream
    },
    "verify": {"path": ("video",)},  # the file itself
    "register_subject": {"photos": ("photos", "photo_kinds")},
    "grant_consent": {"evidence": ("evidence", "evidence_kind")},
    "audit_abandoned": {"older_than": ("older_than_s",)},
}
"""Operation parameters that travel as other fields than one of their own name (an empty tuple: none)."""

HTTP_ONLY: dict[tuple[str, str], str] = {
    ("animate", "Idempotency-Key"): "a header that makes a retried POST return the first job",
    ("verify", "still"): "a JPEG of the middle frame, for the verification page",
}

HTTP_VALUE: dict[tuple[str, str], Callable[[Any], Any]] = {
    ("audit_abandoned", "older_than"): lambda age: age.total_seconds(),
}
"""How an operation's default is written over HTTP, where that is not as it is."""


@pytest.fixture(scope="module")
def openapi() -> dict[str, Any]:
    return get_openapi(title="xp-sdk", version="test", routes=api.routes)


def http_fields(openapi: dict[str, Any], name: str) -> dict[str, dict[str, Any]]:
    """The route's parameters and body fields: each one's JSON schema, with ``required`` set."""
    method, path = ROUTES[name]
    route = openapi["paths"][path][method]
    fields = {
        p["name"]: {**p.get("schema", {}), "required": p.get("required", False)} for p in route.get("parameters", ())
    }
    for content in route.get("requestBody", {}).get("content", {}).values():
        schema = content["schema"]
        options = [schema, *schema.get("anyOf", ())]
        for option in options:
            if "$ref" in option:
                schema = openapi["components"]["schemas"][option["$ref"].rsplit("/", 1)[-1]]
        for field, field_schema in schema.get("properties", {}).items():
            fields[field] = {**field_schema, "required": field in schema.get("required", ())}
    return fields


def test_every_route_is_an_operation(openapi: dict[str, Any]) -> None:
    assert sorted(ROUTES) == OPERATIONS
    served = {(method, path) for path, methods in openapi["paths"].items() for method in methods}
    assert set(ROUTES.values()) <= served


@pytest.mark.parametrize("name", OPERATIONS)
def test_the_route_takes_the_operations_parameters(openapi: dict[str, Any], name: str) -> None:
    fields = http_fields(openapi, name)
    renames = HTTP_FIELDS.get(name, {})
    carried = {field: p for p in declared(name) for field in renames.get(p.name, (p.name,))}
    assert set(fields) - {f for (o, f) in HTTP_ONLY if o == name} == set(carried), name
    for field, parameter in carried.items():
        schema = fields[field]
        if schema["required"]:
            assert parameter.default is EMPTY, f"{name}: {field} is required over HTTP only"
        if "default" in schema:
            written = HTTP_VALUE.get((name, parameter.name), lambda value: value)
            assert parameter.default is not EMPTY, f"{name}: {field} has a default over HTTP only"
            assert schema["default"] == written(parameter.default), f"{name}: {field}'s default differs"


# -- CLI -------------------------------------------------------------------------------------------------------

COMMANDS: dict[str, tuple[str, ...]] = {
    "animate": ("animate",),
    "verify": ("verify",),
    "audit_query": ("audit", "query"),
    "audit_show": ("audit", "show"),
    "audit_verify": ("audit", "verify"),
    "audit_consistency": ("audit", "consistency"),
    "audit_abandoned": ("audit", "abandoned"),
    "audit_checkpoint": ("audit", "checkpoint"),
    "audit_checkpoints": ("audit", "checkpoints"),
    "register_subject": ("subjects", "register"),
    "subject": ("subjects", "show"),
    "subjects": ("subjects", "list"),
    "grant_consent": ("consents", "grant"),
    "revoke_consent": ("consents", "revoke"),
    "consents": ("consents", "list"),
    "consent_challenge": ("consents", "challenge"),
    "grant_consent_by_video": ("consents", "grant-video"),
    "create_key": ("keys", "create"),
    "keys": ("keys", "list"),
    "revoke_key": ("keys", "revoke"),
}

CLI_SETTINGS = {"home", "api_key", "database_url", "as_json"}
"""Options every command that calls an operation has: where the deployment is, who calls, how to print."""

CLI_ONLY: dict[tuple[str, str], str] = {
    ("verify", "require_trusted"): "exit 8 unless the report is trusted: a check of the report, after the call",
    ("audit_checkpoints", "out"): "where to write the notes",
    ("grant_consent", "video"): "with --challenge, the same command grants by video (grant_consent_by_video)",
    ("grant_consent", "challenge"): "with --video, the same command grants by video (grant_consent_by_video)",
}

CLI_EITHER: dict[tuple[str, str], str] = {
    ("grant_consent", "evidence"): "required unless --video and --challenge are given instead",
}
"""A required parameter whose option may be left out for another way of calling (checked by the command)."""

CLI_NAMES: dict[str, dict[str, str]] = {
    "verify": {"file": "path"},
    "audit_query": {"generation": "generation_id", "event_type": "type"},
    "audit_verify": {"witness": "witnessed"},  # files of notes → the notes
    "create_key": {"rate_limit": "rate_limit_per_minute"},
}
"""CLI option → the operation parameter it is, where their names differ."""

CLI_VALUE: dict[tuple[str, str], Callable[[Any], Any]] = {
    ("audit_abandoned", "older_than"): lambda text: parse_duration(text, option="--older-than"),
}
"""How a CLI default (text) reads as the operation's value."""

ANIMATION_OPTIONS: dict[str, str] = {
    "max_side": "max_side",
    "expression_scale": "expression_scale",
    "pose_scale": "pose_scale",
    "shading": "shading.enabled",
    "driver_mouth": "driver_mouth",
    "reference_frame": "reference_frame",
    "audio": "keep_audio",
    "allow_multiple_faces": "allow_multiple_faces",
    "crop_to_face": "crop_to_face",
    "engine": "engine",
    "models": "diffusion.models",
    "steps": "diffusion.steps",
    "strength": "diffusion.strength",
    "device": "diffusion.device",
}
"""``xp animate``'s options that make its ``AnimateOptions``: each one's field."""


def command(path: tuple[str, ...]) -> Any:
    """The click command ``xp PATH`` runs (from the click typer bundles, which need not be the installed one)."""
    found: Any = typer.main.get_command(cli_app)
    for part in path:
        found = found.commands[part]
    return found


def test_every_operation_has_its_command() -> None:
    assert sorted(COMMANDS) == OPERATIONS


@pytest.mark.parametrize("name", OPERATIONS)
def test_the_command_takes_the_operations_parameters(name: str) -> None:
    options = {p.name: p for p in command(COMMANDS[name]).params if p.name is not None}
    assert set(options) >= CLI_SETTINGS, name
    parameters = {p.name: p for p in declared(name)}
    renames = CLI_NAMES.get(name, {})
    mapped = {
        option: renames.get(option, option)
        for option in options
        if option not in CLI_SETTINGS and (name, option) not in CLI_ONLY
        and not (name == "animate" and option in ANIMATION_OPTIONS)
    }  # fmt: skip
    assert set(mapped.values()) <= set(parameters), f"{name}: options that are no parameter"
    required = {p for p, parameter in parameters.items() if parameter.default is EMPTY}
    assert required <= set(mapped.values()), f"{name}: a required parameter the command lacks"
    for option, parameter_name in mapped.items():
        cli, parameter = options[option], parameters[parameter_name]
        where = f"{' '.join(COMMANDS[name])} {cli.opts[0]}"
        either = (name, parameter_name) in CLI_EITHER
        assert cli.required == (parameter.default is EMPTY and not either), f"{where}: required in one place only"
        if cli.required or either or (cli.default is None and getattr(cli, "multiple", False)):
            continue  # a repeatable option left out is the operation's default
        read = CLI_VALUE.get((name, parameter_name), lambda value: value)
        assert read(cli.default) == parameter.default, f"{where}: its default differs from the operation's"


def test_the_animation_options_default_to_animate_options() -> None:
    options = {p.name: p for p in command(("animate",)).params}
    defaults = AnimateOptions()
    for option, field in ANIMATION_OPTIONS.items():
        value: Any = defaults
        for part in field.split("."):
            assert part in {f.name for f in dataclasses.fields(value)}, field
            value = getattr(value, part)
        assert options[option].default == value, f"xp animate --{option} defaults to {options[option].default!r}"


def test_no_parameter_is_named_in_a_table_that_it_is_not() -> None:
    for name, fields in HTTP_FIELDS.items():
        assert set(fields) <= {p.name for p in declared(name)}, name
    for name, names in CLI_NAMES.items():
        assert set(names.values()) <= {p.name for p in declared(name)}, name
    for implementation, name, parameter in WIDER:
        assert parameter in {p.name for p in declared(name)}, (implementation, name, parameter)
