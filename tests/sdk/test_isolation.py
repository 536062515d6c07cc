"""The tenant-isolation matrix: every operation × every kind of caller × every transport, from one table.

Tenant ``acme`` owns a subject (the astronaut), her consent and a completed generation. Each operation is called on
acme's records by acme's own key, by a key of tenant ``rival`` (the attacker: every scope but keys:admin), by acme
keys that lack the operation's scope, and by a revoked and an expired key; through the embedded Client, the
remote Client (a live server) and the ``xp`` CLI; on SQLite and PostgreSQL. A refusal is the expected error, it
writes exactly one audit event, and a "not found" for another tenant's record reads exactly as for a record that
does not exist. A new operation cannot be added without its row: the table is checked against the Client's
operations, the server's routes and the CLI's commands.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

import audit.ledger
from policy import Scope
from tests.cli.helpers import xp
from tests.postgres import postgres_schema
from xp_sdk import Client, init_deployment
from xp_sdk.config import Settings
from xp_sdk.errors import (
    AuthenticationError,
    NotFoundError,
    PermissionDeniedError,
    XPError,
)
from xp_sdk.operations import Operations
from xp_sdk.server.app import create_app
from xp_sdk.server.serve import BackgroundServer

ALL_BUT_ADMIN = ["animate", "verify", "audit:read", "subjects:write", "consents:write"]
TEMPLATE = "blink"
UNISSUED_CHALLENGE = "chl_00000000deadbeef"
OPTIONS = ["--max-side", "400", "--no-audio"]


@dataclass
class Tenancy:
    """One deployment with two tenants, and a live server over it."""

    root: Path
    home: Path
    url: str
    admin_key: str
    keys: dict[str, str]
    photo: Path
    evidence: Path
    subject: str
    consent: str
    generation: str
    output: Path
    key_to_revoke: str
    count: int = 0
    notes: dict[str, Any] = field(default_factory=dict)

    def admin(self) -> Client:
        return Client(self.admin_key, home=self.home)

    def events(self) -> int:
        with self.admin() as client:
            return client.deployment.ledger.log.size()

    def out(self) -> Path:
        self.count += 1
        folder = self.root / "out"
        folder.mkdir(exist_ok=True)
        return folder / f"clip-{self.count}.mp4"

    def fresh_consent(self) -> str:
        with self.admin() as client:
            return client.consents.grant(self.subject, evidence=b"a consent to revoke").id

    def fresh_key(self) -> str:
        with self.admin() as client:
            return client.keys.create(scopes="verify", name="to revoke").info.id


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def tenancy(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, faces: Path) -> Iterator[Tenancy]:
    root = tmp_path_factory.mktemp(f"isolation-{request.param}")
    with ExitStack() as cleanup:
        url = cleanup.enter_context(postgres_schema("xp_iso")) if request.param == "postgresql" else None
        init = init_deployment(root / "home", database_url=url, tenant="acme")
        photo = faces / "source" / "skimage_astronaut.png"
        evidence = root / "consent.txt"
        evidence.write_text("I, Eileen Collins, consent to be animated by acme.\n")
        with Client(init.api_key.secret, home=init.home) as first:
            admin_key = first.keys.create(
                scopes=[*ALL_BUT_ADMIN, "keys:admin"], name="admin", rate_limit_per_minute=0
            ).secret
        with Client(admin_key, home=init.home) as admin:
            keys = {
                "own": admin.keys.create(scopes=ALL_BUT_ADMIN, name="acme", rate_limit_per_minute=0).secret,
                "other": admin.keys.create(
                    tenant="rival", scopes=ALL_BUT_ADMIN, name="rival", rate_limit_per_minute=0
                ).secret,
                "admin": admin_key,
            }
            for scope in Scope:
                wanted = [s.value for s in Scope if s is not scope]
                keys[f"lacks {scope.value}"] = admin.keys.create(
                    scopes=wanted, name=f"no {scope.value}", rate_limit_per_minute=0
                ).secret
            revoked = admin.keys.create(scopes=[s.value for s in Scope], name="revoked", rate_limit_per_minute=0)
            admin.keys.revoke(revoked.info.id, reason="leaked")
            keys["revoked"] = revoked.secret
            keys["expired"] = admin.keys.create(
                scopes=[s.value for s in Scope], name="expiring", rate_limit_per_minute=0,
                expires=datetime.now(UTC) + timedelta(hours=1),
            ).secret  # fmt: skip
            subject = admin.subjects.register("Eileen Collins", [photo]).id
            consent = admin.consents.grant(subject, evidence=evidence).id
            output = root / "acme-original.mp4"
            generated = admin.animate(photo, subject=subject, template=TEMPLATE, out=output, options=_options())
            key_to_revoke = admin.keys.create(scopes="verify", name="victim key").info.id
        app = create_app(Settings.resolve(home=init.home), workers=1)
        with BackgroundServer(app) as live:
            yield Tenancy(
                root=root, home=init.home, url=live.url, admin_key=admin_key, keys=keys, photo=photo,
                evidence=evidence, subject=subject, consent=consent, generation=generated.generation_id,
                output=output, key_to_revoke=key_to_revoke,
            )  # fmt: skip


def _options() -> Any:
    from xp_sdk.engine import AnimateOptions

    return AnimateOptions(max_side=400, keep_audio=False)


# -- the table -----------------------------------------------------------------------------------------------

Sdk = Callable[[Client, Tenancy], object]
Cli = Callable[[Tenancy], list[str]]


@dataclass(frozen=True)
class Operation:
    name: str
    """The ``Operations`` method."""
    scope: Scope
    sdk: Sdk
    cli: Cli
    routes: tuple[str, ...]
    other: type[XPError] | None
    """What a rival tenant's key gets when it names acme's record (None: allowed, limited to its own tenant)."""
    mutates: bool = False
    own: type[XPError] | None = None
    """What acme's own key gets (None: allowed), where the row's call is one the operation refuses on its merits."""


OPERATIONS: tuple[Operation, ...] = (
    Operation(
        "animate", Scope.ANIMATE,
        lambda c, t: c.animate(t.photo, subject=t.subject, template=TEMPLATE, out=t.out(), options=_options()),
        lambda t: ["animate", "--source", t.photo, "--subject", t.subject, "--template", TEMPLATE,
                   "--out", t.out(), *OPTIONS],
        ("POST /v1/animations", "GET /v1/animations/{job_id}", "DELETE /v1/animations/{job_id}",
         "GET /v1/animations/{job_id}/events", "GET /v1/animations/{job_id}/output"),
        NotFoundError,
    ),
    Operation(
        "verify", Scope.VERIFY, lambda c, t: c.verify(t.output), lambda t: ["verify", t.output],
        ("POST /v1/verifications",), None,
    ),
    Operation(
        "audit_query", Scope.AUDIT_READ, lambda c, t: c.audit.query(tenant="acme", limit=5),
        lambda t: ["audit", "query", "--tenant", "acme", "--limit", "5"], ("GET /v1/audit/events",),
        PermissionDeniedError,
    ),
    Operation(
        "audit_show", Scope.AUDIT_READ, lambda c, t: c.audit.show(t.generation),
        lambda t: ["audit", "show", t.generation], ("GET /v1/audit/generations/{generation_id}",), NotFoundError,
    ),
    Operation(
        "audit_verify", Scope.AUDIT_READ, lambda c, t: c.audit.verify(), lambda t: ["audit", "verify"],
        ("POST /v1/audit/verify",), None,
    ),
    Operation(
        "audit_consistency", Scope.AUDIT_READ, lambda c, t: c.audit.consistency(1),
        lambda t: ["audit", "consistency", "1"], ("GET /v1/audit/consistency",), None,
    ),
    Operation(
        "audit_abandoned", Scope.AUDIT_READ, lambda c, t: c.audit.abandoned(),
        lambda t: ["audit", "abandoned"], ("POST /v1/audit/abandoned",), None,
    ),
    Operation(
        "audit_checkpoint", Scope.AUDIT_READ, lambda c, t: c.audit.checkpoint(),
        lambda t: ["audit", "checkpoint"], ("POST /v1/audit/checkpoints",), None,
    ),
    Operation(
        "audit_checkpoints", Scope.AUDIT_READ, lambda c, t: c.audit.checkpoints(),
        lambda t: ["audit", "checkpoints"], ("GET /v1/audit/checkpoints",), None,
    ),
    Operation(
        "register_subject", Scope.SUBJECTS_WRITE, lambda c, t: c.subjects.register("Eileen again", [t.photo]),
        lambda t: ["subjects", "register", "--name", "Eileen again", "--photo", t.photo],
        ("POST /v1/subjects",), None, mutates=True,
    ),
    Operation(
        "subject", Scope.AUDIT_READ, lambda c, t: c.subjects.get(t.subject),
        lambda t: ["subjects", "show", t.subject], ("GET /v1/subjects/{subject_id}",), NotFoundError,
    ),
    Operation(
        "subjects", Scope.AUDIT_READ, lambda c, t: c.subjects.list(), lambda t: ["subjects", "list"],
        ("GET /v1/subjects",), None,
    ),
    Operation(
        "grant_consent", Scope.CONSENTS_WRITE, lambda c, t: c.consents.grant(t.subject, evidence=t.evidence),
        lambda t: ["consents", "grant", "--subject", t.subject, "--evidence", t.evidence],
        ("POST /v1/consents",), NotFoundError, mutates=True,
    ),
    Operation(
        "revoke_consent", Scope.CONSENTS_WRITE, lambda c, t: c.consents.revoke(t.notes["consent"]),
        lambda t: ["consents", "revoke", t.notes["consent"]], ("POST /v1/consents/{consent_id}/revoke",),
        NotFoundError, mutates=True,
    ),
    Operation(
        "consents", Scope.AUDIT_READ, lambda c, t: c.consents.list(subject=t.subject),
        lambda t: ["consents", "list", "--subject", t.subject], ("GET /v1/consents",), NotFoundError,
    ),
    Operation(
        "consent_challenge", Scope.CONSENTS_WRITE, lambda c, t: c.consents.challenge(t.subject),
        lambda t: ["consents", "challenge", "--subject", t.subject], ("POST /v1/consents/challenges",),
        NotFoundError, mutates=True,
    ),
    # acme's own call names a challenge never issued (refused before the video is examined); a rival's names acme's
    # subject, and reads as a subject that does not exist.
    Operation(
        "grant_consent_by_video", Scope.CONSENTS_WRITE,
        lambda c, t: c.consents.grant_by_video(t.subject, video=t.output, challenge=UNISSUED_CHALLENGE),
        lambda t: ["consents", "grant-video", "--subject", t.subject, "--video", t.output,
                   "--challenge", UNISSUED_CHALLENGE],
        ("POST /v1/consents/video",), NotFoundError, mutates=True, own=NotFoundError,
    ),
    Operation(
        "create_key", Scope.KEYS_ADMIN, lambda c, t: c.keys.create(tenant="acme", scopes="verify"),
        lambda t: ["keys", "create", "--tenant", "acme", "--scopes", "verify"], ("POST /v1/keys",),
        PermissionDeniedError, mutates=True,
    ),
    Operation(
        "keys", Scope.KEYS_ADMIN, lambda c, t: c.keys.list(tenant="acme"),
        lambda t: ["keys", "list", "--tenant", "acme"], ("GET /v1/keys",), PermissionDeniedError,
    ),
    Operation(
        "revoke_key", Scope.KEYS_ADMIN, lambda c, t: c.keys.revoke(t.notes["key"]),
        lambda t: ["keys", "revoke", t.notes["key"]], ("POST /v1/keys/{key_id}/revoke",),
        PermissionDeniedError, mutates=True,
    ),
)  # fmt: skip

BY_NAME = {op.name: op for op in OPERATIONS}
# What each kind of caller gets, when it is not the operation's own rule (``other``).
CALLERS = ("own", "other", "lacks scope", "revoked", "expired")
TRANSPORTS = ("embedded", "remote", "cli")
# Commands that take no API key: they act on the home itself, or on nothing of any tenant.
KEYLESS_COMMANDS = {
    "init", "demo", "eval", "serve", "config show", "templates list", "templates record", "models check",
    "keys anchor",
}  # fmt: skip
CLI_COMMANDS = {
    "animate": "animate", "verify": "verify", "audit_query": "audit query", "audit_show": "audit show",
    "audit_verify": "audit verify", "audit_consistency": "audit consistency", "audit_abandoned": "audit abandoned",
    "audit_checkpoint": "audit checkpoint", "audit_checkpoints": "audit checkpoints",
    "register_subject": "subjects register", "subject": "subjects show", "subjects": "subjects list",
    "grant_consent": "consents grant", "revoke_consent": "consents revoke", "consents": "consents list",
    "consent_challenge": "consents challenge", "grant_consent_by_video": "consents grant-video",
    "create_key": "keys create", "keys": "keys list", "revoke_key": "keys revoke",
}  # fmt: skip


def _expected(op: Operation, caller: str) -> type[XPError] | None:
    if caller in ("revoked", "expired"):
        return AuthenticationError
    if caller == "lacks scope":
        return PermissionDeniedError
    if caller == "other":
        return op.other
    return op.own


def _key_for(tenancy: Tenancy, op: Operation, caller: str) -> str:
    if caller == "lacks scope":
        return tenancy.keys[f"lacks {op.scope.value}"]
    if caller == "own" and op.scope is Scope.KEYS_ADMIN:
        return tenancy.keys["admin"]
    return tenancy.keys[caller]


def _prepare(tenancy: Tenancy, op: Operation, caller: str) -> None:
    """Fresh victims for the operations that use them up (an own-tenant revoke succeeds once)."""
    tenancy.notes["consent"] = tenancy.fresh_consent() if caller == "own" else tenancy.consent
    tenancy.notes["key"] = tenancy.fresh_key() if caller == "own" else tenancy.key_to_revoke


def _call(tenancy: Tenancy, op: Operation, transport: str, key: str) -> tuple[type[XPError] | None, str, object]:
    """(the error class raised or None, its message, the result)."""
    if transport == "cli":
        result = xp(*op.cli(tenancy), "--home", tenancy.home, "--api-key", key, "--json")
        if result.code == 0:
            return None, "", result.json()
        assert json.loads(result.stdout)["exit_code"] == result.code, result.stdout  # --json: the error as JSON
        by_exit = {cls.exit_code: cls for cls in (AuthenticationError, NotFoundError, PermissionDeniedError)}
        return by_exit.get(result.code, XPError), result.stderr.strip(), None
    client = Client(key, home=tenancy.home) if transport == "embedded" else Client(key, base_url=tenancy.url)
    try:
        with client:
            return None, "", op.sdk(client, tenancy)
    except XPError as exc:
        return type(exc), str(exc), None


def _expired_now(monkeypatch: pytest.MonkeyPatch) -> None:
    later = datetime.now(UTC) + timedelta(hours=2)
    monkeypatch.setattr(audit.ledger, "utcnow", lambda: later)


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize("name", list(BY_NAME))
def test_isolation(
    tenancy: Tenancy, name: str, caller: str, transport: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    op = BY_NAME[name]
    _prepare(tenancy, op, caller)
    key = _key_for(tenancy, op, caller)
    expected = _expected(op, caller)
    before = tenancy.events()
    if caller == "expired":
        _expired_now(monkeypatch)
    raised, message, result = _call(tenancy, op, transport, key)
    monkeypatch.undo()
    after = tenancy.events()
    if expected is None:
        assert raised is None, f"{name} by {caller} over {transport} was refused: {message}"
        assert after > before, "an allowed request leaves its event"
        _assert_own_tenant_only(tenancy, op, caller, result)
        return
    assert raised is not None and issubclass(raised, expected), (
        f"{name} by {caller} over {transport}: expected {expected.__name__}, got "
        f"{raised.__name__ if raised else 'success'} {message}"
    )
    assert after == before + 1, f"a refusal is exactly one audit event, got {after - before}"
    if caller == "other":
        _assert_state_unchanged(tenancy)
        if expected is NotFoundError:
            _assert_same_as_missing(tenancy, op, transport, key, message)


def _assert_own_tenant_only(tenancy: Tenancy, op: Operation, caller: str, result: object) -> None:
    """A rival's allowed reads show nothing of acme's records: not its subject, consent, key or tenant."""
    if caller != "other":
        return
    if op.name == "verify":
        # The file's own manifest is public and names its generation; what the service adds is the record.
        result = result["generation"] if isinstance(result, dict) else result.generation  # type: ignore[attr-defined]
    shown = json.dumps(result.model_dump(mode="json") if isinstance(result, BaseModel) else result, default=_plain)
    for secret in (tenancy.subject, tenancy.consent, '"acme"'):
        assert secret not in shown, f"{op.name} showed {secret} to a rival: {shown[:500]}"


def _plain(value: object) -> object:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    return value.__dict__ if hasattr(value, "__dict__") else str(value)


def _assert_state_unchanged(tenancy: Tenancy) -> None:
    with tenancy.admin() as admin:
        consent = admin.deployment.ledger.consent(tenancy.consent)
        assert consent.revoked_at is None, "a rival revoked acme's consent"
        granted = [c for c in admin.deployment.ledger.consents(subject_id=tenancy.subject)]
        assert all(c.grantee_tenant_id == "acme" for c in granted), "a rival granted itself acme's subject"
        victim = next(k for k in admin.deployment.ledger.keys("acme") if k.id == tenancy.key_to_revoke)
        assert victim.revoked_at is None


def _assert_same_as_missing(tenancy: Tenancy, op: Operation, transport: str, key: str, message: str) -> None:
    """Another tenant's record is refused in the very words a record that does not exist is."""
    real = {tenancy.subject, tenancy.consent, tenancy.generation}
    swapped = Tenancy(**{**tenancy.__dict__, "notes": dict(tenancy.notes)})
    swapped.subject = "sub_" + secrets.token_hex(8)
    swapped.generation = secrets.token_hex(8)
    swapped.notes["consent"] = "con_" + secrets.token_hex(8)
    _, missing, _ = _call(swapped, op, transport, key)
    fakes = {swapped.subject, swapped.generation, swapped.notes["consent"]}
    for value in real:
        message = message.replace(value, "<id>")
    for value in fakes:
        missing = missing.replace(value, "<id>")
    assert message.split("(decision")[0] == missing.split("(decision")[0]


