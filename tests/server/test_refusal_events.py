"""Every request that reaches the gate, allowed or refused, is one audit event: the refusals that used to leave
none (a Basic or empty Authorization header, an unknown subject, key or consent, a missing driving video, another
tenant's audit records, a failed verification) each leave exactly one, over HTTP and in process."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.server.conftest import Deployed
from xp_sdk import Client
from xp_sdk.errors import InvalidInputError, NotFoundError, PermissionDeniedError, XPError


def _size(deployed: Deployed) -> int:
    with deployed.local(deployed.admin_key) as client:
        return client.deployment.ledger.log.size()


def _one_event_for(deployed: Deployed, request: Callable[[], object]) -> object:
    before = _size(deployed)
    outcome = request()
    assert _size(deployed) == before + 1, "a refused request is exactly one audit event"
    return outcome


@pytest.mark.parametrize("header", ["Basic eHA6c2VjcmV0", "Bearer", "", "Token xp_abc"])
def test_a_malformed_authorization_header_is_refused_and_logged(deployed: Deployed, header: str) -> None:
    def call() -> httpx.Response:
        return httpx.get(f"{deployed.url}/v1/subjects", headers={"Authorization": header}, timeout=30)

    response = _one_event_for(deployed, call)
    assert isinstance(response, httpx.Response)
    assert response.status_code == 401 and response.json()["type"] == "AuthenticationError"
    with deployed.local(deployed.admin_key) as admin:
        event = admin.audit.query(type="auth.failed", limit=1000).events[-1]
    assert event.decision == "deny" and "eHA6c2VjcmV0" not in str(event.data)


def _refused(call: Callable[[], object], error: type[XPError]) -> Callable[[], None]:
    def run() -> None:
        with pytest.raises(error):
            call()

    return run


@pytest.mark.parametrize("transport", ["embedded", "remote"])
def test_refusals_of_unknown_records_and_bad_inputs_are_logged(
    deployed: Deployed, transport: str, tmp_path: Path
) -> None:
    client = deployed.local(deployed.admin_key) if transport == "embedded" else deployed.client(deployed.admin_key)
    rival_key = deployed.admin.keys.create(tenant="rival", scopes="audit:read verify", name="rival reader").secret
    rival = deployed.local(rival_key) if transport == "embedded" else deployed.client(rival_key)
    not_media = tmp_path / "notes.mp4"
    not_media.write_bytes(b"this is not a video at all\n" * 20)
    cases: list[tuple[Callable[[], object], type[XPError]]] = [
        (lambda: client.subjects.get("sub_0000000000000000"), NotFoundError),
        (lambda: client.consents.revoke("con_0000000000000000"), NotFoundError),
        (lambda: client.keys.revoke("000000000000"), NotFoundError),
        (lambda: client.audit.show("0000000000000000"), NotFoundError),
        (lambda: rival.audit.query(tenant="acme"), PermissionDeniedError),
        (lambda: client.verify(not_media), InvalidInputError),
    ]
    if transport == "embedded":
        # Over HTTP a missing file never leaves the client; in process it reaches the gate.
        def missing_driving() -> object:
            return client.animate(
                deployed.astronaut, subject=deployed.eileen, driving=tmp_path / "gone.mp4", out=tmp_path / "out.mp4"
            )

        cases.append((missing_driving, InvalidInputError))
    try:
        for call, error in cases:
            _one_event_for(deployed, _refused(call, error))
        with deployed.local(deployed.admin_key) as admin:
            admin.audit.verify()
    finally:
        client.close()
        rival.close()


def test_a_client_without_a_key_is_logged_once(deployed: Deployed) -> None:
    with Client(None, base_url=deployed.url) as anonymous:
        _one_event_for(deployed, _refused(lambda: anonymous.subjects.list(), XPError))


@pytest.mark.parametrize("template", ["/etc/passwd", "../../x.json"])
def test_a_template_path_is_refused_at_the_edge_with_its_event(deployed: Deployed, template: str) -> None:
    def post(key: str) -> httpx.Response:
        with deployed.astronaut.open("rb") as photo:
            return httpx.post(
                f"{deployed.url}/v1/animations",
                headers={"Authorization": f"Bearer {key}"},
                data={"subject": deployed.eileen, "template": template},
                files={"source": ("photo.png", photo, "image/png")},
                timeout=60,
            )

    refused = _one_event_for(deployed, lambda: post(deployed.animator_key))
    assert isinstance(refused, httpx.Response)
    assert refused.status_code == 400 and refused.json()["type"] == "TemplateError"
    # Scope first: a key that may not animate hears only that.
    verify_only = deployed.admin.keys.create(scopes="verify", name="no animate").secret
    scoped = _one_event_for(deployed, lambda: post(verify_only))
    assert isinstance(scoped, httpx.Response)
    assert scoped.status_code == 403 and scoped.json()["type"] == "PermissionDeniedError"
