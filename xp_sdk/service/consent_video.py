"""``grant_consent_by_video``: a consent recorded from a video answering a challenge, checked and kept as evidence."""

from __future__ import annotations

import os
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from audit import ConsentInfo
from policy import Action
from xp_sdk.consent.challenge import CHALLENGE_ID, ConsentChallenge
from xp_sdk.consent.check import CONSENT_VIDEO_KIND, CheckResult, examine_consent_video
from xp_sdk.consent.observe import CONSENT_VIDEO_LIMITS
from xp_sdk.deployment import audit_errors
from xp_sdk.engine.paths import as_file_path
from xp_sdk.engine.video import check_driving_limits
from xp_sdk.errors import ConsentVideoRejectedError, InvalidInputError, NotFoundError
from xp_sdk.inputs import ConsentScopes, Moment, Purposes, TenantId, checked
from xp_sdk.service.core import ServiceCore, listed, sha256_file
from xp_sdk.service.evidence import keep_evidence
from xp_sdk.verify import verify


class ConsentVideos(ServiceCore):
    """A consent recorded from a live video answering a challenge."""

    def grant_consent_by_video(
        self,
        api_key: str | None,
        subject: str,
        *,
        video: str | os.PathLike[str],
        challenge: str,
        tenant: str | None = None,
        scopes: Iterable[str] = ("animate",),
        purposes: Iterable[str] = (),
        expires: datetime | None = None,
    ) -> ConsentInfo:
        """Record ``subject``'s consent from a video answering ``challenge``: accepted only when the face is the
        subject's throughout, the actions are performed in order by a moving face, the sentence is said, the video
        is no generation of this deployment (nor declares itself generated) and both the challenge and the video
        are fresh. Otherwise ``ConsentVideoRejectedError`` names each failed check, and the refusal (an attempted
        forgery when the video carries this deployment's watermark) is logged with every check's facts."""
        request: dict[str, Any] = {
            "operation": "consents.grant_video", "subject_id": subject, "challenge_id": challenge, "tenant": tenant,
        }  # fmt: skip
        caller = self.authorized(api_key, Action.GRANT_CONSENT, **request)
        with self._refusals(caller, Action.GRANT_CONSENT, request, subject_id=subject):
            grantee = checked(TenantId, tenant, "tenant") if tenant is not None else caller.tenant_id
            scope_list = checked(ConsentScopes, listed(scopes), "consent scope")
            purpose_list = checked(Purposes, listed(purposes), "purpose")
            start = datetime.now(UTC)
            until = (
                checked(Moment, expires, "expires")
                if expires is not None
                else start + timedelta(days=self.deployment.settings.consent_validity_days)
            )
            self._visible_subject(caller, subject, owner_only=True)
            if not isinstance(challenge, str) or not CHALLENGE_ID.fullmatch(challenge):
                raise NotFoundError(f"no challenge {str(challenge)[:80]!r} for subject {subject!r}")
            file = as_file_path(video, "consent video")
            check_driving_limits(
                file, max_seconds=CONSENT_VIDEO_LIMITS.max_seconds, max_frames=CONSENT_VIDEO_LIMITS.max_frames
            )
            digest = sha256_file(file)
            request["evidence_sha256"] = digest
            with audit_errors():
                ledger = self.deployment.ledger
                issued, answered_by = ledger.consent_challenge(challenge, subject)
                references = ledger.face_references(subject)
                video_used_by = ledger.evidence_used_by(digest, tenant_id=caller.tenant_id)
            asked = ConsentChallenge.model_validate(issued)
            if asked.purpose is not None and purpose_list and asked.purpose not in purpose_list:
                raise InvalidInputError(f"challenge {challenge} was issued for purpose {asked.purpose!r}")
            purposes_granted = list(purpose_list) or ([asked.purpose] if asked.purpose is not None else [])
            marks = verify(file, keys=self.deployment.provenance)
            with self._embedder_lock:
                facts = examine_consent_video(
                    file, asked, references=references,
                    face_match_threshold=self.deployment.settings.face_match_threshold,
                    embedder=self._identity(), marks=marks, now=datetime.now(UTC),
                    challenge_used_by=answered_by, video_used_by=video_used_by,
                )  # fmt: skip
            request["checks"] = facts.as_record()
            if not facts.passed:
                if not facts.check("not_generated").passed and marks.watermark.detected:
                    request["attempted_forgery"] = {
                        "watermark_payload": marks.watermark.payload, "generation_id": marks.generation_id,
                    }  # fmt: skip
                rejected = ConsentVideoRejectedError(
                    f"consent video refused: failed check(s) {', '.join(facts.failed)}",
                    reasons=tuple((name, _check_message(facts.check(name)), None) for name in facts.failed),
                )
                # An AccessDeniedError is one _refusals leaves to whoever decided it: here, this service.
                self._refuse(caller, Action.GRANT_CONSENT, subject, request, rejected)
                raise rejected
            kept = keep_evidence(self.deployment.home.root, file, digest)
            try:
                with audit_errors():
                    try:
                        return ledger.grant_consent_for_challenge(
                            challenge, subject, grantee,
                            evidence_sha256=digest, evidence_kind=CONSENT_VIDEO_KIND, checks=facts.as_record(),
                            scopes=tuple(scope_list), purposes=tuple(purposes_granted),
                            valid_from=start, valid_until=until, actor=caller.key.id,
                            decision=self._decision(caller),
                        )  # fmt: skip
                    except ValueError as exc:
                        raise InvalidInputError(str(exc)) from exc
            except BaseException:
                kept.unlink(missing_ok=True)  # no evidence kept for a consent that was not recorded
                raise


def _check_message(result: CheckResult) -> str:
    """One line a person can act on, from a failed check's facts."""
    detail = {k: v for k, v in result.detail.items() if v not in (None, [], 0, False) or k == "heard"}
    return f"{result.name}: " + "; ".join(f"{k}={v}" for k, v in detail.items())[:400]
