"""The ``audit_*`` operations: reading, proving and checkpointing the audit log, within the caller's tenant."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from audit import Decision, EventPage, EventQuery, GenerationInfo, InclusionProof, LogVerification
from policy import Action
from xp_sdk.deployment import audit_errors
from xp_sdk.errors import InvalidInputError, NotFoundError, PermissionDeniedError
from xp_sdk.gate import Caller
from xp_sdk.inputs import Age, Moment, Name, PageSize, TenantId, Text, TreeSize, WitnessNote, checked, record_id
from xp_sdk.results import ConsistencyProofView, GenerationAudit
from xp_sdk.service.core import ServiceCore
from xp_sdk.workspace import remove_work_folders


class AuditReads(ServiceCore):
    """The audit log, read within the caller's tenant (any tenant for a ``keys:admin`` key)."""

    def _audit_scope(self, api_key: str | None, tenant: str | None, **request: Any) -> tuple[Caller, str | None]:
        """The reader, and the tenant it may see: its own, unless the key administers keys (then any, or all)."""
        caller = self.authorized(api_key, Action.AUDIT_READ, tenant=tenant, **request)
        with self._refusals(caller, Action.AUDIT_READ, {"tenant": tenant, **request}):
            if tenant is not None:
                checked(TenantId, tenant, "tenant")
            if self._is_admin(caller):
                return caller, tenant
        if tenant is not None and tenant != caller.tenant_id:
            # Refused the same way whether or not that tenant exists.
            refused = PermissionDeniedError(
                f"refused: API key {caller.key.id} reads its own tenant {caller.tenant_id!r} only",
                reasons=(("other_tenant", "a key reads its own tenant's records only", None),),
            )
            self._refuse(caller, Action.AUDIT_READ, None, {"tenant": tenant, **request}, refused)
            raise refused
        return caller, caller.tenant_id

    def audit_query(
        self,
        api_key: str | None,
        *,
        tenant: str | None = None,
        subject: str | None = None,
        generation_id: str | None = None,
        decision: str | None = None,
        type: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> EventPage:
        caller, scoped = self._audit_scope(api_key, tenant, operation="audit.query")
        asked = {"operation": "audit.query", "tenant": tenant, "subject_id": subject, "generation_id": generation_id}
        with self._refusals(caller, Action.AUDIT_READ, asked):
            for value, what in ((subject, "subject"), (generation_id, "generation_id"), (type, "type")):
                if value is not None:
                    checked(Name, value, what)
            try:
                query = EventQuery(
                    tenant=scoped, subject=subject, generation_id=generation_id,
                    decision=Decision(decision) if decision else None, type=type,
                    since=checked(Moment, since, "since") if since is not None else None,
                    until=checked(Moment, until, "until") if until is not None else None,
                    limit=checked(PageSize, limit, "limit"), cursor=checked(Text, cursor, "cursor") if cursor else None,
                )  # fmt: skip
            except ValueError as exc:
                raise InvalidInputError(f"invalid audit query: {exc}") from exc
            with audit_errors():
                try:
                    page = self.deployment.ledger.query(query)
                except ValueError as exc:
                    raise InvalidInputError(str(exc)) from exc
        filters = query.model_dump(mode="json", exclude={"limit"}, exclude_none=True)
        self._record_read(caller, Action.AUDIT_READ, operation="audit.query", returned=len(page.events), **filters)
        return page

    def audit_show(self, api_key: str | None, generation_id: str) -> GenerationAudit:
        """A generation's record, its events, and each event's inclusion proof against a signed checkpoint."""
        caller, scoped = self._audit_scope(api_key, None, operation="audit.show", generation_id=generation_id)
        ledger = self.deployment.ledger
        with self._refusals(caller, Action.AUDIT_READ, {"operation": "audit.show", "generation_id": generation_id}):
            record_id("generation", generation_id)
            with audit_errors():
                record = ledger.generation(generation_id)
                if scoped is not None and record.tenant_id != scoped:
                    # Another tenant's generation is answered exactly as one that does not exist.
                    raise NotFoundError(f"no generation {generation_id!r}")
                # Another tenant's verification of this clip is that tenant's event, not the owner's to read.
                events = [
                    e for e in ledger.events_for_generation(generation_id) if scoped is None or e.tenant_id == scoped
                ]
                proofs: list[InclusionProof] = [ledger.log.inclusion_proof(event.seq) for event in events]
        self._record_read(caller, Action.AUDIT_READ, operation="audit.show", generation_id=generation_id)
        return GenerationAudit(
            generation=record,
            events=events,
            proofs=[p.to_dict() for p in proofs],
            log_verifier_key=self.deployment.log_verifier.to_vkey(),
        )

    def audit_verify(self, api_key: str | None, *, witnessed: Iterable[str] = ()) -> LogVerification:
        """Recompute every hash, link and signed root; raise ``AuditIntegrityError`` at the first fault."""
        caller = self.authorized(api_key, Action.AUDIT_READ, operation="audit.verify")
        with self._refusals(caller, Action.AUDIT_READ, {"operation": "audit.verify"}):
            notes = [checked(WitnessNote, note, "witnessed checkpoint") for note in witnessed]
            with audit_errors():
                checked_log = self.deployment.ledger.log.verify(self.deployment.log_verifier, witnessed=notes)
        self._record_read(caller, Action.AUDIT_READ, operation="audit.verify", tree_size=checked_log.tree_size)
        return checked_log

    def audit_consistency(
        self, api_key: str | None, old_size: int, new_size: int | None = None
    ) -> ConsistencyProofView:
        """Prove the log's first ``old_size`` events are a prefix of the signed tree of ``new_size`` (default: the
        latest checkpoint), for a witness holding an older checkpoint."""
        caller = self.authorized(api_key, Action.AUDIT_READ, operation="audit.consistency")
        log = self.deployment.ledger.log
        asked = {"operation": "audit.consistency", "old_size": old_size, "new_size": new_size}
        with self._refusals(caller, Action.AUDIT_READ, asked):
            checked(TreeSize, old_size, "old_size")
            if new_size is not None:
                checked(TreeSize, new_size, "new_size")
            with audit_errors():
                notes = {c.checkpoint.tree_size: c for c in log.checkpoints()}
                target = new_size if new_size is not None else max(notes, default=0)
                if target not in notes:
                    raise InvalidInputError(
                        f"no signed checkpoint at tree size {target}; "
                        f"sizes: {', '.join(map(str, sorted(notes))) or 'none'}"
                    )
                try:
                    proof = log.consistency_proof(old_size, target)
                except ValueError as exc:
                    raise InvalidInputError(str(exc)) from exc
        self._record_read(caller, Action.AUDIT_READ, operation="audit.consistency", old_size=old_size, new_size=target)
        return ConsistencyProofView(
            old_size=proof.old_size, new_size=proof.new_size, old_root=proof.old_root,
            new_root=notes[target].checkpoint.root_hash.hex(), path=list(proof.path),
            checkpoint=notes[target].to_text(),
        )  # fmt: skip

    def audit_abandoned(
        self, api_key: str | None, *, older_than: timedelta = timedelta(hours=1), close: bool = False
    ) -> list[GenerationInfo]:
        """Generations left "requested" for longer than ``older_than`` (a process died mid-generation); with
        ``close`` (needs keys:admin) each gets its "failed" event (``abandoned``), so the record says how it ended."""
        action = Action.MANAGE_KEYS if close else Action.AUDIT_READ
        caller = self.authorized(api_key, action, operation="audit.abandoned", close=close)
        ledger = self.deployment.ledger
        with self._refusals(caller, action, {"operation": "audit.abandoned", "close": close}):
            age = checked(Age, older_than, "older_than")
            with audit_errors():
                stale = ledger.unfinished_generations(requested_before=datetime.now(UTC) - age)
                if not self._is_admin(caller):
                    stale = [g for g in stale if g.tenant_id == caller.tenant_id]
                if close:
                    for generation in stale:
                        ledger.record_failed(
                            generation.id,
                            error_code="abandoned",
                            message=f"closed by {caller.key.id}: still requested after {age}",
                        )
                    stale = [ledger.generation(g.id) for g in stale]
            if close:
                remove_work_folders(self.deployment.home.work_dir, [g.id for g in stale])
        self._record_read(caller, action, operation="audit.abandoned", close=close, returned=len(stale))
        return stale

    def audit_checkpoint(self, api_key: str | None) -> str | None:
        """Sign the current tree head now; the signed note, for a witness to keep."""
        caller = self.authorized(api_key, Action.AUDIT_READ, operation="audit.checkpoint")
        # Logged first, so the checkpoint it asked for also covers the asking.
        self._record_read(caller, Action.AUDIT_READ, operation="audit.checkpoint")
        with audit_errors():
            signed = self.deployment.ledger.log.checkpoint()
        return signed.to_text() if signed is not None else None

    def audit_checkpoints(self, api_key: str | None) -> list[str]:
        caller = self.authorized(api_key, Action.AUDIT_READ, operation="audit.checkpoints")
        with audit_errors():
            notes = [c.to_text() for c in self.deployment.ledger.log.checkpoints()]
        self._record_read(caller, Action.AUDIT_READ, operation="audit.checkpoints", returned=len(notes))
        return notes
