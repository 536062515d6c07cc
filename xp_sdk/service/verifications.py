"""``verify`` (for a key holder: the full report and its generation's record) and ``verify_anonymous`` (the
public verdict for anyone)."""

from __future__ import annotations

import hashlib
import hmac
import os
from pathlib import Path
from typing import Any

from audit import GenerationInfo
from audit.events import Decision as AuditDecision
from audit.events import EventDraft, EventType
from policy import Action, Scope
from watermark.fingerprint import Fingerprint
from xp_sdk.deployment import audit_errors
from xp_sdk.errors import XPError
from xp_sdk.gate import Caller
from xp_sdk.inputs import pem_certificates
from xp_sdk.service.core import ServiceCore, sha256_file
from xp_sdk.verification import GenerationRecord
from xp_sdk.verify import PublicVerification, Verification, attribute, deployment_name, public_verification, verify


class Verifications(ServiceCore):
    """What a clip is: its provenance, its mark, and the generation the mark and its content trace it to."""

    def verify(
        self, api_key: str | None, path: str | os.PathLike[str], *, trust_anchors: str | None = None
    ) -> Verification:
        """C2PA state, watermark payload and the audited generation behind ``path``. Never raises for a
        missing or broken mark: the report says so."""
        request: dict[str, Any] = {"path": Path(path).name}
        caller = self.authorized(api_key, Action.VERIFY, **request)
        with self._refusals(caller, Action.VERIFY, request):
            if trust_anchors is not None:
                pem_certificates(trust_anchors, "trust_anchors")
            report = verify(path, keys=self.deployment.provenance, trust_anchors=trust_anchors)
            file_sha256 = sha256_file(Path(path))
        record: GenerationRecord | None = None
        claimed = report.watermark.payload if report.watermark.detected else None
        if claimed is not None:
            # The payload is only a claim until the pictures match what its generation recorded: a mark lifted onto
            # other content is reported as forged, never as the generation.
            with audit_errors():
                recorded = self._recorded_fingerprint(claimed)
            with self._refusals(caller, Action.VERIFY, request):
                report = attribute(report, recorded)
        if report.generation_id is not None:
            with audit_errors():
                found = self.deployment.ledger.find_generation(report.generation_id)
            if found is not None:
                record = _generation_view(found, caller, file_sha256)
        with audit_errors():
            self.deployment.ledger.record_verification(
                tenant_id=caller.tenant_id,
                actor=caller.key.id,
                generation_id=report.generation_id or claimed,
                data={
                    "file_name": Path(path).name,
                    "file_sha256": file_sha256,
                    "c2pa": report.c2pa.state.value,
                    "watermark_detected": report.watermark.detected,
                    "p_value": report.watermark.p_value,
                    "consistent": report.consistent,
                    "attribution": report.attribution.value,
                    "watermark_payload": claimed,
                    "content_distance": report.content.distance if report.content else None,
                    "generation_on_record": record is not None,
                    "decision": self._decision(caller),
                },
            )
        return report.model_copy(update={"generation": record})

    def verify_anonymous(self, path: str | os.PathLike[str], *, client_address: str) -> PublicVerification:
        """Verification for anyone, without an API key: whether this deployment made ``path`` (a mark bound to its
        recorded content) and when, never the subject, consent, tenant, key or record. Logged, answered or refused,
        with tenant none and actor ``anonymous_actor`` (the client address, keyed)."""
        provenance = self.deployment.provenance
        actor = anonymous_actor(provenance.watermark_key.secret, client_address)
        try:
            report = verify(path, keys=provenance)
        except XPError as exc:
            self._refuse_anonymous(actor, path, exc)
            raise
        claimed = report.watermark.payload if report.watermark.detected else None
        if claimed is not None:
            with audit_errors():
                recorded = self._recorded_fingerprint(claimed)
            report = attribute(report, recorded)
        found = None
        if report.generation_id is not None:
            with audit_errors():
                found = self.deployment.ledger.find_generation(report.generation_id)
        public = public_verification(
            report,
            deployment=deployment_name(provenance.trust_anchors),
            generated_at=found.created_at if found is not None and found.status == "completed" else None,
        )
        with audit_errors():
            self.deployment.ledger.record_verification(
                tenant_id=None,
                actor=actor,
                generation_id=report.generation_id or claimed,
                data={
                    "file_sha256": sha256_file(Path(path)),
                    "anonymous": True,
                    "c2pa": report.c2pa.state.value,
                    "watermark_detected": report.watermark.detected,
                    "p_value": report.watermark.p_value,
                    "attribution": report.attribution.value,
                    "watermark_payload": claimed,
                    "content_distance": report.content.distance if report.content else None,
                    "verdict": public.verdict,
                },
            )
        return public

    def _refuse_anonymous(self, actor: str, path: str | os.PathLike[str], exc: XPError) -> None:
        """A refused anonymous check (not a video, unreadable) is one event too, as a keyed caller's refusal is."""
        upload = Path(path)
        with audit_errors():
            self.deployment.ledger.log.append(
                EventDraft(
                    type=EventType.ACCESS_DENIED,
                    tenant_id=None,
                    actor=actor,
                    decision=AuditDecision.DENY,
                    data={
                        "action": Action.VERIFY.value,
                        "anonymous": True,
                        "decision": {"allowed": False, "reasons": [{"code": exc.code, "message": exc.message[:500]}]},
                        "request": {"file_sha256": sha256_file(upload) if upload.is_file() else None},
                    },
                )
            )

    def _recorded_fingerprint(self, generation_id: str) -> Fingerprint | None:
        """The content fingerprint generation ``generation_id``'s "completed" event recorded (None before one)."""
        for event in self.deployment.ledger.events_for_generation(generation_id):
            if event.type == "generation.completed":
                return Fingerprint.from_json(event.data.get("fingerprint"))
        return None


ADDRESS_KEY_LABEL = b"xp-sdk anonymous client address v1"


def anonymous_actor(deployment_secret: bytes, client_address: str) -> str:
    """``anonymous:`` and an HMAC-SHA256 of the client's address (16 hex) under a key derived from the deployment's
    watermark key (a secret in its home, never replaced): one address reads the same in every event, and the log
    cannot be reversed by hashing the 2^32 IPv4 addresses, as a plain SHA-256 could, without the home's key."""
    address_key = hmac.new(deployment_secret, ADDRESS_KEY_LABEL, hashlib.sha256).digest()
    return "anonymous:" + hmac.new(address_key, client_address.encode("utf-8"), hashlib.sha256).hexdigest()[:16]


def _generation_view(record: GenerationInfo, caller: Caller, file_sha256: str) -> GenerationRecord:
    """The whole record for its own tenant (or an admin key); for anyone else, only that it exists and when."""
    same = record.tenant_id == caller.tenant_id or Scope.KEYS_ADMIN.value in caller.key.scopes
    shown = record.model_dump() if same else {"id": record.id, "status": record.status, "created_at": record.created_at}
    return GenerationRecord(**shown, file_matches_record=record.output_sha256 == file_sha256)
