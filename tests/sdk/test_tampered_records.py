"""The gate acts only on records the log vouches for: a consent revived or re-pointed behind the ledger's back (an
UPDATE on the consents table) stops the animation as a tampered store, instead of animating on it."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import update

from audit.models import Consent
from xp_sdk import Client, init_deployment
from xp_sdk.errors import AuditIntegrityError


@pytest.mark.parametrize("edit", [{"revoked_at": None}, {"grantee_tenant_id": "rival"}])
def test_an_edited_consent_row_is_not_acted_on(tmp_path: Path, faces: Path, edit: dict[str, object]) -> None:
    init = init_deployment(tmp_path / "home", tenant="acme")
    photo = faces / "source" / "skimage_astronaut.png"
    with Client(init.api_key.secret, home=init.home) as admin:
        rival = admin.keys.create(tenant="rival", scopes="animate", name="rival").secret
        subject = admin.subjects.register("Eileen Collins", [photo]).id
        consent = admin.consents.grant(subject, evidence=b"consent, later withdrawn").id
        admin.consents.revoke(consent, reason="withdrawn")
        with admin.deployment.ledger.store.write() as session:
            session.execute(update(Consent).where(Consent.id == consent).values(**edit))
    key = rival if "grantee_tenant_id" in edit else init.api_key.secret
    out = tmp_path / "clip.mp4"
    with Client(key, home=init.home) as client, pytest.raises(AuditIntegrityError, match=consent):
        client.animate(photo, subject=subject, template="blink", out=out)
    assert not out.exists()