# -- the table covers everything -----------------------------------------------------------------------------


def test_every_operation_has_its_row() -> None:
    declared = {name for name in vars(Operations) if not name.startswith("_") and name != "close"}
    assert declared == set(BY_NAME), f"rows missing: {declared - set(BY_NAME)}; stale: {set(BY_NAME) - declared}"


def test_every_route_has_its_row(tmp_path: Path) -> None:
    init = init_deployment(tmp_path / "home", tenant="acme")
    app = create_app(Settings.resolve(home=init.home))
    # From the OpenAPI the server publishes: app.routes may hold routers that FastAPI has not flattened yet.
    served = {
        f"{method.upper()} {path}"
        for path, operations in app.openapi()["paths"].items()
        if path.startswith("/v1/")
        for method in operations
    }
    covered = {route for op in OPERATIONS for route in op.routes}
    assert served == covered, f"routes without a row: {served - covered}; rows without a route: {covered - served}"


def test_every_command_has_its_row() -> None:
    import typer.main

    from xp_sdk.cli import app

    def commands(group: Any, prefix: str = "") -> Iterator[str]:
        for name, command in getattr(group, "commands", {}).items():
            full = f"{prefix}{name}"
            if getattr(command, "commands", None):
                yield from commands(command, full + " ")
            else:
                yield full

    every = set(commands(typer.main.get_command(app)))
    keyed = every - KEYLESS_COMMANDS
    assert keyed == set(CLI_COMMANDS.values()), f"commands without a row: {keyed - set(CLI_COMMANDS.values())}"
    assert set(CLI_COMMANDS) == set(BY_NAME)
