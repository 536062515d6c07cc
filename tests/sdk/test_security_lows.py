"""The low findings SECURITY.md used to list as known limits, each tried as the attack it describes: failed
authentications flooding a tenant's log, probing tenant names through consent grants, anonymous verification
leaving no trace of a bad upload or an address anyone can reverse, and server paths in errors' messages."""

from __future__ import annotations

import hashlib
import ipaddress
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from audit.api_keys import SecretHasher
from audit.checkpoint import LogSigningKey
from audit.errors import AuthenticationError
from audit.ledger import AUTH_FAILURES_LOGGED_PER_MINUTE, Ledger
from audit.query import EventQuery
from audit.rate_limits import StoreRateLimiter
from audit.store import Store
from tests.audit.conftest import ORIGIN, Database, cheap_hasher, database, store  # noqa: F401 (fixtures)
from xp_sdk import Client, init_deployment
from xp_sdk.config import Settings
from xp_sdk.deployment import Deployment
from xp_sdk.engine.diffusion.registry import require_weights
from xp_sdk.errors import DiffusionWeightsMissingError, InvalidInputError, NotFoundError, XPError
from xp_sdk.server.errors import install
from xp_sdk.service import Service
from xp_sdk.service.verifications import anonymous_actor


class Clock:
    """A clock the test moves: the limiter's window is stepped by the test, never waited for."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


signing_key = LogSigningKey.generate("xp-test")


def _ledger(store: Store, hasher: SecretHasher, clock: Clock) -> Ledger:  # noqa: F811
    return Ledger(
        store,
        origin=ORIGIN,
        signing_key=signing_key,
        hasher=hasher,
        rate_limiter=StoreRateLimiter(store, clock),
    )


def _auth_failures(ledger: Ledger, tenant: str) -> list[dict[str, object]]:
    page = ledger.query(EventQuery(tenant=tenant, type="auth.failed", limit=1000))
    return [event.data for event in page.events]


def _wrong_secret(ledger: Ledger, key_id: str) -> None:
    with pytest.raises(AuthenticationError):
        ledger.authenticate(f"xp_{key_id}_{'A' * 43}")


# -- 1. failed authentications cannot fill a tenant's log ------------------------------------------------------


def test_wrong_secrets_for_a_known_key_id_are_logged_up_to_a_bound_then_counted(
    store: Store,  # noqa: F811
    cheap_hasher: SecretHasher,  # noqa: F811
) -> None:
    clock = Clock(1_800_000_000.0)
    ledger = _ledger(store, cheap_hasher, clock)
    ledger.create_tenant("victim")
    key = ledger.create_key("victim", scopes="animate")
    attempts = AUTH_FAILURES_LOGGED_PER_MINUTE + 40
    for _ in range(attempts):
        _wrong_secret(ledger, key.info.id)
    logged = _auth_failures(ledger, "victim")
    assert len(logged) == AUTH_FAILURES_LOGGED_PER_MINUTE, "every wrong secret was one event in the victim's log"
    # A minute later the next failure is logged, after one event that counts what was held back.
    clock.now += 60.0
    _wrong_secret(ledger, key.info.id)
    logged = _auth_failures(ledger, "victim")
    summary = [data for data in logged if "not_logged" in data]
    assert len(logged) == AUTH_FAILURES_LOGGED_PER_MINUTE + 2
    assert summary == [summary[0]] and summary[0]["not_logged"] == attempts - AUTH_FAILURES_LOGGED_PER_MINUTE
    # The key itself still works: the bound is on the log, not on its owner.
    assert ledger.authenticate(key.secret).id == key.info.id
    ledger.log.verify(signing_key.public_key)  # raises at the first inconsistency


def test_made_up_key_ids_share_one_bound(store: Store, cheap_hasher: SecretHasher) -> None:  # noqa: F811
    clock = Clock(1_800_000_000.0)
    ledger = _ledger(store, cheap_hasher, clock)
    for n in range(AUTH_FAILURES_LOGGED_PER_MINUTE + 20):
        _wrong_secret(ledger, f"{n:012x}")
    page = ledger.query(EventQuery(type="auth.failed", limit=1000))
    assert len(page.events) == AUTH_FAILURES_LOGGED_PER_MINUTE


# -- 5. errors crossing the HTTP edge name no server path ------------------------------------------------------


def _app_raising(error: XPError, renames: dict[str, str] | None = None) -> TestClient:
    app = FastAPI()

    @app.get("/v1/boom")
    def boom() -> None:
        raise error

    install(app, renames or {})
    return TestClient(app, raise_server_exceptions=False)


def test_the_diffusion_engines_missing_weights_do_not_show_the_models_toml_path(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    toml = tmp_path / "operator-home" / "models.toml"
    toml.parent.mkdir()
    toml.write_text('[unet]\npath = "/opt/weights/unet.safetensors"\n')
    with pytest.raises(DiffusionWeightsMissingError) as raised:
        require_weights(toml)
    assert str(toml) in raised.value.message  # the operator's CLI still names it
    with caplog.at_level(logging.WARNING, logger="xp_sdk.server"), _app_raising(raised.value) as http:
        response = http.get("/v1/boom")
    assert response.status_code == raised.value.http_status
    assert str(tmp_path) not in response.text and "/opt/weights" not in response.text
    assert "<server path>" in response.json()["message"]
    assert response.json()["type"] == "DiffusionWeightsMissingError"
    assert str(toml) in caplog.text, "the server's log keeps the full message"


@pytest.mark.parametrize(
    "error",
    [
        NotFoundError("no file /srv/xp/home/work/gen_1/clip.partial.mp4"),
        InvalidInputError("cannot read the policy '/etc/xp/policies/local.cedar': permission denied"),
        InvalidInputError("XP_TRUST_ANCHORS=/home/operator/anchors.pem is not PEM."),
    ],
)
def test_an_errors_server_path_is_redacted_for_the_remote_caller(error: XPError) -> None:
    with _app_raising(error) as http:
        body = http.get("/v1/boom").json()
    assert not any(root in body["message"] for root in ("/srv/", "/etc/", "/home/"))
    assert "<server path>" in body["message"] and body["type"] == type(error).__name__


def test_what_the_client_knows_is_left_as_it_is() -> None:
    upload = "/var/lib/xp/server/uploads/u1/source.png"
    error = InvalidInputError(f"{upload} has no face; retry GET /v1/jobs/j_1 later, 1/2 of the frames were read")
    with _app_raising(error, {upload: "photo.png"}) as http:
        body = http.get("/v1/boom").json()
    assert body["message"] == "photo.png has no face; retry GET /v1/jobs/j_1 later, 1/2 of the frames were read"


# -- 4. anonymous verification: a bad upload is logged, and the address cannot be reversed ---------------------


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Service, Client]]:
    init = init_deployment(tmp_path_factory.mktemp("lows") / "home", tenant="acme")
    service = Service(Deployment.open(Settings.resolve(home=init.home)))
    with Client(init.api_key.secret, home=init.home) as admin:
        yield service, admin
    service.close()


def test_an_anonymous_bad_upload_is_logged(deployment: tuple[Service, Client], tmp_path: Path) -> None:
    service, admin = deployment
    upload = tmp_path / "upload.mp4"
    upload.write_bytes(b"this is not a video at all" * 100)
    before = len(admin.audit.query(type="access.denied", limit=1000).events)
    with pytest.raises(XPError):
        service.verify_anonymous(upload, client_address="203.0.113.7")
    refused = admin.audit.query(type="access.denied", limit=1000).events
    assert len(refused) == before + 1, "a refused anonymous check left no event"
    event = refused[-1]
    assert event.tenant_id is None and event.actor is not None and event.actor.startswith("anonymous:")
    assert event.data["anonymous"] is True and event.data["action"] == "verify"
    assert event.data["request"]["file_sha256"] == hashlib.sha256(upload.read_bytes()).hexdigest()


def test_the_logged_address_cannot_be_reversed_by_hashing_the_address_space(
    deployment: tuple[Service, Client], tmp_path: Path
) -> None:
    service, admin = deployment
    upload = tmp_path / "upload.mp4"
    upload.write_bytes(b"\x00" * 4096)
    address = "198.51.100.42"
    with pytest.raises(XPError):
        service.verify_anonymous(upload, client_address=address)
    actor = admin.audit.query(type="access.denied", limit=1000).events[-1].actor
    # The attack: hash every address of the range (the whole IPv4 space is 2^32 of these) and look the actor up.
    guesses = {
        "anonymous:" + hashlib.sha256(str(ip).encode()).hexdigest()[:16]: str(ip)
        for ip in ipaddress.ip_network("198.51.100.0/24")
    }
    assert actor not in guesses, "the address was recovered from the log by hashing its range"
    # Only the deployment's secret maps an address to its actor: one address reads the same in every event.
    secret = service.deployment.provenance.watermark_key.secret
    assert actor == anonymous_actor(secret, address) != anonymous_actor(b"\x01" * 32, address)


# -- 2. a consent grant tells nothing of whether the grantee tenant exists --------------------------------------


def test_a_grant_answers_alike_whether_or_not_the_grantee_tenant_exists(
    deployment: tuple[Service, Client], faces: Path
) -> None:
    service, admin = deployment
    home = service.deployment.settings.home
    admin.keys.create(tenant="globex", scopes="verify")  # a tenant that exists
    acme = admin.keys.create(tenant="acme", scopes="subjects:write consents:write").secret
    with Client(acme, home=home) as tenant:
        subject = tenant.subjects.register("Eileen Collins", [faces / "source" / "skimage_astronaut.png"]).id
        answers = {
            grantee: tenant.consents.grant(subject, evidence=b"she agreed (test)", tenant=grantee)
            for grantee in ("globex", "initech-not-yet")
        }
    # The probe: both grants are recorded, with the same fields; neither says "no tenant".
    assert [a.grantee_tenant_id for a in answers.values()] == ["globex", "initech-not-yet"]
    assert {type(a) for a in answers.values()} == {type(answers["globex"])}
    # And the grant takes effect once that tenant has keys.
    later = admin.keys.create(tenant="initech-not-yet", scopes="animate audit:read").secret
    with Client(later, home=home) as initech:
        assert initech.subjects.get(subject).id == subject
